package payment_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/app"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/payment"
)

func (f *fixture) ledger(token, paymentID string) payment.Ledger {
	f.t.Helper()
	var l payment.Ledger
	f.JSON("GET", "/api/v1/payments/"+paymentID+"/ledger", token, nil, http.StatusOK, &l)
	return l
}

func TestPaymentLedger(t *testing.T) {
	f := start(t)
	tok := f.vault("u1", payment.TestCardApproved)
	o := saga("corr-ledger")
	f.apply("inventory-service", o, reserved("o-led"))
	f.apply("order-service", o, orderCreated("o-led", "u1", tok, 1200))
	f.apply("order-service", o, cancelled("o-led", "u1"))
	pay := f.paymentOf("u1", "o-led", payment.StatusRefunded)

	owner := f.Token("u1", "customer")
	l := f.ledger(owner, pay.ID)
	type step struct {
		typ             string
		amount, balance int64
		status          string
	}
	want := []step{
		{payment.ReservationNoted, 0, 0, payment.StatusAwaiting},
		{payment.OrderNoted, 1200, 0, payment.StatusAwaiting},
		{payment.ChargeAuthorised, 1200, 0, payment.StatusAwaiting},
		{payment.ChargeCaptured, 1200, 1200, payment.StatusProcessed},
		{payment.CancellationNoted, 0, 1200, payment.StatusProcessed},
		{payment.ChargeRefunded, 1200, 0, payment.StatusRefunded},
	}
	if l.PaymentID != pay.ID || l.OrderID != "o-led" || l.UserID != "u1" || len(l.Entries) != len(want) {
		t.Fatalf("ledger %+v", l)
	}
	for i, e := range l.Entries {
		got := step{e.Type, e.AmountCents, e.BalanceCents, e.Status}
		if got != want[i] || e.Version != int64(i+1) || e.Time.IsZero() || (i > 0 && e.Currency != "EUR") {
			t.Errorf("entry %d = %+v, want %+v at version %d", i, e, want[i], i+1)
		}
	}
	if l.Entries[3].AuthCode != pay.AuthCode || l.Entries[5].Reason != "customer-cancelled" {
		t.Errorf("captured %+v, refunded %+v", l.Entries[3], l.Entries[5])
	}
	// Its owner or an admin; to anyone else it does not exist.
	if admin := f.ledger(f.Token("admin-1", "admin"), pay.ID); len(admin.Entries) != len(want) {
		t.Errorf("admin sees %+v", admin)
	}
	f.apply("inventory-service", o, reserved("o-unknown")) // a stream, but no order yet
	for _, c := range []struct {
		path, token string
		status      int
	}{
		{"/api/v1/payments/" + pay.ID + "/ledger", "", http.StatusUnauthorized},
		{"/api/v1/payments/" + pay.ID + "/ledger", f.Token("u2", "customer"), http.StatusNotFound},
		{"/api/v1/payments/nope/ledger", owner, http.StatusNotFound},
		{"/api/v1/payments/" + payment.PaymentID("o-unknown") + "/ledger", f.Token("admin-1", "admin"), http.StatusNotFound},
	} {
		if status, _, body := f.Do("GET", c.path, c.token, nil); status != c.status {
			t.Errorf("GET %s: %d %s, want %d", c.path, status, body, c.status)
		}
	}
}

