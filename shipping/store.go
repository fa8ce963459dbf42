package shipping

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

// lock returns the shipment row of orderID for a read-modify-write within
// tx, creating it (waiting, nothing seen yet, with its shipment id) if this
// is the first event about the order. The upsert's DO UPDATE takes the row
// lock on PostgreSQL even though it changes nothing, so handlers of one
// order running concurrently (its events come on different topics, hence
// partitions), the admin API and the carrier take turns and none loses
// another's update; SQLite has a single writer.
func (s *store) lock(ctx context.Context, tx *sqldb.Tx, orderID string, now time.Time) (*Shipment, error) {
	_, err := tx.Exec(ctx, `INSERT INTO shipments (order_id, shipment_id, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (order_id) DO UPDATE SET order_id = excluded.order_id`,
		orderID, event.NewID(), StatusWaiting, now.UnixMilli(), now.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("shipping: lock shipment of order %s: %w", orderID, err)
	}
	sh, err := scanShipment(tx.QueryRow(ctx, `SELECT `+shipmentColumns+` FROM shipments WHERE order_id = ?`, orderID))
	if err != nil {
		return nil, fmt.Errorf("shipping: read shipment of order %s: %w", orderID, err)
	}
	return sh, nil
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

// save writes every changeable column of sh.
func (s *store) save(ctx context.Context, tx *sqldb.Tx, sh *Shipment) error {
	address, err := json.Marshal(sh.Address)
	if err != nil {
		return fmt.Errorf("shipping: address of order %s: %w", sh.OrderID, err)
	}
	_, err = tx.Exec(ctx, `UPDATE shipments SET user_id = ?, address = ?, has_order = ?, paid = ?, cancelled = ?, shipped_order = ?, status = ?,
		carrier = ?, tracking_number = ?, correlation_id = ?, last_event_id = ?, updated_at = ?, shipped_at = ?, dispatched_at = ?, delivered_at = ?
		WHERE order_id = ?`,
		sh.UserID, string(address), b2i(sh.hasOrder), b2i(sh.paid), b2i(sh.cancelled), b2i(sh.shippedOrder), sh.Status,
		sh.Carrier, sh.TrackingNumber, sh.correlationID, sh.lastEventID, sh.UpdatedAt.UnixMilli(),
		toMillis(sh.shippedAt), toMillis(sh.DispatchedAt), toMillis(sh.DeliveredAt), sh.OrderID)
	if err != nil {
		return fmt.Errorf("shipping: save shipment of order %s: %w", sh.OrderID, err)
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
// deliverBy. Oldest change first, at most limit.
func (s *store) due(ctx context.Context, tx *sqldb.Tx, dispatchBy, deliverBy time.Time, limit int) ([]string, error) {
	ids, err := sqldb.List(ctx, tx, `SELECT order_id FROM shipments
		WHERE (status = ? AND shipped_order = 1 AND shipped_at <= ?) OR (status = ? AND dispatched_at <= ?)
		ORDER BY updated_at, order_id LIMIT ?`,
		[]any{StatusCreated, dispatchBy.UnixMilli(), StatusDispatched, deliverBy.UnixMilli(), limit}, sqldb.ScanOne[string])
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
