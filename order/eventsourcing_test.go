package order_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/app"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/order"
)

// historyItem is an item of GET /orders/{id}/history.
type historyItem struct {
	Version int64           `json:"version"`
	Type    string          `json:"type"`
	EventID string          `json:"eventId"`
	At      string          `json:"at"`
	Data    json.RawMessage `json:"data"`
	State   order.Order     `json:"state"`
}

type historyPage struct {
	Items  []historyItem `json:"items"`
	Limit  int           `json:"limit"`
	Offset int           `json:"offset"`
}

func history(t *testing.T, h *apptest.Harness, token, id, query string) historyPage {
	t.Helper()
	var p historyPage
	h.JSON("GET", orderPath+"/"+id+"/history"+query, token, nil, http.StatusOK, &p)
	return p
}

func historyTypes(p historyPage) []string {
	out := []string{}
	for _, it := range p.Items {
		out = append(out, it.Type)
	}
	return out
}

// An order's history lists its domain events, each with the order as it
// was right after it; ?asOf= answers the order at any instant.
func TestOrderHistoryAndAsOf(t *testing.T) {
	t.Parallel()
	h, _ := start(t)
	tok := h.Token("cust-1", "customer")
	s := place(t, h, tok)
	s.labelled(s.paid(s.reserved()))
	now := s.waitStatus("SHIPPED")

	p := history(t, h, tok, s.id, "")
	want := []string{order.OrderPlaced, order.PaymentConfirmed, order.ShipmentNoted, order.OrderDispatched}
	if got := historyTypes(p); !reflect.DeepEqual(got, want) || p.Limit != 50 || p.Offset != 0 {
		t.Fatalf("history %v (limit %d, offset %d), want %v", got, p.Limit, p.Offset, want)
	}
	statuses := []string{"PENDING", "CONFIRMED", "CONFIRMED", "SHIPPED"}
	var prev time.Time
	for i, it := range p.Items {
		at, err := time.Parse(time.RFC3339Nano, it.At)
		if err != nil || at.Before(prev) || it.Version != int64(i+1) || it.EventID == "" || len(it.Data) == 0 || it.State.Status != statuses[i] || it.State.ID != s.id {
			t.Errorf("item %d: %+v (%v)", i, it, err)
		}
		prev = at
	}
	if p.Items[1].State.PaymentID != "pay-"+s.id || p.Items[2].State.ShipmentID != "shp-"+s.id {
		t.Errorf("payment and label: %+v %+v", p.Items[1].State, p.Items[2].State)
	}
	if !reflect.DeepEqual(p.Items[3].State, now) {
		t.Errorf("the last state %+v, GET /orders/{id} %+v", p.Items[3].State, now)
	}
	if page := history(t, h, tok, s.id, "?limit=2&offset=1"); !reflect.DeepEqual(historyTypes(page), want[1:3]) || page.Items[0].Version != 2 {
		t.Errorf("page %+v", page)
	}

	// ?asOf=: the state after the last event at or before the instant.
	for i, it := range p.Items {
		var then order.Order
		status, hdr, b := h.Do("GET", orderPath+"/"+s.id+"?asOf="+url.QueryEscape(it.At), tok, nil)
		if status != http.StatusOK || json.Unmarshal(b, &then) != nil || hdr.Get("ETag") != "" {
			t.Fatalf("asOf %s: %d %s %v", it.At, status, b, hdr)
		}
		// Two events appended together share an instant: the later one shows.
		if last := lastAt(p.Items, it.At); !reflect.DeepEqual(then, p.Items[last].State) {
			t.Errorf("asOf item %d: %+v, want %+v", i, then, p.Items[last].State)
		}
	}
	first, _ := time.Parse(time.RFC3339Nano, p.Items[0].At)
	if !first.Equal(now.CreatedAt) {
		t.Errorf("placed at %v, created at %v", first, now.CreatedAt)
	}
	for _, c := range []struct {
		query, token string
		status       int
		message      string
	}{
		{"?asOf=" + url.QueryEscape(first.Add(-time.Microsecond).Format(time.RFC3339Nano)), tok, http.StatusNotFound, "did not exist"},
		{"?asOf=yesterday", tok, http.StatusBadRequest, "asOf must be an RFC 3339 time"},
		{"?asOf=2026-12-06", tok, http.StatusBadRequest, "asOf must be an RFC 3339 time"},
		{"?asOf=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)), h.Token("cust-2", "customer"), http.StatusNotFound, "not found"},
		{"/history", h.Token("cust-2", "customer"), http.StatusNotFound, "not found"},
		{"/history", "", http.StatusUnauthorized, ""},
		{"/history?limit=0", tok, http.StatusBadRequest, "limit"},
	} {
		path := orderPath + "/" + s.id + c.query
		status, _, b := h.Do("GET", path, c.token, nil)
		if status != c.status || !strings.Contains(errorOf(b).Error.Message, c.message) {
			t.Errorf("GET %s: %d %s, want %d %q", path, status, b, c.status, c.message)
		}
	}
	if status, _, b := h.Do("GET", orderPath+"/nope/history", tok, nil); status != http.StatusNotFound {
		t.Errorf("history of no order: %d %s", status, b)
	}
	// An admin sees anyone's.
	if admin := history(t, h, h.Token("admin-1", "admin"), s.id, ""); len(admin.Items) != len(want) {
		t.Errorf("admin sees %+v", admin)
	}
}

// lastAt is the index of the last item at instant at.
func lastAt(items []historyItem, at string) int {
	t0, _ := time.Parse(time.RFC3339Nano, at)
	last := 0
	for i, it := range items {
		if t1, _ := time.Parse(time.RFC3339Nano, it.At); !t1.After(t0) {
			last = i
		}
	}
	return last
}

// A customer's new profile reaches their orders as an event of each
// order's stream.
func TestCustomerChangeIsInTheHistory(t *testing.T) {
	t.Parallel()
	h, _ := start(t)
	tok := h.Token("cust-9", "customer")
	s := place(t, h, tok)
	before := s.get()
	h.Publish("user-service", event.Origin{CorrelationID: "corr-u"}, &event.UserUpdated{UserID: "cust-9", Email: event.Plain("new@example.com"), Name: event.Plain("New Name")})
	h.Eventually("customer changed", func() bool { return s.get().Customer.Email.Clear == "new@example.com" })
	p := history(t, h, tok, s.id, "")
	if got := historyTypes(p); !reflect.DeepEqual(got, []string{order.OrderPlaced, order.CustomerChanged}) {
		t.Fatalf("history %v", got)
	}
	if after := s.get(); !after.UpdatedAt.Equal(before.UpdatedAt) || p.Items[1].State.Customer.Name.Clear != "New Name" {
		t.Errorf("after the change %+v (updatedAt was %v)", after, before.UpdatedAt)
	}
}

// The orders table is a projection: damaged, it is rebuilt from the
// streams, live.
func TestRebuildOrdersFromTheStore(t *testing.T) {
	t.Parallel()
	h, _ := start(t)
	tok := h.Token("cust-1", "customer")
	a, b := place(t, h, tok), place(t, h, tok)
	a.paid(a.reserved())
	wantA, wantB := a.waitStatus("CONFIRMED"), b.get()

	db := h.App.DB("order")
	for _, q := range []string{`UPDATE orders SET status = 'SHIPPED', total_cents = 1 WHERE id = '` + a.id + `'`, `DELETE FROM orders WHERE id = '` + b.id + `'`} {
		if _, err := db.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	var body struct{ Rebuilt []app.RebuildResult }
	h.JSON("POST", "/api/v1/admin/rebuild/order", h.Token("admin-1", "admin"), nil, http.StatusOK, &body)
	if len(body.Rebuilt) != 1 || body.Rebuilt[0].Table != "orders" || body.Rebuilt[0].Applied != 3 || !body.Rebuilt[0].FromStore {
		t.Errorf("rebuilt %+v, want the orders table from 3 events", body.Rebuilt)
	}
	if got := a.get(); !reflect.DeepEqual(got, wantA) {
		t.Errorf("a rebuilt as %+v, want %+v", got, wantA)
	}
	if got := b.get(); !reflect.DeepEqual(got, wantB) {
		t.Errorf("b rebuilt as %+v, want %+v", got, wantB)
	}
	// The rebuilt projection goes on living.
	a.labelled(a.created)
	a.waitStatus("SHIPPED")
}

// The previous release's rows (written here as its code wrote them: an
// orders row per order, no stream) become one OrderImported event per
// order at start, once; nothing is lost, the projection equals the rows,
// and the saga goes on from them.
func TestImportOfOrderRowsWithoutStreams(t *testing.T) {
	t.Parallel()
	h, _ := start(t)
	db := h.App.DB("order")
	ctx := context.Background()
	_, err := db.Exec(ctx, `INSERT INTO orders (id, user_id, status, reason_code, reason, lines, total_cents, currency, customer_email,
		customer_name, shipping_address, card_last4, from_cart, payment_id, shipment_id, tracking_number, notified, correlation_id,
		created_event_id, created_at, updated_at) VALUES
		('old-1', 'cust-1', 'CONFIRMED', '', '', '[{"productId":"p-mug","sku":"MUG-1","name":"Mug","quantity":1,"unitPriceCents":1200}]', 1200, 'EUR',
		 'a@example.com', 'Ann', '{"name":"Ann","line1":"1 Main St","city":"Berlin","postalCode":"10115","country":"DE"}', '4242', 0, 'pay-old-1', '', '', 0,
		 'corr-old-1', 'ev-old-1', 1000, 2000),
		('old-2', 'cust-1', 'CANCELLED', 'timeout', 'late', '[]', 500, 'EUR', 'a@example.com', 'Ann', '{}', '4242', 1, '', 'shp-x', 'TRK-x', 1,
		 'corr-old-2', 'ev-old-2', 3000, 4000)`)
	if err != nil {
		t.Fatal(err)
	}
	tok := h.Token("cust-1", "customer")
	var before, after struct{ Orders []order.Order }
	h.JSON("GET", orderPath, tok, nil, http.StatusOK, &before)
	h.Restart()
	h.Restart() // a second start imports nothing more
	h.JSON("GET", orderPath, tok, nil, http.StatusOK, &after)
	if len(after.Orders) != 2 || !reflect.DeepEqual(before, after) {
		t.Errorf("after the import %+v, want %+v", after, before)
	}
	for _, o := range before.Orders {
		if p := history(t, h, tok, o.ID, ""); !reflect.DeepEqual(historyTypes(p), []string{order.OrderImported}) || !reflect.DeepEqual(p.Items[0].State, o) {
			t.Errorf("history of %s: %+v, want one import of %+v", o.ID, p, o)
		}
	}
	// The imported CONFIRMED order ships on its label, in its saga.
	s := &saga{t: t, h: h, token: tok, id: "old-1", created: &event.Envelope{CorrelationID: "corr-old-1", EventID: "ev-old-1"}}
	s.labelled(s.created)
	o := s.waitStatus("SHIPPED")
	e := h.Events.Wait(t, "OrderShipped", apptest.Keyed("old-1"))
	if e.CorrelationID != "corr-old-1" || o.CreatedAt.UnixMilli() != 1000 {
		t.Errorf("shipped %+v, event %+v", o, e)
	}
}

// A data directory written by the previous release's binary (five orders
// of one user: shipped, declined, confirmed, cancelled by the customer,
// out of stock; testdata/previous-release/README.md says how) starts under
// this release with its orders unchanged, each imported as the first event
// of its stream; the confirmed one can still be cancelled, once.
func TestMigrationOfAPreviousReleaseDataDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join("testdata", "previous-release", "order.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "order.db"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	f := newFakes()
	h := apptest.Start(t, []service.Def{order.Def(), f.catalog(), f.cart(), f.payment()}, func(c *app.Config) { c.DataDir, c.DB = dir, "" })
	const user = "01a24a62-e277-73cf-8b04-18df2b7272ee"
	tok := h.Token(user, "customer")
	var list struct{ Orders []order.Order }
	h.JSON("GET", orderPath, tok, nil, http.StatusOK, &list)
	type row struct{ status, reason string }
	want := []row{{"CANCELLED", "out-of-stock"}, {"CANCELLED", "customer-cancelled"}, {"CONFIRMED", ""}, {"CANCELLED", "payment-failed"}, {"SHIPPED", ""}}
	if len(list.Orders) != len(want) {
		t.Fatalf("orders after the migration: %+v", list.Orders)
	}
	for i, o := range list.Orders {
		if (row{o.Status, o.ReasonCode}) != want[i] || o.Customer.Email.Clear != "ada@example.com" || o.CreatedAt.IsZero() || o.UserID != user {
			t.Errorf("order %d after the migration %+v, want %v", i, o, want[i])
		}
		p := history(t, h, tok, o.ID, "")
		if !reflect.DeepEqual(historyTypes(p), []string{order.OrderImported}) || !reflect.DeepEqual(p.Items[0].State, o) {
			t.Errorf("history of %s: %+v, want one import of %+v", o.ID, p.Items, o)
		}
		// It existed from its creation on (as it was imported).
		var then order.Order
		h.JSON("GET", orderPath+"/"+o.ID+"?asOf="+url.QueryEscape(o.CreatedAt.Format(time.RFC3339Nano)), tok, nil, http.StatusOK, &then)
		if then.Status != o.Status {
			t.Errorf("asOf its creation: %+v", then)
		}
	}
	if shipped := list.Orders[4]; shipped.ShipmentID == "" || shipped.TrackingNumber == "" || shipped.PaymentID == "" {
		t.Errorf("shipped %+v", shipped)
	}
	confirmed := list.Orders[2]
	h.JSON("POST", orderPath+"/"+confirmed.ID+"/cancel", tok, nil, http.StatusOK, nil)
	if status, _, b := h.Do("POST", orderPath+"/"+confirmed.ID+"/cancel", tok, nil); status != http.StatusConflict {
		t.Errorf("second cancel: %d %s", status, b)
	}
	e := h.Events.Wait(t, "OrderCancelled", apptest.Keyed(confirmed.ID))
	if c := payloadOf[*event.OrderCancelled](t, e); c.ReasonCode != "customer-cancelled" || c.UserID != user {
		t.Errorf("OrderCancelled %+v", c)
	}
	if p := history(t, h, tok, confirmed.ID, ""); !reflect.DeepEqual(historyTypes(p), []string{order.OrderImported, order.OrderVoided}) {
		t.Errorf("history after the cancel: %v", historyTypes(p))
	}
}

// raceOnEachOrder runs, for 16 placed orders, the handlers of their
// PaymentProcessed, PaymentFailed and ShippingCreated and the customer's
// cancellation at the same moment, spread over the instances given (which
// share one database): the saga's inputs race on the order's stream. Each
// order is decided once — confirmed (and shipped, or then cancelled by the
// customer) or cancelled — with each integration event emitted at most
// once, and its projection equals the fold of its stream.
func raceOnEachOrder(t *testing.T, h *apptest.Harness, svcs ...service.Service) {
	t.Helper()
	ctx := context.Background()
	tok := h.Token("cust-r", "customer")
	outcomes := map[string]int{}
	for i := range 16 {
		s := place(t, h, tok)
		envelope := func(source string, p event.Payload) *event.Envelope {
			e, err := event.New(source, s.created.Origin(), p)
			if err != nil {
				t.Fatal(err)
			}
			return e
		}
		evs := []*event.Envelope{
			envelope("payment-service", &event.PaymentProcessed{PaymentID: "pay-" + s.id, OrderID: s.id, AmountCents: 1200, Currency: "EUR", AuthCode: "A1"}),
			envelope("payment-service", &event.PaymentFailed{PaymentID: "pay-" + s.id, OrderID: s.id, AmountCents: 1200, Currency: "EUR", Code: "card-declined"}),
			envelope("shipping-service", &event.ShippingCreated{ShipmentID: "shp-" + s.id, OrderID: s.id, Carrier: "DHL", TrackingNumber: "TRK-" + s.id}),
		}
		errs := make([]error, len(evs)+1)
		var wg sync.WaitGroup
		begin := make(chan struct{})
		for j := range len(evs) + 1 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-begin
				svc := svcs[(i+j)%len(svcs)]
				if j == len(evs) {
					errs[j] = order.CancelAsCustomer(ctx, svc, s.id)
					return
				}
				errs[j] = order.Handle(ctx, svc, evs[j])
			}()
		}
		close(begin)
		wg.Wait()
		for j, err := range errs {
			if err != nil && !(j == len(evs) && errors.Is(err, order.ErrNotCancellable)) {
				t.Fatalf("%s: command %d: %v", s.id, j, err)
			}
		}
		o := s.get()
		outcomes[o.Status+" "+o.ReasonCode]++
		n := map[event.Type]int{}
		for _, e := range s.events() {
			n[e.EventType]++
		}
		p := history(t, h, tok, s.id, "")
		domain := map[string]int{}
		for k, it := range p.Items {
			domain[it.Type]++
			if it.Version != int64(k+1) {
				t.Errorf("%s: version %d at %d", s.id, it.Version, k)
			}
		}
		last := p.Items[len(p.Items)-1].State
		switch {
		case !reflect.DeepEqual(last, o):
			t.Errorf("%s: projection %+v, stream %+v", s.id, o, last)
		case n["OrderConfirmed"] > 1 || n["OrderCancelled"] > 1 || n["OrderShipped"] > 1:
			t.Errorf("%s: an integration event twice: %v", s.id, n)
		case domain[order.PaymentConfirmed] != n["OrderConfirmed"] || domain[order.OrderVoided] != n["OrderCancelled"] || domain[order.OrderDispatched] != n["OrderShipped"]:
			t.Errorf("%s: domain events %v, integration events %v", s.id, domain, n)
		case o.Status == "SHIPPED" && (n["OrderConfirmed"] != 1 || n["OrderShipped"] != 1 || n["OrderCancelled"] != 0):
			t.Errorf("%s shipped: %v", s.id, n)
		case o.Status == "CANCELLED" && (n["OrderCancelled"] != 1 || n["OrderShipped"] != 0 || n["OrderConfirmed"] == 1 && o.ReasonCode != "customer-cancelled"):
			t.Errorf("%s cancelled (%s): %v", s.id, o.ReasonCode, n)
		case o.Status != "SHIPPED" && o.Status != "CANCELLED":
			t.Errorf("%s: %+v", s.id, o)
		case errs[len(evs)] == nil && o.ReasonCode != "customer-cancelled":
			t.Errorf("%s: the customer's cancellation succeeded, yet %+v", s.id, o)
		}
	}
	t.Logf("outcomes %v", outcomes)
}