// chargeRacesCancellation publishes, for orders already known, their
// InventoryReserved (inventory topic) and OrderCancelled (orders topic) at
// once: the charge races the cancellation on every order's stream. Each
// order ends either voided and never charged, or charged once and
// refunded once, with a zero balance.
func chargeRacesCancellation(t *testing.T, f *fixture) {
	t.Helper()
	const n = 24
	tok := f.vault("u1", payment.TestCardApproved)
	o := saga("corr-race")
	var created []event.Payload
	for i := range n {
		created = append(created, orderCreated(fmt.Sprintf("race-%d", i), "u1", tok, 700))
	}
	last := f.Publish("order-service", o, created...)
	f.Eventually("orders noted", func() bool {
		return payment.Processed(f.App.Service("payment"), last[n-1].EventID)
	})
	for i := range n {
		id := fmt.Sprintf("race-%d", i)
		go f.Publish("inventory-service", o, reserved(id))
		f.Publish("order-service", o, cancelled(id, "u1"))
	}
	owner := f.Token("u1", "customer")
	for i := range n {
		id := fmt.Sprintf("race-%d", i)
		var pay payment.Payment
		f.Eventually(id+" settled", func() bool {
			ps := f.payments(owner, "?orderId="+id)
			if len(ps) == 1 {
				pay = ps[0]
			}
			return pay.Status == payment.StatusVoided || pay.Status == payment.StatusRefunded
		})
		charges, refunds := f.provider.counts(pay.ID)
		if pay.Status == payment.StatusVoided && (charges != 0 || refunds != 0) ||
			pay.Status == payment.StatusRefunded && (charges != 1 || refunds != 1) {
			t.Errorf("%s %s: %d charges, %d refunds", id, pay.Status, charges, refunds)
		}
		l := f.ledger(owner, pay.ID)
		captured := 0
		for _, e := range l.Entries {
			if e.Type == payment.ChargeCaptured {
				captured++
			}
			if e.BalanceCents < 0 || e.BalanceCents > 700 {
				t.Errorf("%s: entry %+v", id, e)
			}
		}
		if end := l.Entries[len(l.Entries)-1]; end.BalanceCents != 0 || captured > 1 || (captured == 1) != (pay.Status == payment.StatusRefunded) {
			t.Errorf("%s %s: %d captures, ledger %+v", id, pay.Status, captured, l.Entries)
		}
		// The outbox publishes after the commit: the events may trail the API.
		// The outbox publishes after the commit: the events may trail the
		// API. One PaymentProcessed and one PaymentRefunded per capture.
		f.Eventually(id+" events published", func() bool {
			return f.count("PaymentProcessed", id) == captured && f.count("PaymentRefunded", id) == captured
		})
	}
}

// On one instance (SQLite, or PostgreSQL with EVENTMART_TEST_SERVICES_DB=postgres).
func TestChargeRacingCancellationKeepsTheLedger(t *testing.T) {
	chargeRacesCancellation(t, start(t))
}

// With two payment instances on one PostgreSQL database, sharing the
// partitions of both topics: an order's reservation and cancellation may
// be handled by different processes at once; the loser of the append
// retries on what the winner committed.
func TestChargeRacingCancellationAcrossInstances(t *testing.T) {
	p := newProvider()
	defs := []service.Def{payment.DefWith(p)}
	f := &fixture{Harness: apptest.Start(t, defs, apptest.OnPostgres(t, defs)), t: t, provider: p}
	second := f.StartInstance()
	conflicts := eventstore.RetriedConflicts()
	chargeRacesCancellation(t, f)
	for i, a := range []*app.App{f.App, second} {
		if st := a.Consumers()[payment.Name].Stats(); st.Parked != 0 {
			t.Errorf("instance %d: %+v", i+1, st)
		}
	}
	t.Logf("%d conflicting appends retried", eventstore.RetriedConflicts()-conflicts)
}

