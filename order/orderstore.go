package order

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// orderStream is the stream of an order.
func orderStream(id string) string { return orderPrefix + id }

const orderPrefix = "order-"

// orderEvents is the catalog of the stored OrderEvent payloads' schema
// versions: every type at v1 but those carrying personal data, at v2
// (personal.go). When a type's payload changes, add an upcaster from its
// last version here (eventstore.Upcaster); events of the older version are
// then upcast on every read (load, history, asOf, rebuild) and new ones
// are written at the chain's end. TestOrderEventsCatalog checks the chain.
var orderEvents = eventstore.NewCatalog("v1", personalUpcasters...)

// maxTries bounds the tries of one command against conflicting appends.
const maxTries = 100

// An order's stream is short (placed, a label, confirmed, shipped or
// cancelled, and a customer change now and then), so it is never
// snapshotted: SnapshotEvery 0, and a load is one read. Its writer is the
// consumer of its partition, besides a customer's or the saga timeout's
// rare command: its events are appended at commit, a batch's in one
// statement (AppendAtCommit).
var orderAggregate = eventstore.Aggregate[OrderState]{
	SchemaVersion:  orderSchemaVersion,
	AppendAtCommit: true,
	Apply: func(s OrderState, e eventstore.Event) (OrderState, error) {
		oe, err := decodeOrderEvent(e)
		if err != nil {
			return s, err
		}
		return applyAt(s, oe, e.Time)
	},
}

// orders is orderAggregate with s's memory of the orders (none when nil):
// a batch's load of orders this instance loaded or saved before reads
// only the events appended since, not every event of their streams,
// decoded again. apply replaces what it changes (it writes no map or
// slice in place), so a remembered state is handed out as a plain copy:
// no Clone.
func (s *store) orders() eventstore.Aggregate[OrderState] {
	a := orderAggregate
	a.Memory = s.memory
	return a
}

func decodeOrderEvent(e eventstore.Event) (OrderEvent, error) {
	oe, err := eventstore.DecodeFrom[OrderEvent](orderEvents, e)
	oe.Type = e.Type
	return oe, err
}

// stream is an order as loaded from its stream.
type stream struct {
	State   OrderState
	Version int64 // the stream's
}

// load loads order id from its stream (a zero state if it has none).
func (s *store) load(ctx context.Context, q eventstore.Querier, id string) (*stream, error) {
	st, v, err := s.orders().Load(ctx, q, orderStream(id))
	if err != nil {
		return nil, fmt.Errorf("order: load order %s: %w", id, err)
	}
	return &stream{State: st, Version: v}, nil
}

// streamCache is the order streams tx loaded (and saved since), so that a
// batch of events with several of one order reads its stream once
// (sqldb.Cache: a rollback empties it).
func streamCache(tx *sqldb.Tx) map[string]*stream {
	return sqldb.Cache[string, *stream](tx, streamsKey{})
}

type streamsKey struct{}