// On one instance (SQLite, or PostgreSQL with EVENTMART_TEST_SERVICES_DB=postgres).
func TestConcurrentCommandsOnOneOrder(t *testing.T) {
	h, _ := start(t)
	raceOnEachOrder(t, h, h.App.Service(order.Name))
}

// With two order instances on one PostgreSQL database: the inputs of one
// order are handled by different processes at once; the loser of the
// append decides again on what the winner committed.
func TestConcurrentCommandsOnOneOrderAcrossInstances(t *testing.T) {
	f := newFakes()
	defs := []service.Def{order.Def(), f.catalog(), f.cart(), f.payment()}
	h := apptest.Start(t, defs, apptest.OnPostgres(t, defs))
	second := h.StartInstance()
	conflicts := eventstore.RetriedConflicts()
	raceOnEachOrder(t, h, h.App.Service(order.Name), second.Service(order.Name))
	t.Logf("%d conflicting appends retried", eventstore.RetriedConflicts()-conflicts)
	for i, a := range []*app.App{h.App, second} {
		if st := a.Consumers()[order.Name].Stats(); st.Parked != 0 {
			t.Errorf("instance %d: %+v", i+1, st)
		}
	}
}

// With two order instances on one PostgreSQL database, each keeping the
// orders it loaded and saved in memory: an order the second changes is
// what the first's next batch loads, though it remembers the order from
// before.
func TestInstancesLoadEachOthersAppends(t *testing.T) {
	ctx := context.Background()
	f := newFakes()
	defs := []service.Def{order.Def(), f.catalog(), f.cart(), f.payment()}
	h := apptest.Start(t, defs, apptest.OnPostgres(t, defs))
	second := h.StartInstance()
	first := h.App.Service(order.Name)
	tok := h.Token("cust-1", "customer")
	a, b := place(t, h, tok), place(t, h, tok) // on the first instance
	status, version, err := order.LoadBatch(ctx, first, a.id, b.id)
	if err != nil || status[a.id] != "PENDING" || status[b.id] != "PENDING" {
		t.Fatalf("first load: %v at %v, %v", status, version, err)
	}
	for _, id := range []string{a.id, b.id} {
		if v, ok := order.RememberedVersion(first, id); !ok || v != version[id] {
			t.Fatalf("the first instance remembers %s at %d (%v), want %d", id, v, ok, version[id])
		}
	}
	if err := order.CancelAsCustomer(ctx, second.Service(order.Name), a.id); err != nil {
		t.Fatal(err)
	}
	got, gotVersion, err := order.LoadBatch(ctx, first, a.id, b.id)
	if err != nil || got[a.id] != "CANCELLED" || gotVersion[a.id] != version[a.id]+1 || got[b.id] != "PENDING" || gotVersion[b.id] != version[b.id] {
		t.Fatalf("load on the first instance after the second cancelled %s: %v at %v, %v", a.id, got, gotVersion, err)
	}
	if v, _ := order.RememberedVersion(first, a.id); v != version[a.id]+1 {
		t.Fatalf("the first instance remembers %s at %d after loading it at %d", a.id, v, version[a.id]+1)
	}
}
