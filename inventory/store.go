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
	"github.com/eventmart/eventmart/internal/sqldb"
)

// store reads the stock table — the projection of the stock streams,
// written by stockstore.go — and keeps the reservations table, the outcome
// of each order.
type store struct{ db *sqldb.DB }

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
}

// reservation reads an order's reservation; nil if there is none.
func (s *store) reservation(ctx context.Context, tx *sqldb.Tx, orderID string) (*reservation, error) {
	r := reservation{OrderID: orderID}
	var lines string
	err := tx.QueryRow(ctx, `SELECT status, lines, reason FROM reservations WHERE order_id = ?`, orderID).Scan(&r.Status, &lines, &r.Reason)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: read reservation of %s: %w", orderID, err)
	}
	if err := json.Unmarshal([]byte(lines), &r.Lines); err != nil {
		return nil, fmt.Errorf("inventory: lines of reservation %s: %w", orderID, err)
	}
	return &r, nil
}

// insertReservation records r unless the order already has a reservation;
// it reports whether it did.
func (s *store) insertReservation(ctx context.Context, tx *sqldb.Tx, r *reservation, now time.Time) (bool, error) {
	lines, err := json.Marshal(nonNil(r.Lines))
	if err != nil {
		return false, fmt.Errorf("inventory: lines of reservation %s: %w", r.OrderID, err)
	}
	res, err := tx.Exec(ctx, `INSERT INTO reservations (order_id, status, lines, reason, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (order_id) DO NOTHING`, r.OrderID, r.Status, string(lines), r.Reason, now.UnixMilli(), now.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("inventory: insert reservation %s: %w", r.OrderID, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// transition moves an order's reservation from status from to status to,
// and reports whether it did: false means it was not in status from (a
// concurrent transaction got there first).
func (s *store) transition(ctx context.Context, tx *sqldb.Tx, orderID, from, to, reason string, now time.Time) (bool, error) {
	res, err := tx.Exec(ctx, `UPDATE reservations SET status = ?, reason = ?, updated_at = ? WHERE order_id = ? AND status = ?`,
		to, reason, now.UnixMilli(), orderID, from)
	if err != nil {
		return false, fmt.Errorf("inventory: reservation %s %s -> %s: %w", orderID, from, to, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
