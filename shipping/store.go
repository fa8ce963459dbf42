package shipping

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/sqldb"
)

type store struct{ db *sqldb.DB }

const shipmentColumns = `order_id, shipment_id, user_id, address, has_order, paid, cancelled, shipped_order, status, carrier, tracking_number,
	correlation_id, last_event_id, created_at, updated_at, shipped_at, dispatched_at, delivered_at`

func scanShipment(r sqldb.Scanner) (*Shipment, error) {
	var sh Shipment
	var address string
	var hasOrder, paid, cancelled, shippedOrder, created, updated int64
	var shipped, dispatched, delivered sql.NullInt64
	err := r.Scan(&sh.OrderID, &sh.ID, &sh.UserID, &address, &hasOrder, &paid, &cancelled, &shippedOrder, &sh.Status, &sh.Carrier,
		&sh.TrackingNumber, &sh.correlationID, &sh.lastEventID, &created, &updated, &shipped, &dispatched, &delivered)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(address), &sh.Address); err != nil {
		return nil, fmt.Errorf("shipping: address of order %s: %w", sh.OrderID, err)
	}
	sh.hasOrder, sh.paid, sh.cancelled, sh.shippedOrder = hasOrder == 1, paid == 1, cancelled == 1, shippedOrder == 1
	sh.CreatedAt, sh.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
	sh.shippedAt, sh.DispatchedAt, sh.DeliveredAt = fromMillis(shipped), fromMillis(dispatched), fromMillis(delivered)
	return &sh, nil
}

// lock returns the shipment of orderID for a read-modify-write within tx,
// creating its row (waiting, nothing seen yet, with its shipment id) if
// this is the first event about the order; save stores what the caller
// changed. The shipment is the one in tx's cache of shipments (see
// lockBatch) if it is there.
func (s *store) lock(ctx context.Context, tx *sqldb.Tx, orderID string, now time.Time) (*Shipment, error) {
	c := shipmentCache(tx)
	if sh, ok := c.m[orderID]; ok {
		return sh, nil
	}
	if err := s.lockBatch(ctx, tx, []string{orderID}, now); err != nil {
		return nil, err
	}
	return c.m[orderID], nil
}

// lockBatch locks and reads into tx's cache of shipments the shipments of
// orderIDs not in it yet, creating the rows missing, in one statement: an
// upsert whose DO UPDATE takes the row lock on PostgreSQL even though it
// changes nothing, returning the rows. So handlers of one order running
// concurrently (its events come on different topics, hence partitions),
// the admin API and the carrier take turns and none loses another's
// update; the rows are locked in order id order, so that concurrent
// batches do not deadlock. SQLite has a single writer.
func (s *store) lockBatch(ctx context.Context, tx *sqldb.Tx, orderIDs []string, now time.Time) error {
	c := shipmentCache(tx)
	todo := make([]string, 0, len(orderIDs))
	for _, id := range orderIDs {
		if _, ok := c.m[id]; !ok {
			todo = append(todo, id)
		}
	}
	slices.Sort(todo)
	todo = slices.Compact(todo)
	for len(todo) > 0 {
		chunk := todo[:min(len(todo), 200)]
		todo = todo[len(chunk):]
		q, args := lockStatement(tx.Dialect(), chunk, now)
		locked, err := sqldb.List(ctx, tx, q, args, scanShipment)
		if err != nil {
			return fmt.Errorf("shipping: lock the shipments of %d orders: %w", len(chunk), err)
		}
		for _, sh := range locked {
			c.m[sh.OrderID] = sh
		}
	}
	return nil
}

