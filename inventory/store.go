package inventory

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// store reads the stock table — the projection of the stock streams,
// written by stockstore.go — and keeps the reservations table, the outcome
// of each order.
type store struct {
	db     *sqldb.DB
	memory *eventstore.Memory[StockState] // of the stocks loaded and saved (stocks()); nil: none
}

const stockColumns = `product_id, on_hand, reserved, version, discontinued`

type queryRower interface {
	QueryRow(context.Context, string, ...any) *sql.Row
}

func scanStock(r *sql.Row, id string) (*Stock, error) {
	var st Stock
	var discontinued int64
	err := r.Scan(&st.ProductID, &st.OnHand, &st.Reserved, &st.Version, &discontinued)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, eventmart.Errorf(eventmart.ENOTFOUND, "unknown product %s", id)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: read stock of %s: %w", id, err)
	}
	st.Available = st.OnHand - st.Reserved
	st.Discontinued = discontinued != 0
	return &st, nil
}

// stock reads a product's stock; ENOTFOUND "unknown product" if absent.
func (s *store) stock(ctx context.Context, q queryRower, id string) (*Stock, error) {
	return scanStock(q.QueryRow(ctx, `SELECT `+stockColumns+` FROM stock WHERE product_id = ?`, id), id)
}

// reservation is what the service knows of one order.
type reservation struct {
	OrderID string
	Status  string
	Lines   []event.Line // one per product, sorted by product id
	Reason  string

	createdAt, updatedAt int64 // ms
}

// reservation reads an order's reservation; nil if there is none. It is
// the one in tx's cache of reservations (see loadReservations) if that
// knows the order; otherwise it is read, locked on PostgreSQL.
func (s *store) reservation(ctx context.Context, tx *sqldb.Tx, orderID string) (*reservation, error) {
	c := reservationCache(tx)
	if r, ok := c.m[orderID]; ok {
		return r, nil
	}
	if err := s.loadReservations(ctx, tx, []string{orderID}); err != nil {
		return nil, err
	}
	return c.m[orderID], nil
}

// loadReservations reads into tx's cache, in one query, the reservations
// of orderIDs it does not know yet (nil for an order without one). On
// PostgreSQL the rows are locked (FOR UPDATE, in order id order so that
// concurrent batches do not deadlock): what the cache holds of them stays
// true until tx ends, so a transition of a cached reservation cannot
// fail and is written with the others before tx commits.
func (s *store) loadReservations(ctx context.Context, tx *sqldb.Tx, orderIDs []string) error {
	c := reservationCache(tx)
	var args []string
	for _, id := range orderIDs {
		if _, ok := c.m[id]; !ok {
			c.m[id] = nil // unless found below
			args = append(args, id)
		}
	}
	found, err := sqldb.ListIn(ctx, tx, `SELECT order_id, status, lines, reason, created_at, updated_at FROM reservations
		WHERE order_id`, ` ORDER BY order_id`+tx.ForUpdate(), args, scanReservation)
	if err != nil {
		return fmt.Errorf("inventory: read %d reservations: %w", len(args), err)
	}
	for _, r := range found {
		c.m[r.OrderID] = r
	}
	return nil
}

func scanReservation(sc sqldb.Scanner) (*reservation, error) {
	var r reservation
	var lines string
	if err := sc.Scan(&r.OrderID, &r.Status, &lines, &r.Reason, &r.createdAt, &r.updatedAt); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(lines), &r.Lines); err != nil {
		return nil, fmt.Errorf("lines of reservation %s: %w", r.OrderID, err)
	}
	return &r, nil
}