// With two payment instances on one PostgreSQL database, each keeping
// the payments it loaded and saved in memory: a payment the second
// charged is what the first decides on next, though it remembers the
// payment from before. (If the first decided on what it remembers — an
// order neither reserved nor charged — the cancellation would void it and
// refund nothing.)
func TestInstancesDecideOnEachOthersAppends(t *testing.T) {
	p := newProvider()
	defs := []service.Def{payment.DefWith(p)}
	f := &fixture{Harness: apptest.Start(t, defs, apptest.OnPostgres(t, defs)), t: t, provider: p}
	second := f.StartInstance().Service(payment.Name)
	first := f.App.Service(payment.Name)
	ctx := context.Background()
	tok := f.vault("u1", payment.TestCardApproved)
	o := saga("corr-instances")
	handle := func(svc service.Service, source string, p event.Payload) {
		t.Helper()
		e, err := event.New(source, o, p)
		if err != nil {
			t.Fatal(err)
		}
		if err := payment.Handle(ctx, svc, e); err != nil {
			t.Fatal(err)
		}
	}
	const id = "o-instances"
	handle(first, "order-service", orderCreated(id, "u1", tok, 800))
	v, ok := payment.RememberedVersion(first, id)
	if !ok {
		t.Fatal("the first instance does not remember the payment it noted")
	}
	handle(second, "inventory-service", reserved(id))
	if got, _ := payment.RememberedVersion(first, id); got != v {
		t.Fatalf("the first instance remembers the payment at %d, want %d still", got, v)
	}
	handle(first, "order-service", cancelled(id, "u1"))
	pid := payment.PaymentID(id)
	if charges, refunds := p.counts(pid); charges != 1 || refunds != 1 {
		t.Fatalf("%d charges, %d refunds; want the charge made on the second instance refunded on the first", charges, refunds)
	}
	l := f.ledger(f.Token("u1", "customer"), pid)
	if got, _ := payment.RememberedVersion(first, id); got != int64(len(l.Entries)) {
		t.Fatalf("the first instance remembers the payment at %d, want %d (ledger %+v)", got, len(l.Entries), l.Entries)
	}
	if pay := f.paymentOf("u1", id, payment.StatusRefunded); pay.ID != pid {
		t.Fatalf("payment %+v", pay)
	}
}

// raceOnEachOrder runs, for orders already known, the handlers of their
// InventoryReserved and of two OrderCancelled (distinct events, as a
// redelivery by another producer) at the same moment, spread over the
// services given (instances sharing one database): the charge races the
// cancellations on the order's stream. Each order ends voided and never
// charged, or charged once and refunded once; never refunded twice.
func raceOnEachOrder(t *testing.T, f *fixture, svcs ...service.Service) {
	t.Helper()
	ctx := context.Background()
	tok := f.vault("u1", payment.TestCardApproved)
	o := saga("corr-direct")
	envelope := func(source string, p event.Payload) *event.Envelope {
		e, err := event.New(source, o, p)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	outcomes := map[string]int{}
	for i := range 16 {
		id := fmt.Sprintf("direct-%d", i)
		if err := payment.Handle(ctx, svcs[0], envelope("order-service", orderCreated(id, "u1", tok, 800))); err != nil {
			t.Fatal(err)
		}
		evs := []*event.Envelope{envelope("inventory-service", reserved(id)),
			envelope("order-service", cancelled(id, "u1")), envelope("order-service", cancelled(id, "u1"))}
		errs := make([]error, len(evs))
		var wg sync.WaitGroup
		begin := make(chan struct{})
		for j, e := range evs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-begin
				errs[j] = payment.Handle(ctx, svcs[(i+j)%len(svcs)], e)
			}()
		}
		close(begin)
		wg.Wait()
		for j, err := range errs {
			if err != nil {
				t.Fatalf("%s: handler %d: %v", id, j, err)
			}
		}
		ps := f.payments(f.Token("u1", "customer"), "?orderId="+id)
		if len(ps) != 1 {
			t.Fatalf("%s: payments %+v", id, ps)
		}
		pay := ps[0]
		l := f.ledger(f.Token("u1", "customer"), pay.ID)
		n := map[string]int{}
		for _, e := range l.Entries {
			n[e.Type]++
		}
		charges, refunds := f.provider.counts(pay.ID)
		outcomes[pay.Status]++
		switch {
		case n[payment.CancellationNoted] != 1 || n[payment.ReservationNoted] != 1 || l.Entries[len(l.Entries)-1].BalanceCents != 0:
			t.Errorf("%s: ledger %+v", id, l.Entries)
		case pay.Status == payment.StatusVoided && (charges != 0 || refunds != 0 || n[payment.ChargeCaptured] != 0):
			t.Errorf("%s voided: %d charges, %d refunds, ledger %+v", id, charges, refunds, l.Entries)
		case pay.Status == payment.StatusRefunded && (charges != 1 || refunds != 1 || n[payment.ChargeCaptured] != 1 || n[payment.ChargeRefunded] != 1):
			t.Errorf("%s refunded: %d charges, %d refunds, ledger %+v", id, charges, refunds, l.Entries)
		case pay.Status != payment.StatusVoided && pay.Status != payment.StatusRefunded:
			t.Errorf("%s: %+v", id, pay)
		}
	}
	t.Logf("outcomes %v", outcomes)
}