// loadCached is load through tx's cache of streams: the stream it returns
// is the cache's, which save updates.
func (s *store) loadCached(ctx context.Context, tx *sqldb.Tx, id string) (*stream, error) {
	c := streamCache(tx)
	if st, ok := c[id]; ok {
		return st, nil
	}
	st, err := s.load(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	c[id] = st
	return st, nil
}

// loadBatch loads into tx's cache of streams, in one read, the orders ids
// not in it yet (see Service.Prepare).
func (s *store) loadBatch(ctx context.Context, tx *sqldb.Tx, ids []string) error {
	c := streamCache(tx)
	var todo []string
	for _, id := range ids {
		if _, ok := c[id]; !ok {
			todo = append(todo, orderStream(id))
		}
	}
	if len(todo) == 0 {
		return nil
	}
	loaded, err := s.orders().LoadMany(ctx, tx, todo)
	if err != nil {
		return fmt.Errorf("order: load %d orders: %w", len(todo), err)
	}
	for name, l := range loaded {
		c[name[len(orderPrefix):]] = &stream{State: l.State, Version: l.Version}
	}
	return nil
}

// save appends events to the order's stream, expecting it unchanged since
// loaded (an eventstore.ErrConflict otherwise), updates st and writes the
// orders table (the projection) within tx; the order's watchers hear of it
// once tx commits. meta is the events' metadata, at their time.
func (s *store) save(ctx context.Context, tx *sqldb.Tx, st *stream, meta json.RawMessage, at time.Time, events ...OrderEvent) error {
	if len(events) == 0 {
		return nil
	}
	recs, err := eventstore.EncodeFor(orderEvents, events, func(e OrderEvent) string { return e.Type }, meta, at)
	if err != nil {
		return fmt.Errorf("order: %w", err)
	}
	id := st.State.ID
	if id == "" && events[0].Order != nil {
		id = events[0].Order.ID
	}
	next, v, err := s.orders().Save(ctx, tx, orderStream(id), st.State, st.Version, recs...)
	if err != nil {
		return fmt.Errorf("order: save order %s: %w", id, err)
	}
	st.State, st.Version = next, v
	if err := projectOrderLater(tx, next, s.committing); err != nil {
		return err
	}
	s.changedOnCommit(tx, id)
	return nil
}

// The orders table's upsert of an order's state.
const (
	orderInsert = `INSERT INTO orders (id, user_id, status, reason_code, reason, lines, total_cents, currency, customer_email,
			customer_name, shipping_address, card_last4, from_cart, payment_id, shipment_id, tracking_number, correlation_id,
			created_event_id, created_at, updated_at) VALUES`
	orderUpsert = `ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, status = excluded.status, reason_code = excluded.reason_code,
			reason = excluded.reason, lines = excluded.lines, total_cents = excluded.total_cents, currency = excluded.currency,
			customer_email = excluded.customer_email, customer_name = excluded.customer_name,
			shipping_address = excluded.shipping_address, card_last4 = excluded.card_last4, from_cart = excluded.from_cart,
			payment_id = excluded.payment_id, shipment_id = excluded.shipment_id, tracking_number = excluded.tracking_number,
			correlation_id = excluded.correlation_id, created_event_id = excluded.created_event_id,
			created_at = excluded.created_at, updated_at = excluded.updated_at`
)

// orderRow returns the orders row of o: its columns' values.
func orderRow(o OrderState) ([]any, error) {
	lines, err := json.Marshal(o.Items)
	if err != nil {
		return nil, fmt.Errorf("order: encode lines: %w", err)
	}
	addr, err := json.Marshal(o.ShippingAddress)
	if err != nil {
		return nil, fmt.Errorf("order: encode address: %w", err)
	}
	return []any{o.ID, o.UserID, o.Status, o.ReasonCode, o.Reason, string(lines), o.TotalCents, o.Currency, o.Customer.Email,
		o.Customer.Name, string(addr), o.CardLast4, boolInt(o.FromCart), o.PaymentID, o.ShipmentID, o.TrackingNumber,
		o.CorrelationID, o.CreatedEventID, o.CreatedAt.UnixMilli(), o.UpdatedAt.UnixMilli()}, nil
}

// projectOrder writes an order's state to the orders table.
func projectOrder(ctx context.Context, tx *sqldb.Tx, o OrderState) error {
	row, err := orderRow(o)
	if err != nil {
		return err
	}
	if _, err = tx.Exec(ctx, orderInsert+" (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "+orderUpsert, row...); err != nil {
		return fmt.Errorf("order: project order %s: %w", o.ID, err)
	}
	return nil
}

type projectionKey struct{}

// projectOrderLater buffers an order's state for the orders table in tx:
// the rows of a transaction's orders are written in one statement before it
// commits, each order's last state once. Nothing reads the orders table
// in a transaction after writing to it.
//
// On PostgreSQL the statement also notifies changeChannel of each order's
// id (pg_notify in its RETURNING clause: no statement of its own), which
// the server delivers when the transaction commits to every instance of
// the service, for their held GETs (Service.RunInstance). Every change of
// an order passes here (store.save). The payload is the id, a space and
// a token of the statement, and committing (if not nil) is told each row
// with that token before it is written: the instance that hears the token
// knows the row (see known.heard).
func projectOrderLater(tx *sqldb.Tx, o OrderState, committing func(token string, row []any)) error {
	row, err := orderRow(o)
	if err != nil {
		return err
	}
	tx.Pending(projectionKey{}, func() sqldb.Pending {
		if tx.Dialect() != sqldb.Postgres {
			return &projection{Rows: sqldb.NewUpserts(orderInsert, 20, 1, orderUpsert)}
		}
		tail := orderUpsert + ` RETURNING pg_notify('` + changeChannel + `', id || ' ' || CAST(? AS TEXT))`
		return &projection{Rows: sqldb.NewUpserts(orderInsert, 20, 1, tail), committing: committing}
	}).(*projection).Add(row...)
	return nil
}

// projection is a transaction's pending rows of the orders table
// (projectOrderLater).
type projection struct {
	*sqldb.Rows
	committing func(token string, row []any) // nil on SQLite
}

// Flush writes the rows, on PostgreSQL with a new token in their
// notifications: rows flushed again (a group commit's other work) or
// rolled back (a savepoint) are told with another token, so a token heard
// is that of the rows committed.
func (p *projection) Flush(ctx context.Context, tx *sqldb.Tx) error {
	if tx.Dialect() == sqldb.Postgres {
		token := tokenPrefix + strconv.FormatUint(tokenSeq.Add(1), 36)
		p.SetTailArgs(token)
		if p.committing != nil {
			p.Each(func(row []any) { p.committing(token, slices.Clone(row)) })
		}
	}
	return p.Rows.Flush(ctx, tx)
}

// tokenPrefix and tokenSeq make the tokens of the orders rows' flushes,
// unique across instances (projection.Flush).
var (
	tokenPrefix = event.NewID() + "."
	tokenSeq    atomic.Uint64
)

// changeChannel is the PostgreSQL notification channel on which a commit
// that changed orders tells every instance of the service their ids.
const changeChannel = "eventmart_order"

// HistoryItem is one event of an order's stream, with the order as it was
// right after it.
type HistoryItem struct {
	Version int64           `json:"version"` // in the order's stream, from 1
	Type    string          `json:"type"`    // the domain event: OrderPlaced, PaymentConfirmed, …
	EventID string          `json:"eventId"`
	At      time.Time       `json:"at"`   // when it happened (RFC 3339, nanoseconds)
	Data    json.RawMessage `json:"data"` // its payload as stored
	State   *Order          `json:"state"`
}

// history folds order id's stream and returns its events from offset, at
// most limit, oldest first, each with the order after it; ENOTFOUND when
// there is no such order.
func (s *store) history(ctx context.Context, q eventstore.Querier, id string, limit, offset int) ([]HistoryItem, error) {
	evs, err := eventstore.ReadStream(ctx, q, orderStream(id), 0, offset+limit)
	if err != nil {
		return nil, fmt.Errorf("order: history of %s: %w", id, err)
	}
	if len(evs) == 0 && offset == 0 {
		return nil, eventmart.Errorf(eventmart.ENOTFOUND, "order %s not found", id)
	}
	out := []HistoryItem{}
	var st OrderState
	for i, e := range evs {
		if st, err = orderAggregate.Apply(st, e); err != nil {
			return nil, fmt.Errorf("order: history of %s: %w", id, err)
		}
		if i >= offset {
			out = append(out, HistoryItem{Version: e.Version, Type: e.Type, EventID: e.ID, At: e.Time, Data: e.Data, State: st.view()})
		}
	}
	return out, nil
}

// asOf returns order id as it was at instant at: the fold of its events
// up to and including at; ENOTFOUND before it was placed.
func (s *store) asOf(ctx context.Context, q eventstore.Querier, id string, at time.Time) (*Order, error) {
	evs, err := eventstore.ReadStream(ctx, q, orderStream(id), 0, 0)
	if err != nil {
		return nil, fmt.Errorf("order: order %s as of %s: %w", id, at, err)
	}
	var st OrderState
	for _, e := range evs {
		if e.Time.After(at) {
			break
		}
		if st, err = orderAggregate.Apply(st, e); err != nil {
			return nil, fmt.Errorf("order: order %s as of %s: %w", id, at, err)
		}
	}
	if !st.placed() {
		return nil, eventmart.Errorf(eventmart.ENOTFOUND, "order %s did not exist at %s", id, at.Format(time.RFC3339Nano))
	}
	return st.view(), nil
}

// importRows gives every orders row without a stream — written by the
// release before streams — an OrderImported event holding it as it is,
// at its creation time, and returns how many it imported. It is
// idempotent: an order with a stream is left alone; instances starting at
// once on one PostgreSQL database conflict on the streams' first version,
// and the loser finds nothing left to do on its next try.
func importRows(ctx context.Context, db *sqldb.DB) (int, error) {
	n := 0
	st := &store{db: db}
	err := eventstore.Retry(ctx, db, maxTries, func(tx *sqldb.Tx) error {
		n = 0
		todo, err := sqldb.List(ctx, tx, `SELECT `+orderColumns+` FROM orders o
			WHERE NOT EXISTS (SELECT 1 FROM es_events e WHERE e.stream_id = '`+orderPrefix+`' || o.id) ORDER BY id`, nil, scanOrder)
		if err != nil {
			return fmt.Errorf("order: rows to import: %w", err)
		}
		for _, o := range todo {
			row := OrderState{Order: *o, CorrelationID: o.correlationID, CreatedEventID: o.createdEventID}
			evs, err := decide(OrderState{}, Command{Kind: ImportRow, Order: row})
			if err != nil {
				return err
			}
			if err := st.save(ctx, tx, &stream{}, json.RawMessage(`{"reason":"import"}`), o.CreatedAt, evs...); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// rebuildOrders rebuilds the orders table from the streams, live
// (eventstore.Rebuild), and returns the number of events read.
func rebuildOrders(ctx context.Context, db *sqldb.DB) (int64, error) {
	n, err := eventstore.Rebuild(ctx, db, "orders", orderPrefix, orderAggregate,
		func(ctx context.Context, tx *sqldb.Tx, _ string, o OrderState, _ time.Time) error {
			return projectOrder(ctx, tx, o)
		})
	if err != nil {
		return n, fmt.Errorf("order: %w", err)
	}
	return n, nil
}