// lockStatement returns lockBatch's upsert of the shipments of orderIDs,
// in their order, and its arguments: on PostgreSQL the ids and the new
// shipments' ids as two arrays (one statement text, planned once, for any
// number of orders), on SQLite a row of parameters an order.
func lockStatement(d sqldb.Dialect, orderIDs []string, now time.Time) (string, []any) {
	const tail = ` ON CONFLICT (order_id) DO UPDATE SET order_id = excluded.order_id RETURNING ` + shipmentColumns
	ids := make([]string, len(orderIDs))
	for i := range ids {
		ids[i] = event.NewID()
	}
	if d == sqldb.Postgres {
		return `INSERT INTO shipments (order_id, shipment_id, status, created_at, updated_at)
			SELECT u.order_id, u.shipment_id, ?::text, ?::bigint, ?::bigint FROM unnest(?::text[], ?::text[]) WITH ORDINALITY AS u(order_id, shipment_id, n)
			ORDER BY u.n` + tail, []any{StatusWaiting, now.UnixMilli(), now.UnixMilli(), orderIDs, ids}
	}
	args := make([]any, 0, 5*len(orderIDs))
	for i, id := range orderIDs {
		args = append(args, id, ids[i], StatusWaiting, now.UnixMilli(), now.UnixMilli())
	}
	return `INSERT INTO shipments (order_id, shipment_id, status, created_at, updated_at) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?), ", len(orderIDs)), ", ") + tail, args
}

// lockByID is lock for an existing shipment found by its id; ENOTFOUND if
// there is none, or its order is not known yet.
func (s *store) lockByID(ctx context.Context, tx *sqldb.Tx, shipmentID string, now time.Time) (*Shipment, error) {
	var orderID string
	err := tx.QueryRow(ctx, `SELECT order_id FROM shipments WHERE shipment_id = ? AND has_order = 1`, shipmentID).Scan(&orderID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, eventmart.Errorf(eventmart.ENOTFOUND, "shipment %s not found", shipmentID)
	}
	if err != nil {
		return nil, fmt.Errorf("shipping: find shipment %s: %w", shipmentID, err)
	}
	return s.lock(ctx, tx, orderID, now)
}

// save stores every changeable column of sh, a shipment lock returned:
// its row is written with the transaction's other changed shipments in one
// statement before the transaction commits (see shipments).
func (s *store) save(ctx context.Context, tx *sqldb.Tx, sh *Shipment) error {
	c := shipmentCache(tx)
	if c.m[sh.OrderID] != sh {
		// Not the cache's (lock always returns it): written at once.
		return c.write(ctx, tx, []*Shipment{sh})
	}
	if !c.dirty[sh.OrderID] {
		c.dirty[sh.OrderID] = true
		c.order = append(c.order, sh.OrderID)
	}
	return nil
}

// shipments caches the shipments a transaction locked, by order id, so
// that a batch of events reads each order's shipment once, and holds
// those changed since, written with one statement when the transaction
// flushes its pending writes (sqldb.Tx.Pending). Shipments are read only
// through it, so nothing reads a row before it is written. A rollback, to
// a savepoint or of the whole transaction, discards it all: the states it
// holds may have been undone (a savepoint flushes it first).
type shipments struct {
	m     map[string]*Shipment
	dirty map[string]bool
	order []string // the changed shipments' order ids, in the order changed
}

type shipmentsKey struct{}

func shipmentCache(tx *sqldb.Tx) *shipments {
	return tx.Pending(shipmentsKey{}, func() sqldb.Pending {
		return &shipments{m: map[string]*Shipment{}, dirty: map[string]bool{}}
	}).(*shipments)
}

// Flush writes the changed shipments.
func (c *shipments) Flush(ctx context.Context, tx *sqldb.Tx) error {
	if len(c.order) == 0 {
		return nil
	}
	changed := make([]*Shipment, len(c.order))
	for i, id := range c.order {
		changed[i] = c.m[id]
	}
	clear(c.dirty)
	c.order = c.order[:0]
	return c.write(ctx, tx, changed)
}

// Discard forgets every shipment.
func (c *shipments) Discard() {
	clear(c.m)
	clear(c.dirty)
	c.order = c.order[:0]
}

// The shipments table's upsert of every changeable column of a shipment
// whose row exists (lock created it).
const (
	shipmentInsert = `INSERT INTO shipments (` + shipmentColumns + `) VALUES`
	shipmentUpsert = `ON CONFLICT (order_id) DO UPDATE SET user_id = excluded.user_id, address = excluded.address,
		has_order = excluded.has_order, paid = excluded.paid, cancelled = excluded.cancelled, shipped_order = excluded.shipped_order,
		status = excluded.status, carrier = excluded.carrier, tracking_number = excluded.tracking_number,
		correlation_id = excluded.correlation_id, last_event_id = excluded.last_event_id, updated_at = excluded.updated_at,
		shipped_at = excluded.shipped_at, dispatched_at = excluded.dispatched_at, delivered_at = excluded.delivered_at`
)

// write stores the changeable columns of shs, 200 a statement.
func (c *shipments) write(ctx context.Context, tx *sqldb.Tx, shs []*Shipment) error {
	rows := sqldb.NewRows(shipmentInsert, 18, shipmentUpsert)
	for _, sh := range shs {
		address, err := json.Marshal(sh.Address)
		if err != nil {
			return fmt.Errorf("shipping: address of order %s: %w", sh.OrderID, err)
		}
		rows.Add(sh.OrderID, sh.ID, sh.UserID, string(address), b2i(sh.hasOrder), b2i(sh.paid), b2i(sh.cancelled), b2i(sh.shippedOrder),
			sh.Status, sh.Carrier, sh.TrackingNumber, sh.correlationID, sh.lastEventID, sh.CreatedAt.UnixMilli(), sh.UpdatedAt.UnixMilli(),
			toMillis(sh.shippedAt), toMillis(sh.DispatchedAt), toMillis(sh.DeliveredAt))
	}
	if err := rows.Flush(ctx, tx); err != nil {
		return fmt.Errorf("shipping: save %d shipments: %w", len(shs), err)
	}
	return nil
}

// list returns shipments whose order is known (OrderCreated seen), newest
// first: of one order if orderID is set, of one user if userID is set.
func (s *store) list(ctx context.Context, orderID, userID string, limit, offset int) ([]*Shipment, error) {
	q, args := sqldb.AndEq(`SELECT `+shipmentColumns+` FROM shipments WHERE has_order = 1`, nil,
		sqldb.Eq{Col: "order_id", Value: orderID}, sqldb.Eq{Col: "user_id", Value: userID})
	q += ` ORDER BY created_at DESC, order_id LIMIT ? OFFSET ?`
	args = append(args, limit, offset)
	out, err := sqldb.List(ctx, s.db, q, args, scanShipment)
	if err != nil {
		return nil, fmt.Errorf("shipping: list shipments: %w", err)
	}
	return out, nil
}

// due returns the orders whose parcel the carrier should move now: shipped
// (OrderShipped) by dispatchBy and still only labelled, or dispatched by
// deliverBy. Oldest change first, at most limit. The first condition is
// word for word the predicate of the partial index shipments_moving
// (migration 0002), with literals, so that both databases read the
// shipments in it alone.
func (s *store) due(ctx context.Context, tx *sqldb.Tx, dispatchBy, deliverBy time.Time, limit int) ([]string, error) {
	ids, err := sqldb.List(ctx, tx, `SELECT order_id FROM shipments
		WHERE status IN ('`+StatusCreated+`', '`+StatusDispatched+`')
		AND ((status = '`+StatusCreated+`' AND shipped_order = 1 AND shipped_at <= ?) OR (status = '`+StatusDispatched+`' AND dispatched_at <= ?))
		ORDER BY updated_at, order_id LIMIT ?`,
		[]any{dispatchBy.UnixMilli(), deliverBy.UnixMilli(), limit}, sqldb.ScanOne[string])
	if err != nil {
		return nil, fmt.Errorf("shipping: due shipments: %w", err)
	}
	return ids, nil
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func fromMillis(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := time.UnixMilli(v.Int64).UTC()
	return &t
}

func toMillis(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMilli()
}