func TestConcurrentCommandsOnOneOrder(t *testing.T) {
	f := start(t)
	raceOnEachOrder(t, f, f.App.Service(payment.Name))
}

func TestConcurrentCommandsOnOneOrderAcrossInstances(t *testing.T) {
	p := newProvider()
	defs := []service.Def{payment.DefWith(p)}
	f := &fixture{Harness: apptest.Start(t, defs, apptest.OnPostgres(t, defs)), t: t, provider: p}
	second := f.StartInstance()
	conflicts := eventstore.RetriedConflicts()
	raceOnEachOrder(t, f, f.App.Service(payment.Name), second.Service(payment.Name))
	if eventstore.RetriedConflicts() == conflicts {
		t.Log("no append conflicted: the race was not exercised this time")
	}
	t.Logf("%d conflicting appends retried", eventstore.RetriedConflicts()-conflicts)
}

// The payments table is a projection: damaged, it is rebuilt from the
// streams, live.
func TestRebuildPaymentsFromTheStore(t *testing.T) {
	f := start(t)
	tok := f.vault("u1", payment.TestCardApproved)
	o := saga("corr-rebuild")
	f.apply("order-service", o, orderCreated("o-a", "u1", tok, 300))
	f.apply("inventory-service", o, reserved("o-a"))
	f.apply("order-service", o, orderCreated("o-b", "u1", tok, 400))
	a, b := f.paymentOf("u1", "o-a", payment.StatusProcessed), f.paymentOf("u1", "o-b", payment.StatusAwaiting)

	db := f.App.DB("payment")
	for _, q := range []string{`UPDATE payments SET status = 'failed', amount_cents = 1 WHERE order_id = 'o-a'`, `DELETE FROM payments WHERE order_id = 'o-b'`} {
		if _, err := db.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	admin := f.Token("admin-1", "admin")
	var body struct{ Rebuilt []app.RebuildResult }
	f.JSON("POST", "/api/v1/admin/rebuild/payment", admin, nil, http.StatusOK, &body)
	if len(body.Rebuilt) != 1 || body.Rebuilt[0].Table != "payments" || body.Rebuilt[0].Applied != 5 || !body.Rebuilt[0].FromStore {
		t.Errorf("rebuilt %+v, want the payments table from 5 events", body.Rebuilt)
	}
	if got := f.paymentOf("u1", "o-a", payment.StatusProcessed); got != a {
		t.Errorf("o-a rebuilt as %+v, want %+v", got, a)
	}
	if got := f.paymentOf("u1", "o-b", payment.StatusAwaiting); got != b {
		t.Errorf("o-b rebuilt as %+v, want %+v", got, b)
	}
	// The rebuilt projection goes on living.
	f.apply("inventory-service", o, reserved("o-b"))
	f.paymentOf("u1", "o-b", payment.StatusProcessed)
}

// The previous release's rows (written here as its code wrote them: one
// payments row per order, no stream) become one LedgerImported event per
// payment at start, once; nothing is lost and the projection equals the
// rows. A refund afterwards draws on the imported balance.
func TestImportOfPaymentRowsWithoutStreams(t *testing.T) {
	f := start(t)
	tok := f.vault("u1", payment.TestCardApproved)
	db := f.App.DB("payment")
	ctx := context.Background()
	charged, pending := payment.PaymentID("old-1"), payment.PaymentID("old-2")
	_, err := db.Exec(ctx, `INSERT INTO payments (payment_id, order_id, user_id, amount_cents, currency, card_token, card_last4, status,
		auth_code, failure_code, reason, has_order, reserved, cancelled, created_at, updated_at) VALUES
		(?, 'old-1', 'u1', 900, 'EUR', ?, '4242', 'processed', 'AUTH-OLD', '', '', 1, 1, 0, 1000, 2000),
		(?, 'old-2', 'u1', 500, 'EUR', ?, '4242', 'awaiting', '', '', '', 1, 0, 0, 3000, 3000)`, charged, tok, pending, tok)
	if err != nil {
		t.Fatal(err)
	}
	before := f.payments(f.Token("u1", "customer"), "")
	f.Restart()
	f.Restart() // a second start imports nothing more
	after := f.payments(f.Token("u1", "customer"), "")
	if len(after) != 2 || len(before) != 2 || after[0] != before[0] || after[1] != before[1] {
		t.Errorf("after the import %+v, want %+v", after, before)
	}
	l := f.ledger(f.Token("u1", "customer"), charged)
	if len(l.Entries) != 1 || l.Entries[0].Type != payment.LedgerImported || l.Entries[0].BalanceCents != 900 || l.Entries[0].Status != payment.StatusProcessed {
		t.Fatalf("ledger %+v, want one import", l)
	}
	o := saga("corr-old")
	f.apply("order-service", o, cancelled("old-1", "u1"))
	f.apply("inventory-service", o, reserved("old-2"))
	if got := f.paymentOf("u1", "old-1", payment.StatusRefunded); got.AuthCode != "AUTH-OLD" {
		t.Errorf("old-1 %+v", got)
	}
	if _, refunds := f.provider.counts(charged); refunds != 1 {
		t.Errorf("%d refunds of the imported charge", refunds)
	}
	f.paymentOf("u1", "old-2", payment.StatusProcessed)
}

// A data directory written by the previous release's binary (three
// payments: processed, declined, refunded; testdata/previous-release/README.md
// says how) starts under this release with its payments unchanged and
// their balances in the ledgers; the processed one can still be refunded,
// once.
func TestMigrationOfAPreviousReleaseDataDirectory(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, filepath.Join("testdata", "previous-release", "payment.sqlite"), filepath.Join(dir, "payment.db"))
	p := newProvider()
	f := &fixture{Harness: apptest.Start(t, []service.Def{payment.DefWith(p)}, func(c *app.Config) { c.DataDir, c.DB = dir, "" }), t: t, provider: p}
	const (
		user                        = "01a24a05-b4c7-74ea-afde-468aacf6b87a"
		processed, failed, refunded = "01a24a05-bc2b-7cbb-a2f4-644f15d5754a", "01a24a05-c343-7414-8b5a-bf2633ddf81f", "01a24a05-ca15-7ac5-bf4d-bd242e54ade8"
	)
	owner := f.Token(user, "customer")
	got := map[string]payment.Payment{}
	for _, p := range f.payments(owner, "") {
		got[p.OrderID] = p
	}
	for _, w := range []struct {
		order, status string
		amount        int64
		balance       int64
	}{
		{processed, payment.StatusProcessed, 1200, 1200},
		{failed, payment.StatusFailed, 1200, 0},
		{refunded, payment.StatusRefunded, 2400, 0},
	} {
		pay := got[w.order]
		if pay.Status != w.status || pay.AmountCents != w.amount || pay.ID != payment.PaymentID(w.order) || pay.CreatedAt.IsZero() {
			t.Errorf("after the migration %+v, want %s of %d", pay, w.status, w.amount)
		}
		l := f.ledger(owner, pay.ID)
		if len(l.Entries) != 1 || l.Entries[0].Type != payment.LedgerImported || l.Entries[0].BalanceCents != w.balance || l.Entries[0].AmountCents != w.amount {
			t.Errorf("ledger of %s: %+v, want one import with balance %d", w.order, l.Entries, w.balance)
		}
	}
	if got[failed].FailureCode != "card-declined" || got[refunded].AuthCode == "" || got[processed].CardLast4 != "4242" {
		t.Errorf("imported %+v", got)
	}
	o := saga("corr-migrated")
	f.apply("order-service", o, cancelled(processed, user))
	f.apply("order-service", o, cancelled(refunded, user)) // a redelivery of its cancellation: nothing more to refund
	f.paymentOf(user, processed, payment.StatusRefunded)
	if _, refunds := p.counts(payment.PaymentID(processed)); refunds != 1 {
		t.Errorf("%d refunds of the migrated charge", refunds)
	}
	if _, refunds := p.counts(payment.PaymentID(refunded)); refunds != 0 {
		t.Errorf("%d refunds of a payment refunded before the migration", refunds)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
