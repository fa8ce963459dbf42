package inventory

import (
	"context"
	"fmt"
	"slices"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Prepare reads, before a batch of events is applied, the reservations of
// the orders it concerns, in one query, into the transaction's cache
// (store.loadReservations: the handlers find them there, and the
// reservations they change are written together before it commits), and
// on PostgreSQL locks the stock rows of every product the batch will move,
// in product id order, then loads those stocks into the transaction's
// cache, in one query for the ones the service remembers (store.loadStocks)
// (inbox.Preparer).
//
// On PostgreSQL several transactions append to the stock streams at once
// (instances of the service, an operator's stock update): a batch that
// appended to product A and then waits for B while another holds B and
// waits for A is a deadlock, which PostgreSQL breaks only after its
// deadlock_timeout (a second) by failing one of them. Taking every lock a
// batch needs up front, in one global order, makes concurrent batches
// wait for each other instead; under READ COMMITTED each then loads the
// streams as the one before it left them. On SQLite writes are serial:
// nothing to lock.
func (s *Service) Prepare(ctx context.Context, tx *sqldb.Tx, batch []inbox.Event) error {
	var products, orders []string
	var moved []string // orders whose reservation's products OrderCancelled or OrderShipped moves
	for _, e := range batch {
		switch p := e.Payload.(type) {
		case *event.OrderCreated:
			orders = append(orders, p.OrderID)
			for _, l := range p.Lines {
				products = append(products, l.ProductID)
			}
		case *event.OrderCancelled:
			orders, moved = append(orders, p.OrderID), append(moved, p.OrderID)
		case *event.OrderShipped:
			orders, moved = append(orders, p.OrderID), append(moved, p.OrderID)
		case *event.ProductCreated:
			products = append(products, p.ProductID)
		case *event.ProductDiscontinued:
			products = append(products, p.ProductID)
		}
	}
	if len(orders) > 0 {
		if err := s.store.loadReservations(ctx, tx, orders); err != nil {
			return err
		}
	}
	held := reservationCache(tx)
	for _, id := range moved {
		if r := held.m[id]; r != nil {
			for _, l := range r.Lines {
				products = append(products, l.ProductID)
			}
		}
	}
	// Locked first (PostgreSQL), then loaded: the loads see the streams
	// as the batch before this one left them.
	if err := lockStock(ctx, tx, slices.Clone(products)...); err != nil {
		return err
	}
	return s.store.loadStocks(ctx, tx, products)
}

// lockStock locks the stock rows of products (on PostgreSQL), in product
// id order, until tx ends: see Prepare.
func lockStock(ctx context.Context, tx *sqldb.Tx, products ...string) error {
	if tx.Dialect() != sqldb.Postgres || len(products) == 0 {
		return nil
	}
	slices.Sort(products)
	products = slices.Compact(products)
	// Rows are locked as the sort returns them (LockRows above Sort).
	_, err := sqldb.ListIn(ctx, tx, `SELECT product_id FROM stock WHERE product_id`, ` ORDER BY product_id`+tx.ForUpdate(), products, sqldb.ScanOne[string])
	if err != nil {
		return fmt.Errorf("inventory: lock the stock of %d products: %w", len(products), err)
	}
	return nil
}
