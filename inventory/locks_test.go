package inventory_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
	"github.com/eventmart/eventmart/inventory"
)

// TestConcurrentBatchesOnPostgresLockInOneOrder: two members of the
// inventory group apply, at once on one PostgreSQL database, batches that
// reserve two products in opposite orders (A, then B; B, then A). Each
// batch's first reservation waits, once applied, until the other batch
// has applied its own first one too — or is seen waiting for a lock. With
// the batch's stock rows locked up front in product order
// (inventory.Prepare), the second batch waits for the first before
// touching anything: no deadlock, so no transaction runs twice (each
// record is handled once), and both products end with both reservations.
// Without it each batch would hold one product and wait for the other.
func TestConcurrentBatchesOnPostgresLockInOneOrder(t *testing.T) {
	defs := []service.Def{inventory.Def()}
	h := apptest.Start(t, defs, apptest.OnPostgres(t, defs))
	admin := h.Token("admin-1", "admin")
	product(t, h, admin, "A", 10)
	product(t, h, admin, "B", 10)
	db := h.App.DB(inventory.Name)

	var handled atomic.Int64
	firstDone := []chan struct{}{make(chan struct{}), make(chan struct{})}
	// member returns a consumer of the group whose OrderCreated handler,
	// after the first record of its batch, waits for the other member.
	member := func(i int) *inbox.Consumer {
		first := true
		return groupMember(t, h, "OrderCreated", func(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p event.Payload, apply inbox.Func) error {
			handled.Add(1)
			if err := apply(ctx, tx, e, p); err != nil {
				return err
			}
			if !first {
				return nil
			}
			first = false
			close(firstDone[i])
			other := firstDone[1-i]
			for {
				select {
				case <-other:
					return nil
				default:
				}
				var waiting int
				if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
					return err
				}
				if waiting > 0 {
					return nil
				}
				select { // poll the server's view of the other member
				case <-other:
					return nil
				case <-time.After(5 * time.Millisecond):
				}
			}
		})
	}
	msg := func(orderID, productID string) *bus.Message {
		return fromOrders(h, order(orderID, line(productID, 1)))
	}
	batches := [][]*bus.Message{
		{msg("ab-1", "A"), msg("ab-2", "B")},
		{msg("ba-1", "B"), msg("ba-2", "A")},
	}
	ctx := context.Background()
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = member(i).Handle(ctx, batches[i])
		}()
		if i == 0 {
			<-firstDone[0] // the first batch holds its locks before the second starts
		}
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("batch %d: %v", i+1, err)
		}
	}
	if n := handled.Load(); n != 4 {
		t.Errorf("%d OrderCreated handled, want 4: a transaction ran again (a deadlock broken by PostgreSQL)", n)
	}
	for _, id := range []string{"A", "B"} {
		if st := stock(t, h, id); st.Reserved != 2 || st.Available != 8 || st.OnHand != 10 {
			t.Errorf("%s: %+v, want 2 reserved of 10", id, st)
		}
	}
}

// TestReservationInsertedMeanwhileRunsTheTransactionAgain: two members of
// the inventory group take, at once on one PostgreSQL database, the first
// event of one order — an OrderCancelled before its OrderCreated, which
// locks no stock row — so both find no reservation and both record the
// order's tombstone. The rows are inserted at commit: the second insert
// fails on the first's row, and its transaction runs again
// (sqldb.ErrRunAgain), finds the tombstone, and does nothing. Both
// batches succeed and the order has one reservation, cancelled.
func TestReservationInsertedMeanwhileRunsTheTransactionAgain(t *testing.T) {
	defs := []service.Def{inventory.Def()}
	h := apptest.Start(t, defs, apptest.OnPostgres(t, defs))
	db := h.App.DB(inventory.Name)
	var handled atomic.Int64
	applied := []chan struct{}{make(chan struct{}), make(chan struct{})}
	member := func(i int) *inbox.Consumer {
		first := true
		return groupMember(t, h, "OrderCancelled", func(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p event.Payload, apply inbox.Func) error {
			handled.Add(1)
			if err := apply(ctx, tx, e, p); err != nil {
				return err
			}
			if first { // both apply before either commits
				first = false
				close(applied[i])
				select {
				case <-applied[1-i]:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
	}
	// The same order's OrderCancelled, as two deliveries: a redelivery
	// during a rebalance, the old member still at work.
	cancelled := func() []*bus.Message {
		return []*bus.Message{fromOrders(h, &event.OrderCancelled{OrderID: "race-1", UserID: "cust-1", ReasonCode: "timeout"})}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before := db.Stats().RunAgain
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = member(i).Handle(ctx, cancelled())
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("batch %d: %v", i+1, err)
		}
	}
	if n := db.Stats().RunAgain - before; n != 1 || handled.Load() != 3 {
		t.Errorf("%d transactions ran again, OrderCancelled handled %d times; want 1 and 3: the second insert of the tombstone fails at commit", n, handled.Load())
	}
	var rows int
	var status string
	if err := db.QueryRow(ctx, `SELECT COUNT(*), MIN(status) FROM reservations WHERE order_id = 'race-1'`).Scan(&rows, &status); err != nil || rows != 1 || status != "cancelled" {
		t.Errorf("reservations of race-1: %d, %q (%v); want one, cancelled", rows, status, err)
	}
}

// groupMember returns a consumer of the inventory group on h's database,
// as a member of the group applies batches (the service's handlers and
// Prepare), whose handler of typ is around with the service's own as
// apply.
func groupMember(t *testing.T, h *apptest.Harness, typ event.Type, around func(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p event.Payload, apply inbox.Func) error) *inbox.Consumer {
	t.Helper()
	svc := h.App.Service(inventory.Name)
	hs, err := inbox.ByType(svc.Handlers())
	if err != nil {
		t.Fatal(err)
	}
	apply := hs[typ]
	hs[typ] = func(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p event.Payload) error {
		return around(ctx, tx, e, p, apply)
	}
	return &inbox.Consumer{Group: "inventory-service", DB: h.App.DB(inventory.Name), Handlers: hs, Prepare: svc.(inbox.Preparer).Prepare,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// fromOrders is p as a record of the order service.
func fromOrders(h *apptest.Harness, p event.Payload) *bus.Message {
	_, m := h.Message("order-service", origin, p)
	return m
}
