package inventory

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// stockStream is the stream of a product's stock.
func stockStream(productID string) string { return stockPrefix + productID }

const stockPrefix = "stock-"

// snapshotEvery bounds a stock load to a snapshot and at most this many
// events after it.
const snapshotEvery = 100

// maxTries bounds the tries of one command against conflicting appends.
const maxTries = 100

// stockAggregate is a product's stock as its stream folds; a store's
// stocks() adds the service's memory of them. Its events are inserted at
// commit (AppendAtCommit), with the transaction's other rows: a stock is
// a hot stream, which every order reserves, but every writer of one — a
// batch (Prepare), an operator's update (PUT /inventory/{id}) — first
// locks the product's stock row on PostgreSQL, so writers take turns,
// and a conflict at commit is left to a product's first events (no row
// to lock yet), whose transaction then runs again.
var stockAggregate = eventstore.Aggregate[StockState]{
	SchemaVersion:  stockSchemaVersion,
	SnapshotEvery:  snapshotEvery,
	AppendAtCommit: true,
	Apply: func(s StockState, e eventstore.Event) (StockState, error) {
		se, err := decodeStockEvent(e)
		if err != nil {
			return s, err
		}
		return apply(s, se)
	},
	// apply writes the reservations in place: a remembered stock is
	// handed out with a map of its own.
	Clone: func(s StockState) StockState {
		s.Reservations = maps.Clone(s.Reservations)
		return s
	},
}

// stocks is stockAggregate with s's memory of the stocks (none when nil):
// a batch's load of a product this instance loaded or saved before reads
// only the events appended since, not the snapshot and the events after
// it, decoded again.
func (s *store) stocks() eventstore.Aggregate[StockState] {
	a := stockAggregate
	a.Memory = s.memory
	return a
}

func decodeStockEvent(e eventstore.Event) (StockEvent, error) {
	se, err := eventstore.DecodeFrom[StockEvent](stockEvents, e)
	se.Type = e.Type
	return se, err
}

// stock is a product's stock as loaded from its stream.
type stock struct {
	ProductID string
	State     StockState
	Version   int64 // the stream's
}

// view is the stock as the API shows it.
func (st *stock) view() *Stock {
	s := st.State
	return &Stock{ProductID: st.ProductID, OnHand: s.OnHand, Reserved: s.Reserved, Available: s.Available(), Version: s.Level, Discontinued: s.Discontinued}
}

// loadStock loads a product's stock from its snapshot and stream (or what
// s remembers of it and the events after that).
func (s *store) loadStock(ctx context.Context, q eventstore.Querier, productID string) (*stock, error) {
	state, v, err := s.stocks().Load(ctx, q, stockStream(productID))
	if err != nil {
		return nil, fmt.Errorf("inventory: load stock of %s: %w", productID, err)
	}
	return &stock{ProductID: productID, State: state, Version: v}, nil
}

// stockCache is the stocks tx loaded (and saved since), so a batch with
// several orders of one product reads its stream once (sqldb.Cache: a
// rollback empties it).
func stockCache(tx *sqldb.Tx) map[string]*stock {
	return sqldb.Cache[string, *stock](tx, stocksKey{})
}

type stocksKey struct{}

// loadStockCached is loadStock through tx's cache: the stock it returns is
// the cache's, which saveStock updates.
func (s *store) loadStockCached(ctx context.Context, tx *sqldb.Tx, productID string) (*stock, error) {
	c := stockCache(tx)
	if st, ok := c[productID]; ok {
		return st, nil
	}
	st, err := s.loadStock(ctx, tx, productID)
	if err != nil {
		return nil, err
	}
	c[productID] = st
	return st, nil
}

// loadStocks loads into tx's cache, in one query for those s remembers
// (eventstore.Aggregate.LoadMany), the stocks of products not in it yet:
// a batch's handlers then find every stock they move there, rather than
// each reading its stream's new events with a query of its own.
func (s *store) loadStocks(ctx context.Context, tx *sqldb.Tx, products []string) error {
	c := stockCache(tx)
	streams := make([]string, 0, len(products))
	for _, p := range products {
		if _, ok := c[p]; !ok && p != "" {
			streams = append(streams, stockStream(p))
		}
	}
	slices.Sort(streams)
	streams = slices.Compact(streams)
	if len(streams) == 0 {
		return nil
	}
	loaded, err := s.stocks().LoadMany(ctx, tx, streams)
	if err != nil {
		return fmt.Errorf("inventory: load the stock of %d products: %w", len(streams), err)
	}
	for stream, l := range loaded {
		id := strings.TrimPrefix(stream, stockPrefix)
		c[id] = &stock{ProductID: id, State: l.State, Version: l.Version}
	}
	return nil
}