// insertReservation records r unless the order already has a reservation;
// it reports whether it did. On SQLite, whose one writer is this
// transaction, an order the cache knows to have none gets r written with
// the transaction's other reservations before it commits; on PostgreSQL
// the insert runs at once, for a concurrent transaction may be inserting
// the order's too (its reservation is then read again).
func (s *store) insertReservation(ctx context.Context, tx *sqldb.Tx, r *reservation, now time.Time) (bool, error) {
	c := reservationCache(tx)
	r.createdAt, r.updatedAt = now.UnixMilli(), now.UnixMilli()
	if cached, known := c.m[r.OrderID]; known && cached != nil {
		return false, nil
	} else if known && tx.Dialect() == sqldb.SQLite {
		c.m[r.OrderID] = r
		c.changed(r.OrderID)
		return true, nil
	}
	lines, err := json.Marshal(nonNil(r.Lines))
	if err != nil {
		return false, fmt.Errorf("inventory: lines of reservation %s: %w", r.OrderID, err)
	}
	res, err := tx.Exec(ctx, `INSERT INTO reservations (order_id, status, lines, reason, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (order_id) DO NOTHING`, r.OrderID, r.Status, string(lines), r.Reason, r.createdAt, r.updatedAt)
	if err != nil {
		return false, fmt.Errorf("inventory: insert reservation %s: %w", r.OrderID, err)
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		c.m[r.OrderID] = r // this transaction's: no other changes it
	} else {
		delete(c.m, r.OrderID) // another's: read it again
	}
	return n > 0, nil
}

// transition moves an order's reservation from status from to status to,
// and reports whether it did: false means it was not in status from (a
// concurrent transaction got there first).
func (s *store) transition(ctx context.Context, tx *sqldb.Tx, orderID, from, to, reason string, now time.Time) (bool, error) {
	c := reservationCache(tx)
	if r, ok := c.m[orderID]; ok && r != nil {
		if r.Status != from {
			return false, nil
		}
		r.Status, r.Reason, r.updatedAt = to, reason, now.UnixMilli()
		c.changed(orderID)
		return true, nil
	}
	res, err := tx.Exec(ctx, `UPDATE reservations SET status = ?, reason = ?, updated_at = ? WHERE order_id = ? AND status = ?`,
		to, reason, now.UnixMilli(), orderID, from)
	if err != nil {
		return false, fmt.Errorf("inventory: reservation %s %s -> %s: %w", orderID, from, to, err)
	}
	n, _ := res.RowsAffected()
	delete(c.m, orderID)
	return n > 0, nil
}

// reservations caches the reservations a transaction read, by order id
// (nil: the order has none), so that a batch of events reads them in one
// query, and holds those changed since, written with one statement when
// the transaction flushes its pending writes (sqldb.Tx.Pending). A
// rollback, to a savepoint or of the whole transaction, discards it all:
// what it holds may have been undone (a savepoint flushes it first).
type reservations struct {
	m     map[string]*reservation
	dirty map[string]bool
	order []string // the changed reservations' order ids, in the order changed
}

type reservationsKey struct{}

func reservationCache(tx *sqldb.Tx) *reservations {
	return tx.Pending(reservationsKey{}, func() sqldb.Pending {
		return &reservations{m: map[string]*reservation{}, dirty: map[string]bool{}}
	}).(*reservations)
}

func (c *reservations) changed(orderID string) {
	if !c.dirty[orderID] {
		c.dirty[orderID] = true
		c.order = append(c.order, orderID)
	}
}

// Flush writes the changed reservations, 200 a statement.
func (c *reservations) Flush(ctx context.Context, tx *sqldb.Tx) error {
	if len(c.order) == 0 {
		return nil
	}
	rows := sqldb.NewRows(`INSERT INTO reservations (order_id, status, lines, reason, created_at, updated_at) VALUES`, 6,
		`ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, reason = excluded.reason, updated_at = excluded.updated_at`)
	for _, id := range c.order {
		r := c.m[id]
		lines, err := json.Marshal(nonNil(r.Lines))
		if err != nil {
			return fmt.Errorf("inventory: lines of reservation %s: %w", id, err)
		}
		rows.Add(id, r.Status, string(lines), r.Reason, r.createdAt, r.updatedAt)
	}
	clear(c.dirty)
	c.order = c.order[:0]
	if err := rows.Flush(ctx, tx); err != nil {
		return fmt.Errorf("inventory: write reservations: %w", err)
	}
	return nil
}

// Discard forgets every reservation.
func (c *reservations) Discard() {
	clear(c.m)
	clear(c.dirty)
	c.order = c.order[:0]
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
