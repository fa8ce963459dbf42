package inventory

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
	// stored: the row is in the database (read from it, or flushed by
	// this transaction); a reservation inserted by the transaction is
	// not, until it flushes.
	stored bool
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
			c.set(id, nil) // unless found below
			args = append(args, id)
		}
	}
	found, err := sqldb.ListIn(ctx, tx, `SELECT order_id, status, lines, reason, created_at, updated_at FROM reservations
		WHERE order_id`, ` ORDER BY order_id`+tx.ForUpdate(), args, scanReservation)
	if err != nil {
		return fmt.Errorf("inventory: read %d reservations: %w", len(args), err)
	}
	for _, r := range found {
		r.stored = true
		c.m[r.OrderID] = r // the nil set above is what a rollback restores: unknown
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
// it reports whether it did. The row is written with the transaction's
// other reservations before it commits — on PostgreSQL in the COMMIT's
// round trip. The order's reservation was read first (locked, had it
// existed): a concurrent transaction that inserts one meanwhile (another
// instance, in a rebalance) fails this one's insert at commit, and the
// transaction runs again (sqldb.ErrRunAgain), finding it.
func (s *store) insertReservation(ctx context.Context, tx *sqldb.Tx, r *reservation, now time.Time) (bool, error) {
	existing, err := s.reservation(ctx, tx, r.OrderID)
	if err != nil || existing != nil {
		return false, err
	}
	r.createdAt, r.updatedAt = now.UnixMilli(), now.UnixMilli()
	r.stored = false
	c := reservationCache(tx)
	c.set(r.OrderID, r)
	c.changed(r.OrderID)
	return true, nil
}

// transition moves an order's reservation from status from to status to,
// and reports whether it did: false means it was not in status from (or
// the order has none).
func (s *store) transition(ctx context.Context, tx *sqldb.Tx, orderID, from, to, reason string, now time.Time) (bool, error) {
	r, err := s.reservation(ctx, tx, orderID)
	if err != nil || r == nil || r.Status != from {
		return false, err
	}
	next := *r
	next.Status, next.Reason, next.updatedAt = to, reason, now.UnixMilli()
	c := reservationCache(tx)
	c.set(orderID, &next)
	c.changed(orderID)
	return true, nil
}

// reservations caches the reservations a transaction read, by order id
// (nil: the order has none), so that a batch of events reads them in one
// query, and holds those changed since, written with one statement each
// for the new and the changed ones when the transaction flushes its
// pending writes (sqldb.Tx.Pending). It is a sqldb.Rewinder: every change
// to the cache — a reservation read, inserted or moved — is logged with
// what it replaced, and a rollback to a savepoint undoes those made after
// it (a read among them: its lock went with the rollback). A reservation
// is never changed in place: a change replaces it, so the log holds the
// one before.
type reservations struct {
	m     map[string]*reservation
	dirty map[string]bool
	order []string // the changed reservations' order ids, in the order changed
	log   []reservationChange
}

// reservationChange is what one change to a reservations cache replaced.
type reservationChange struct {
	orderID  string
	prev     *reservation // the order's entry before
	known    bool         // whether the cache had an entry
	wasDirty bool
}

type reservationsKey struct{}

func reservationCache(tx *sqldb.Tx) *reservations {
	return tx.Pending(reservationsKey{}, func() sqldb.Pending {
		return &reservations{m: map[string]*reservation{}, dirty: map[string]bool{}}
	}).(*reservations)
}

// set makes r (nil: none) the order's entry, logging the one it replaces.
func (c *reservations) set(orderID string, r *reservation) {
	prev, known := c.m[orderID]
	c.log = append(c.log, reservationChange{orderID: orderID, prev: prev, known: known, wasDirty: c.dirty[orderID]})
	c.m[orderID] = r
}

// changed marks the order's entry to be written.
func (c *reservations) changed(orderID string) {
	if !c.dirty[orderID] {
		c.dirty[orderID] = true
		c.order = append(c.order, orderID)
	}
}

// Len is the length of the change log (sqldb.Rewinder).
func (c *reservations) Len() int { return len(c.log) }

// Truncate undoes the changes after the first n, latest first
// (sqldb.Rewinder).
func (c *reservations) Truncate(n int) {
	for i := len(c.log) - 1; i >= n; i-- {
		ch := c.log[i]
		if ch.known {
			c.m[ch.orderID] = ch.prev
		} else {
			delete(c.m, ch.orderID)
		}
		if !ch.wasDirty && c.dirty[ch.orderID] {
			delete(c.dirty, ch.orderID)
			c.order = slices.DeleteFunc(c.order, func(id string) bool { return id == ch.orderID })
		}
	}
	if n < len(c.log) {
		clear(c.log[n:])
		c.log = c.log[:n]
	}
}

// Flush writes the changed reservations: the new ones with one insert,
// which a reservation another transaction inserted meanwhile fails with
// sqldb.ErrRunAgain, the others with one upsert (200 rows a statement).
// The cache then holds what the database does: its log starts again.
func (c *reservations) Flush(ctx context.Context, tx *sqldb.Tx) error {
	if len(c.order) == 0 {
		return nil
	}
	inserts := sqldb.NewRows(`INSERT INTO reservations (order_id, status, lines, reason, created_at, updated_at) VALUES`, 6, "").
		FailAs(func(err error) error {
			if sqldb.IsUniqueViolation(err) {
				return fmt.Errorf("inventory: insert reservations: another transaction inserted one first: %w: %w", sqldb.ErrRunAgain, err)
			}
			return fmt.Errorf("inventory: insert reservations: %w", err)
		})
	updates := sqldb.NewRows(`INSERT INTO reservations (order_id, status, lines, reason, created_at, updated_at) VALUES`, 6,
		`ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, reason = excluded.reason, updated_at = excluded.updated_at`)
	for _, id := range c.order {
		r := c.m[id]
		lines, err := json.Marshal(nonNil(r.Lines))
		if err != nil {
			return fmt.Errorf("inventory: lines of reservation %s: %w", id, err)
		}
		rows := updates
		if !r.stored {
			rows = inserts
			stored := *r // replaced, not changed in place: see reservations
			stored.stored = true
			c.m[id] = &stored
		}
		rows.Add(id, r.Status, string(lines), r.Reason, r.createdAt, r.updatedAt)
	}
	clear(c.dirty)
	c.order = c.order[:0]
	clear(c.log)
	c.log = c.log[:0]
	if err := inserts.Flush(ctx, tx); err != nil {
		return err
	}
	if err := updates.Flush(ctx, tx); err != nil {
		return fmt.Errorf("inventory: write reservations: %w", err)
	}
	return nil
}

// Discard forgets every reservation: the transaction rolled back.
func (c *reservations) Discard() {
	clear(c.m)
	clear(c.dirty)
	c.order = c.order[:0]
	clear(c.log)
	c.log = c.log[:0]
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