// saveStock appends events to st's stream, expecting it unchanged since
// loaded (an eventstore.ErrConflict otherwise), and updates st and the
// stock table (the projection) within tx. meta is the events' metadata.
func (s *store) saveStock(ctx context.Context, tx *sqldb.Tx, st *stock, meta json.RawMessage, at time.Time, events ...StockEvent) error {
	if len(events) == 0 {
		return nil
	}
	recs, err := eventstore.EncodeFor(stockEvents, events, func(e StockEvent) string { return e.Type }, meta, at)
	if err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	state, v, err := s.stocks().Save(ctx, tx, stockStream(st.ProductID), st.State, st.Version, recs...)
	if err != nil {
		return fmt.Errorf("inventory: save stock of %s: %w", st.ProductID, err)
	}
	st.State, st.Version = state, v
	row, err := stockRow(st.ProductID, state, at)
	if err != nil {
		return err
	}
	// Buffered: a transaction writes each product's row once, as it left
	// it, with the others in one statement before it commits.
	tx.Pending(stockRowsKey{}, func() sqldb.Pending { return sqldb.NewUpserts(stockInsert("stock"), 6, 1, stockUpsert) }).(*sqldb.Rows).Add(row...)
	return nil
}

type stockRowsKey struct{}

// The stock table's upsert of a product's state.
const stockUpsert = `ON CONFLICT (product_id) DO UPDATE SET on_hand = excluded.on_hand, reserved = excluded.reserved, version = excluded.version,
			discontinued = excluded.discontinued, updated_at = excluded.updated_at`

func stockInsert(table string) string {
	return `INSERT INTO ` + table + ` (product_id, on_hand, reserved, version, discontinued, updated_at) VALUES`
}

// stockRow returns the stock row of a product's state s.
func stockRow(productID string, s StockState, at time.Time) ([]any, error) {
	if s.Reserved < 0 || s.OnHand < s.Reserved {
		// decide never gets here; refusing keeps a bug from breaking the invariant.
		return nil, fmt.Errorf("inventory: stock of %s would be on hand %d, reserved %d", productID, s.OnHand, s.Reserved)
	}
	discontinued := 0
	if s.Discontinued {
		discontinued = 1
	}
	return []any{productID, s.OnHand, s.Reserved, s.Level, discontinued, at.UnixMilli()}, nil
}

// projectStock writes a product's state to the stock table (or to the
// table being rebuilt).
func projectStock(ctx context.Context, tx *sqldb.Tx, table, productID string, s StockState, at time.Time) error {
	row, err := stockRow(productID, s, at)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, stockInsert(table)+" (?, ?, ?, ?, ?, ?) "+stockUpsert, row...); err != nil {
		return fmt.Errorf("inventory: project stock of %s: %w", productID, err)
	}
	return nil
}

// Movement is one event of a product's stock history, with the stock
// after it.
type Movement struct {
	Version   int64     `json:"version"` // in the product's stream
	Type      string    `json:"type"`    // the domain event: StockReserved, …
	Time      time.Time `json:"time"`
	OrderID   string    `json:"orderId,omitempty"`
	Quantity  int64     `json:"quantity,omitempty"`
	Delta     int64     `json:"delta,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	OnHand    int64     `json:"onHand"`
	Reserved  int64     `json:"reserved"`
	Available int64     `json:"available"`
	Level     int64     `json:"level"` // the StockLevel version after it
	UserID    string    `json:"userId,omitempty"`
}

// history folds a product's stream and returns the movements recorded
// from from to to (both inclusive; zero: unbounded), oldest first, after
// skipping offset of them, at most limit. ENOTFOUND when the product has
// no stream.
func history(ctx context.Context, q eventstore.Querier, productID string, from, to time.Time, limit, offset int) ([]Movement, error) {
	evs, err := eventstore.ReadStream(ctx, q, stockStream(productID), 0, 0)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 {
		return nil, eventmart.Errorf(eventmart.ENOTFOUND, "unknown product %s", productID)
	}
	out := []Movement{}
	var s StockState
	for _, e := range evs {
		if !to.IsZero() && e.Time.After(to) {
			break
		}
		se, err := decodeStockEvent(e)
		if err != nil {
			return nil, err
		}
		if s, err = apply(s, se); err != nil {
			return nil, err
		}
		if e.Time.Before(from) {
			continue
		}
		if offset > 0 {
			offset--
			continue
		}
		if len(out) == limit {
			break
		}
		var md struct{ UserID string }
		json.Unmarshal(e.Metadata, &md)
		out = append(out, Movement{Version: e.Version, Type: e.Type, Time: e.Time, OrderID: se.OrderID, Quantity: se.Quantity,
			Delta: se.Delta, Reason: se.Reason, OnHand: s.OnHand, Reserved: s.Reserved, Available: s.Available(), Level: s.Level, UserID: md.UserID})
	}
	return out, nil
}

// importRows gives every stock row without a stream — written by the
// release before streams — a StockImported event holding it as it is (on
// hand, reserved, version, discontinued, and the open reservations of the
// reservations table), and returns how many it imported. It is
// idempotent: a product with a stream is left alone; instances starting
// at once on one PostgreSQL database conflict on the streams' first
// version, and the loser finds nothing left to do on its next try.
func importRows(ctx context.Context, db *sqldb.DB, now time.Time) (int, error) {
	n := 0
	s := &store{db: db}
	err := eventstore.Retry(ctx, db, maxTries, func(tx *sqldb.Tx) error {
		n = 0
		type row struct {
			state StockState
			id    string
		}
		rows, err := tx.Query(ctx, `SELECT product_id, on_hand, reserved, version, discontinued FROM stock s
			WHERE NOT EXISTS (SELECT 1 FROM es_events e WHERE e.stream_id = '`+stockPrefix+`' || s.product_id) ORDER BY product_id`)
		if err != nil {
			return fmt.Errorf("inventory: rows to import: %w", err)
		}
		var todo []row
		for rows.Next() {
			var r row
			var discontinued int64
			if err := rows.Scan(&r.id, &r.state.OnHand, &r.state.Reserved, &r.state.Level, &discontinued); err != nil {
				rows.Close()
				return fmt.Errorf("inventory: rows to import: %w", err)
			}
			r.state.Discontinued = discontinued != 0
			todo = append(todo, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(todo) == 0 {
			return err
		}
		holds, err := openHolds(ctx, tx)
		if err != nil {
			return err
		}
		for _, r := range todo {
			r.state.Reservations = holds[r.id]
			st := &stock{ProductID: r.id}
			evs, err := decide(st.State, StockCommand{Kind: Import, Imported: r.state})
			if err != nil {
				return err
			}
			if err := s.saveStock(ctx, tx, st, json.RawMessage(`{"reason":"import"}`), now, evs...); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// openHolds returns the quantities held per product and order by the
// reservations in status reserved.
func openHolds(ctx context.Context, tx *sqldb.Tx) (map[string]map[string]int64, error) {
	rows, err := tx.Query(ctx, `SELECT order_id, lines FROM reservations WHERE status = ?`, StatusReserved)
	if err != nil {
		return nil, fmt.Errorf("inventory: open reservations: %w", err)
	}
	defer rows.Close()
	holds := map[string]map[string]int64{}
	for rows.Next() {
		var orderID, lines string
		if err := rows.Scan(&orderID, &lines); err != nil {
			return nil, fmt.Errorf("inventory: open reservations: %w", err)
		}
		var ls []event.Line
		if err := json.Unmarshal([]byte(lines), &ls); err != nil {
			return nil, fmt.Errorf("inventory: lines of reservation %s: %w", orderID, err)
		}
		for _, l := range ls {
			if holds[l.ProductID] == nil {
				holds[l.ProductID] = map[string]int64{}
			}
			holds[l.ProductID][orderID] += l.Quantity
		}
	}
	return holds, rows.Err()
}

// rebuildStock rebuilds the stock table from the streams, live
// (eventstore.Rebuild: every row rewritten from the fold of its product's
// whole stream, snapshots unused, rows without a stream deleted, writers
// held off), and returns the number of events read.
func rebuildStock(ctx context.Context, db *sqldb.DB) (int64, error) {
	n, err := eventstore.Rebuild(ctx, db, "stock", stockPrefix, stockAggregate,
		func(ctx context.Context, tx *sqldb.Tx, id string, s StockState, last time.Time) error {
			return projectStock(ctx, tx, "stock", id, s, last)
		})
	if err != nil {
		return n, fmt.Errorf("inventory: %w", err)
	}
	return n, nil
}
