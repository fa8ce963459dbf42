package order_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/cart"
	"github.com/eventmart/eventmart/catalog"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/gateway"
	"github.com/eventmart/eventmart/internal/app"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/settings"
	"github.com/eventmart/eventmart/internal/sqldb"
	"github.com/eventmart/eventmart/order"
)

// ---- test doubles of the synchronous APIs the order service calls ----

// fakes serves canned answers for the catalog's, the cart's and the
// payment service's HTTP APIs, in the shapes those services answer.
type fakes struct {
	mu       sync.Mutex
	products map[string]fakeProduct
	carts    map[string][]event.CartItem // by user id
	vaulted  []string                    // card numbers received
	// gate, if set, holds every card vaulting until it is done, so
	// concurrent orders are all past their checks before any commits.
	gate *sync.WaitGroup
}

type fakeProduct struct {
	ID         string `json:"id"`
	SKU        string `json:"sku"`
	Name       string `json:"name"`
	PriceCents int64  `json:"priceCents"`
	Currency   string `json:"currency"`
	Status     string `json:"status"`
}

func newFakes() *fakes {
	f := &fakes{products: map[string]fakeProduct{}, carts: map[string][]event.CartItem{}}
	for _, p := range []fakeProduct{
		{"p-mug", "MUG-1", "Mug", 1200, "EUR", "active"},
		{"p-tea", "TEA-1", "Tea", 450, "EUR", "active"},
		{"p-old", "OLD-1", "Old mug", 900, "EUR", "discontinued"},
		{"p-usd", "USD-1", "Cap", 2000, "USD", "active"},
	} {
		f.products[p.ID] = p
	}
	return f
}

func (f *fakes) setCart(userID string, items ...event.CartItem) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.carts[userID] = items
}

func (f *fakes) vaultedCards() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.vaulted)
}

// fakeService is a service with only an HTTP API.
type fakeService struct{ routes func(*http.ServeMux) }

func (f fakeService) Routes(mux *http.ServeMux) { f.routes(mux) }
func (fakeService) Handlers() []inbox.Handler   { return nil }
func (fakeService) Run(context.Context) error   { return nil }

func fakeDef(name string, routes func(*http.ServeMux)) service.Def {
	return service.Def{Name: name, Migrations: fstest.MapFS{}, New: func(service.Deps) (service.Service, error) {
		return fakeService{routes}, nil
	}}
}

func (f *fakes) catalog() service.Def {
	return fakeDef("catalog", func(mux *http.ServeMux) {
		mux.HandleFunc("GET /api/v1/products", func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			out := []fakeProduct{}
			for _, id := range strings.Split(r.URL.Query().Get("ids"), ",") {
				if p, ok := f.products[id]; ok {
					out = append(out, p)
				}
			}
			httpx.JSON(w, http.StatusOK, map[string]any{"products": out})
		})
	})
}

func (f *fakes) cart() service.Def {
	return fakeDef("cart", func(mux *http.ServeMux) {
		mux.HandleFunc("GET /api/v1/cart", func(w http.ResponseWriter, r *http.Request) {
			id, err := auth.Require(r.Context()) // the order service must forward the caller's token
			if err != nil {
				httpx.Error(w, r, err)
				return
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			items := f.carts[id.UserID]
			if items == nil {
				items = []event.CartItem{}
			}
			httpx.JSON(w, http.StatusOK, map[string]any{"userId": id.UserID, "items": items})
		})
	})
}

func (f *fakes) payment() service.Def {
	return fakeDef("payment", func(mux *http.ServeMux) {
		mux.HandleFunc("POST /api/v1/payments/cards", func(w http.ResponseWriter, r *http.Request) {
			var in struct {
				Number string `json:"number"`
			}
			if err := httpx.Decode(r, &in); err != nil {
				httpx.Error(w, r, err)
				return
			}
			f.mu.Lock()
			f.vaulted = append(f.vaulted, in.Number)
			gate := f.gate
			f.mu.Unlock()
			if gate != nil {
				gate.Done()
				waitGroup(gate, 10*time.Second)
			}
			last4 := in.Number[len(in.Number)-4:]
			httpx.JSON(w, http.StatusCreated, map[string]string{"token": "tok-" + last4, "last4": last4})
		})
	})
}

// ---- helpers ----

const (
	visa      = "4242424242424242"
	orderPath = "/api/v1/orders"
)

func start(t *testing.T, opts ...apptest.Option) (*apptest.Harness, *fakes) {
	f := newFakes()
	h := apptest.Start(t, []service.Def{order.Def(), f.catalog(), f.cart(), f.payment()}, opts...)
	return h, f
}

func address() map[string]any {
	return map[string]any{"name": "Ann Example", "line1": "1 Main St", "city": "Berlin", "postalCode": "10115", "country": "DE"}
}

func body(items ...map[string]any) map[string]any {
	if items == nil {
		items = []map[string]any{}
	}
	return map[string]any{"items": items, "payment": map[string]any{"card": visa}, "shippingAddress": address()}
}

func item(id string, qty int) map[string]any { return map[string]any{"productId": id, "quantity": qty} }

// do sends a request with extra headers.
func do(t *testing.T, h *apptest.Harness, method, path, token string, in any, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	b, _ := json.Marshal(in)
	if s, ok := in.(string); ok {
		b = []byte(s)
	}
	req, err := http.NewRequest(method, h.Server.URL+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	out.ReadFrom(resp.Body)
	return resp.StatusCode, resp.Header, out.Bytes()
}

// saga is one order under test and its events.
type saga struct {
	t       *testing.T
	h       *apptest.Harness
	token   string
	id      string
	created *event.Envelope
}

// place creates an order (one mug) and waits for its OrderCreated.
func place(t *testing.T, h *apptest.Harness, token string) *saga {
	t.Helper()
	var o order.Order
	h.JSON("POST", orderPath, token, body(item("p-mug", 1)), http.StatusAccepted, &o)
	return &saga{t: t, h: h, token: token, id: o.ID, created: h.Events.Wait(t, "OrderCreated", apptest.Keyed(o.ID))}
}

func (s *saga) get() order.Order {
	s.t.Helper()
	var o order.Order
	s.h.JSON("GET", orderPath+"/"+s.id, s.token, nil, http.StatusOK, &o)
	return o
}

// events returns the order's saga log.
func (s *saga) events() []*event.Envelope {
	s.t.Helper()
	var resp struct{ Events []json.RawMessage }
	s.h.JSON("GET", orderPath+"/"+s.id+"/events", s.token, nil, http.StatusOK, &resp)
	out := make([]*event.Envelope, len(resp.Events))
	for i, raw := range resp.Events {
		e, err := event.Decode(raw)
		if err != nil {
			s.t.Fatalf("saga event %s: %v", raw, err)
		}
		out[i] = e
	}
	return out
}

func (s *saga) count(typ event.Type) int {
	n := 0
	for _, e := range s.events() {
		if e.EventType == typ {
			n++
		}
	}
	return n
}

func (s *saga) logged(eventID string) bool {
	return slices.ContainsFunc(s.events(), func(e *event.Envelope) bool { return e.EventID == eventID })
}

// publish injects another service's event caused by cause and waits until
// the order service has handled it (its handling and logging are one
// transaction).
func (s *saga) publish(source string, cause *event.Envelope, p event.Payload) *event.Envelope {
	s.t.Helper()
	e := s.h.Publish(source, cause.Origin(), p)[0]
	s.h.Eventually(fmt.Sprintf("%s logged", e.EventType), func() bool { return s.logged(e.EventID) })
	return e
}

func (s *saga) waitStatus(status string) order.Order {
	s.t.Helper()
	var o order.Order
	s.h.Eventually("status "+status, func() bool { o = s.get(); return o.Status == status })
	return o
}

// The other services' events of a happy saga.
func (s *saga) reserved() *event.Envelope {
	return s.publish("inventory-service", s.created, &event.InventoryReserved{OrderID: s.id, Lines: []event.Line{{ProductID: "p-mug", Quantity: 1}}})
}

func (s *saga) paid(cause *event.Envelope) *event.Envelope {
	return s.publish("payment-service", cause, &event.PaymentProcessed{PaymentID: "pay-" + s.id, OrderID: s.id, AmountCents: 1200, Currency: "EUR", AuthCode: "A1"})
}

func (s *saga) labelled(cause *event.Envelope) *event.Envelope {
	return s.publish("shipping-service", cause, &event.ShippingCreated{ShipmentID: "shp-" + s.id, OrderID: s.id, Carrier: "DHL", TrackingNumber: "TRK-" + s.id})
}

func (s *saga) notified(cause *event.Envelope, failed bool) *event.Envelope {
	subject := event.Subject{Type: "order", ID: s.id}
	if failed {
		return s.publish("notification-service", cause, &event.NotificationFailed{NotificationID: "n-" + s.id, UserID: "u", Channel: "email",
			Template: "order-shipped", Recipient: event.Plain("u@example.com"), Subject: subject, Reason: "mailbox full", Attempts: 3})
	}
	return s.publish("notification-service", cause, &event.NotificationSent{NotificationID: "n-" + s.id, UserID: "u", Channel: "email",
		Template: "order-shipped", Recipient: event.Plain("u@example.com"), Subject: subject})
}

func payloadOf[T event.Payload](t *testing.T, e *event.Envelope) T {
	t.Helper()
	p, err := e.Payload()
	if err != nil {
		t.Fatal(err)
	}
	return p.(T)
}

func errorOf(b []byte) httpx.ErrorBody {
	var eb httpx.ErrorBody
	json.Unmarshal(b, &eb)
	return eb
}

// ---- tests ----

func TestCreateOrderStoresItPendingAndEmitsOrderCreated(t *testing.T) {
	t.Parallel()
	h, f := start(t)
	tok := h.Token("cust-1", "customer")
	in := body(item("p-mug", 2), item("p-tea", 1), item("p-mug", 1))
	in["payment"] = map[string]any{"card": "4242 4242 4242 4242"}
	status, hdr, b := do(t, h, "POST", orderPath, tok, in, map[string]string{"X-Correlation-ID": "req-create-1"})
	if status != http.StatusAccepted {
		t.Fatalf("status %d: %s", status, b)
	}
	var o order.Order
	json.Unmarshal(b, &o)
	if hdr.Get("Location") != orderPath+"/"+o.ID || o.Status != "PENDING" || o.UserID != "cust-1" {
		t.Fatalf("order %+v, Location %q", o, hdr.Get("Location"))
	}
	wantItems := []event.OrderLine{
		{ProductID: "p-mug", SKU: "MUG-1", Name: "Mug", Quantity: 3, UnitPriceCents: 1200},
		{ProductID: "p-tea", SKU: "TEA-1", Name: "Tea", Quantity: 1, UnitPriceCents: 450},
	}
	if !slices.Equal(o.Items, wantItems) || o.TotalCents != 4050 || o.Currency != "EUR" || o.CardLast4 != "4242" {
		t.Errorf("items %+v total %d %s card %s", o.Items, o.TotalCents, o.Currency, o.CardLast4)
	}
	// The projection knows nothing of cust-1 yet: the token's identity is used.
	if o.Customer != (order.Customer{Email: event.Plain("cust-1@example.com"), Name: event.Plain("User cust-1")}) || o.ShippingAddress.Clear.City != "Berlin" {
		t.Errorf("customer %+v address %+v", o.Customer, o.ShippingAddress)
	}
	if got := f.vaultedCards(); !slices.Equal(got, []string{visa}) {
		t.Errorf("vaulted %v", got)
	}

	e := h.Events.Wait(t, "OrderCreated", apptest.Keyed(o.ID))
	if e.CorrelationID != "req-create-1" || e.CausationID != "req-create-1" || e.Metadata.UserID != "cust-1" || e.Source != "order-service" {
		t.Errorf("envelope %+v", e)
	}
	if strings.Contains(string(e.Data), visa) {
		t.Error("the card number travels in OrderCreated")
	}
	c := payloadOf[*event.OrderCreated](t, e)
	if !slices.Equal(c.Lines, wantItems) || c.TotalCents != 4050 || c.Currency != "EUR" || c.FromCart ||
		c.Payment != (event.PaymentMethod{CardToken: "tok-4242", CardLast4: "4242"}) ||
		c.Customer != (event.Customer{UserID: "cust-1", Email: event.Plain("cust-1@example.com"), Name: event.Plain("User cust-1")}) || c.ShippingAddress.Clear.Country != "DE" {
		t.Errorf("OrderCreated %+v", c)
	}

	var got order.Order
	h.JSON("GET", orderPath+"/"+o.ID, tok, nil, http.StatusOK, &got)
	if got.ID != o.ID || got.Status != "PENDING" || !slices.Equal(got.Items, wantItems) || !got.CreatedAt.Equal(o.CreatedAt) {
		t.Errorf("GET %+v", got)
	}
}

func TestCreateOrderRejectsBadInput(t *testing.T) {
	t.Parallel()
	h, f := start(t)
	tok := h.Token("cust-1", "customer")
	with := func(change func(map[string]any)) map[string]any {
		b := body(item("p-mug", 1))
		change(b)
		return b
	}
	addr := func(k string, v any) map[string]any {
		return with(func(b map[string]any) { a := address(); a[k] = v; b["shippingAddress"] = a })
	}
	card := func(n string) map[string]any {
		return with(func(b map[string]any) { b["payment"] = map[string]any{"card": n} })
	}
	many := make([]map[string]any, 51)
	for i := range many {
		many[i] = item(fmt.Sprintf("p-%d", i), 1)
	}
	for _, c := range []struct {
		name   string
		token  string
		body   any
		hdr    map[string]string
		status int
		code   string
		msg    string
	}{
		{"anonymous", "", body(item("p-mug", 1)), nil, 401, "unauthorized", "authentication required"},
		{"malformed", tok, `{"items":`, nil, 400, "invalid", "JSON"},
		{"unknown field", tok, with(func(b map[string]any) { b["coupon"] = "FREE" }), nil, 400, "invalid", `unknown field "coupon"`},
		{"no items nor cart", tok, with(func(b map[string]any) { delete(b, "items") }), nil, 400, "invalid", "items is required"},
		{"items and cart", tok, with(func(b map[string]any) { b["fromCart"] = true }), nil, 400, "invalid", "not both"},
		{"empty items", tok, body(), nil, 400, "invalid", "items must have 1 to 50 lines, got 0"},
		{"51 lines", tok, body(many...), nil, 400, "invalid", "items must have 1 to 50 lines, got 51"},
		{"quantity 0", tok, body(item("p-mug", 0)), nil, 400, "invalid", "items[0].quantity must be between 1 and 100"},
		{"quantity 101", tok, body(item("p-tea", 1), item("p-mug", 101)), nil, 400, "invalid", "items[1].quantity must be between 1 and 100"},
		{"merged quantity", tok, body(item("p-mug", 60), item("p-mug", 41)), nil, 400, "invalid", "total quantity 101 exceeds 100"},
		{"no productId", tok, body(item("", 1)), nil, 400, "invalid", "items[0].productId"},
		{"no address", tok, with(func(b map[string]any) { delete(b, "shippingAddress") }), nil, 400, "invalid", "shippingAddress is required"},
		{"no city", tok, addr("city", "  "), nil, 400, "invalid", "shippingAddress.city is required"},
		{"no postal code", tok, addr("postalCode", ""), nil, 400, "invalid", "shippingAddress.postalCode is required"},
		{"long line1", tok, addr("line1", strings.Repeat("x", 201)), nil, 400, "invalid", "shippingAddress.line1 must be at most 200 characters"},
		{"long line2", tok, addr("line2", strings.Repeat("é", 201)), nil, 400, "invalid", "shippingAddress.line2 must be at most 200 characters"},
		{"lower-case country", tok, addr("country", "de"), nil, 400, "invalid", "shippingAddress.country must be an ISO 3166-1 alpha-2 code"},
		{"3-letter country", tok, addr("country", "DEU"), nil, 400, "invalid", "shippingAddress.country"},
		{"no payment", tok, with(func(b map[string]any) { delete(b, "payment") }), nil, 400, "invalid", "payment is required"},
		{"short card", tok, card("42424242424"), nil, 400, "invalid", "payment.card must be 12 to 19 digits"},
		{"long card", tok, card("42424242424242424242"), nil, 400, "invalid", "payment.card must be 12 to 19 digits"},
		{"letters in card", tok, card("4242x24242424242"), nil, 400, "invalid", "payment.card must be 12 to 19 digits"},
		{"Luhn", tok, card("4242424242424241"), nil, 400, "invalid", "Luhn"},
		{"unknown product", tok, body(item("p-mug", 1), item("p-nope", 1)), nil, 400, "invalid", "unknown product p-nope"},
		{"discontinued", tok, body(item("p-old", 1)), nil, 409, "conflict", "product p-old is discontinued"},
		{"mixed currencies", tok, body(item("p-mug", 1), item("p-usd", 1)), nil, 400, "invalid", "EUR and USD cannot be ordered together"},
		{"empty cart", tok, map[string]any{"fromCart": true, "payment": map[string]any{"card": visa}, "shippingAddress": address()}, nil, 409, "conflict", "cart is empty"},
		{"long idempotency key", tok, body(item("p-mug", 1)), map[string]string{"Idempotency-Key": strings.Repeat("k", 201)}, 400, "invalid", "Idempotency-Key must be at most 200"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, _, b := do(t, h, "POST", orderPath, c.token, c.body, c.hdr)
			eb := errorOf(b)
			if status != c.status || eb.Error.Code != c.code || !strings.Contains(eb.Error.Message, c.msg) {
				t.Errorf("got %d %s, want %d %s containing %q", status, b, c.status, c.code, c.msg)
			}
		})
	}
	if v := f.vaultedCards(); len(v) != 0 {
		t.Errorf("cards vaulted for rejected orders: %v", v)
	}
	var list struct{ Orders []order.Order }
	h.JSON("GET", orderPath, tok, nil, http.StatusOK, &list)
	if len(list.Orders) != 0 {
		t.Errorf("rejected orders stored: %+v", list.Orders)
	}
}

func TestCreateOrderFromCart(t *testing.T) {
	t.Parallel()
	h, f := start(t)
	tok := h.Token("cust-1", "customer")
	f.setCart("cust-1", event.CartItem{ProductID: "p-tea", Quantity: 2}, event.CartItem{ProductID: "p-mug", Quantity: 1}, event.CartItem{ProductID: "p-tea", Quantity: 1})
	f.setCart("cust-2", event.CartItem{ProductID: "p-usd", Quantity: 1})
	var o order.Order
	h.JSON("POST", orderPath, tok, map[string]any{"fromCart": true, "payment": map[string]any{"card": visa}, "shippingAddress": address()}, http.StatusAccepted, &o)
	want := []event.OrderLine{
		{ProductID: "p-tea", SKU: "TEA-1", Name: "Tea", Quantity: 3, UnitPriceCents: 450},
		{ProductID: "p-mug", SKU: "MUG-1", Name: "Mug", Quantity: 1, UnitPriceCents: 1200},
	}
	if !o.FromCart || !slices.Equal(o.Items, want) || o.TotalCents != 2550 {
		t.Errorf("order %+v", o)
	}
	c := payloadOf[*event.OrderCreated](t, h.Events.Wait(t, "OrderCreated", apptest.Keyed(o.ID)))
	if !c.FromCart || !slices.Equal(c.Lines, want) {
		t.Errorf("OrderCreated %+v", c)
	}
}

func TestIdempotencyKeyReturnsTheFirstOrder(t *testing.T) {
	t.Parallel()
	h, f := start(t)
	ann, bob := h.Token("ann", "customer"), h.Token("bob", "customer")
	post := func(token, key string) order.Order {
		t.Helper()
		status, hdr, b := do(t, h, "POST", orderPath, token, body(item("p-mug", 1)), map[string]string{"Idempotency-Key": key})
		var o order.Order
		json.Unmarshal(b, &o)
		if status != http.StatusAccepted || hdr.Get("Location") != orderPath+"/"+o.ID {
			t.Fatalf("status %d %s", status, b)
		}
		return o
	}
	first := post(ann, "key-1")
	again := post(ann, "key-1")
	if again.ID != first.ID || again.Status != "PENDING" {
		t.Errorf("replay gave %+v, want order %s", again, first.ID)
	}
	if other := post(ann, "key-2"); other.ID == first.ID {
		t.Error("another key gave the same order")
	}
	if other := post(bob, "key-1"); other.ID == first.ID {
		t.Error("another user's key gave the same order")
	}
	// The replay may vault its card again: with the caller's row in
	// memory nothing is read before placing, and the key is found by the
	// order's transaction (payment answers a card vaulted before with its
	// token, without a write); it places nothing (one OrderCreated below).
	if n := len(f.vaultedCards()); n != 3 && n != 4 {
		t.Errorf("%d cards vaulted, want 3, or 4 with the replay's", n)
	}
	s := &saga{t: t, h: h, token: ann, id: first.ID}
	if n := s.count("OrderCreated"); n != 1 {
		t.Errorf("%d OrderCreated, want 1", n)
	}

	// Concurrent requests with one key, all past the look-up of the key
	// before any stores it: one order, whoever wins.
	ids := make(chan string, 3)
	f.mu.Lock()
	f.gate = &sync.WaitGroup{}
	f.gate.Add(cap(ids))
	f.mu.Unlock()
	var wg sync.WaitGroup
	for range cap(ids) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _ := json.Marshal(body(item("p-tea", 1)))
			req, _ := http.NewRequest("POST", h.Server.URL+orderPath, bytes.NewReader(b))
			req.Header.Set("Authorization", "Bearer "+bob)
			req.Header.Set("Idempotency-Key", "race")
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				ids <- err.Error()
				return
			}
			defer resp.Body.Close()
			var o order.Order
			json.NewDecoder(resp.Body).Decode(&o)
			ids <- fmt.Sprint(resp.StatusCode, " ", o.ID)
		}()
	}
	wg.Wait()
	close(ids)
	var got []string
	for id := range ids {
		got = append(got, id)
	}
	slices.Sort(got)
	if got = slices.Compact(got); len(got) != 1 || !strings.HasPrefix(got[0], "202 ") {
		t.Errorf("concurrent requests with one key: %v", got)
	}
	h.Events.Wait(t, "OrderCreated", apptest.Keyed(first.ID))
	var list struct{ Orders []order.Order }
	h.JSON("GET", orderPath, ann, nil, http.StatusOK, &list)
	if len(list.Orders) != 2 {
		t.Errorf("ann has %d orders, want 2", len(list.Orders))
	}
	h.JSON("GET", orderPath, bob, nil, http.StatusOK, &list)
	if len(list.Orders) != 2 {
		t.Errorf("bob has %d orders, want 2", len(list.Orders))
	}
}

// The payment and the label reach the order service on two topics, so they
// may arrive in either order; the order ships once it has both. It does not
// wait for the customer's e-mail, which follows OrderShipped (a notice of
// the order that arrives first changes nothing).
func TestOrderShipsWhateverTheArrivalOrder(t *testing.T) {
	t.Parallel()
	h, _ := start(t)
	tok := h.Token("cust-1", "customer")
	steps := []string{"notification", "payment", "label"}
	for _, perm := range permutations(steps) {
		t.Run(strings.Join(perm, "-"), func(t *testing.T) {
			t.Parallel()
			s := place(t, h, tok)
			reserved := s.reserved()
			initiated := s.publish("payment-service", reserved, &event.PaymentInitiated{PaymentID: "pay-" + s.id, OrderID: s.id, AmountCents: 1200, Currency: "EUR", CardLast4: "4242"})
			var paid *event.Envelope
			for i, step := range perm {
				switch step {
				case "payment":
					paid = s.paid(initiated)
				case "label":
					s.labelled(s.created)
				case "notification":
					s.notified(s.created, false)
				}
				want := "PENDING"
				if i == 0 && step == "notification" {
					// only the notice so far: it never moves an order
					if o := s.get(); o.Status != want {
						t.Fatalf("after a notice alone: status %s", o.Status)
					}
					continue
				}
				if paid != nil {
					want = "CONFIRMED"
				}
				if paid != nil && slices.Contains(perm[:i+1], "label") {
					want = "SHIPPED"
				}
				if o := s.get(); o.Status != want {
					t.Fatalf("after %s: status %s, want %s", strings.Join(perm[:i+1], ", "), o.Status, want)
				}
			}
			o := s.get()
			if o.PaymentID != "pay-"+s.id || o.ShipmentID != "shp-"+s.id || o.TrackingNumber != "TRK-"+s.id {
				t.Errorf("order %+v", o)
			}
			confirmed := h.Events.Wait(t, "OrderConfirmed", apptest.Keyed(s.id))
			if c := payloadOf[*event.OrderConfirmed](t, confirmed); c.PaymentID != "pay-"+s.id || c.TotalCents != 1200 || c.UserID != "cust-1" ||
				confirmed.CausationID != paid.EventID || confirmed.CorrelationID != s.created.CorrelationID {
				t.Errorf("OrderConfirmed %+v %+v", confirmed, c)
			}
			shipped := h.Events.Wait(t, "OrderShipped", apptest.Keyed(s.id))
			if p := payloadOf[*event.OrderShipped](t, shipped); *p != (event.OrderShipped{OrderID: s.id, UserID: "cust-1", ShipmentID: "shp-" + s.id, TrackingNumber: "TRK-" + s.id}) ||
				shipped.CorrelationID != s.created.CorrelationID {
				t.Errorf("OrderShipped %+v %+v", shipped, p)
			}
			if s.count("OrderConfirmed") != 1 || s.count("OrderShipped") != 1 {
				t.Errorf("saga %v", types(s.events()))
			}
		})
	}
}

// Notifications of an order are logged, never acted on: the order ships
// on its label, and the e-mail follows OrderShipped (no wait on the
// notification service, so no dead-lock either).
func TestNotificationsDoNotMoveTheOrder(t *testing.T) {
	t.Parallel()
	h, _ := start(t)
	s := place(t, h, h.Token("cust-1", "customer"))
	paid := s.paid(s.reserved())
	s.notified(paid, true)
	s.publish("notification-service", s.created, &event.NotificationSent{NotificationID: "n-x", UserID: "cust-1", Channel: "email",
		Template: "order-shipped", Recipient: event.Plain("a@example.com"), Subject: event.Subject{Type: "order", ID: s.id}})
	if o := s.get(); o.Status != "CONFIRMED" || s.count("OrderShipped") != 0 {
		t.Fatalf("status %s after notices without a label", o.Status)
	}
	label := s.labelled(paid)
	s.waitStatus("SHIPPED")
	if e := h.Events.Wait(t, "OrderShipped", apptest.Keyed(s.id)); e.CausationID != label.EventID {
		t.Errorf("OrderShipped caused by %s, want the ShippingCreated %s", e.CausationID, label.EventID)
	}
}

func TestOutOfStockCancelsTheOrder(t *testing.T) {
	t.Parallel()
	h, _ := start(t)
	s := place(t, h, h.Token("cust-1", "customer"))
	failed := s.publish("inventory-service", s.created, &event.InventoryReservationFailed{OrderID: s.id, Reason: "not enough stock of p-mug: 1 requested, 0 available",
		Shortages: []event.Shortage{{ProductID: "p-mug", Requested: 1}}})
	o := s.get()
	if o.Status != "CANCELLED" || o.ReasonCode != "out-of-stock" || o.Reason != "not enough stock of p-mug: 1 requested, 0 available" {
		t.Errorf("order %+v", o)
	}
	e := h.Events.Wait(t, "OrderCancelled", apptest.Keyed(s.id))
	c := payloadOf[*event.OrderCancelled](t, e)
	if c.ReasonCode != "out-of-stock" || c.Reason != o.Reason || c.UserID != "cust-1" || e.CausationID != failed.EventID || e.CorrelationID != s.created.CorrelationID {
		t.Errorf("OrderCancelled %+v %+v", e, c)
	}
}

func TestPaymentFailedCancelsTheOrder(t *testing.T) {
	t.Parallel()
	h, _ := start(t)
	s := place(t, h, h.Token("cust-1", "customer"))
	failed := s.publish("payment-service", s.reserved(), &event.PaymentFailed{PaymentID: "pay-1", OrderID: s.id, AmountCents: 1200, Currency: "EUR",
		Code: "card-declined", Reason: "the card was declined"})
	o := s.get()
	if o.Status != "CANCELLED" || o.ReasonCode != "payment-failed" || o.Reason != "the card was declined" {
		t.Errorf("order %+v", o)
	}
	e := h.Events.Wait(t, "OrderCancelled", apptest.Keyed(s.id))
	if c := payloadOf[*event.OrderCancelled](t, e); c.ReasonCode != "payment-failed" || e.CausationID != failed.EventID {
		t.Errorf("OrderCancelled %+v %+v", e, c)
	}
	// A late out-of-stock report changes nothing.
	s.publish("inventory-service", s.created, &event.InventoryReservationFailed{OrderID: s.id, Reason: "late"})
	if o := s.get(); o.ReasonCode != "payment-failed" || s.count("OrderCancelled") != 1 {
		t.Errorf("after a second failure: %+v, %v", o, types(s.events()))
	}
}

func TestCustomerCancels(t *testing.T) {
	t.Parallel()
	h, _ := start(t)
	tok, admin := h.Token("cust-1", "customer"), h.Token("admin-1", "admin")
	other := h.Token("cust-2", "customer")

	pending := place(t, h, tok)
	if status, _, b := do(t, h, "POST", orderPath+"/"+pending.id+"/cancel", other, nil, nil); status != 404 {
		t.Errorf("another customer cancelled: %d %s", status, b)
	}
	status, _, b := do(t, h, "POST", orderPath+"/"+pending.id+"/cancel", tok, nil, map[string]string{"X-Correlation-ID": "req-cancel-1"})
	var o order.Order
	json.Unmarshal(b, &o)
	if status != 200 || o.Status != "CANCELLED" || o.ReasonCode != "customer-cancelled" || o.Reason != "cancelled by the customer" {
		t.Fatalf("cancel: %d %s", status, b)
	}
	e := h.Events.Wait(t, "OrderCancelled", apptest.Keyed(pending.id))
	if c := payloadOf[*event.OrderCancelled](t, e); c.ReasonCode != "customer-cancelled" || c.UserID != "cust-1" ||
		e.CorrelationID != pending.created.CorrelationID || e.CausationID != "req-cancel-1" || e.Metadata.UserID != "cust-1" {
		t.Errorf("OrderCancelled %+v %+v", e, c)
	}
	status, _, b = do(t, h, "POST", orderPath+"/"+pending.id+"/cancel", tok, nil, nil)
	if eb := errorOf(b); status != 409 || eb.Error.Code != "conflict" || !strings.Contains(eb.Error.Message, "is CANCELLED") {
		t.Errorf("second cancel: %d %s", status, b)
	}

	// An admin cancels a confirmed order.
	confirmed := place(t, h, tok)
	confirmed.paid(confirmed.reserved())
	h.JSON("POST", orderPath+"/"+confirmed.id+"/cancel", admin, nil, 200, &o)
	if o.Status != "CANCELLED" || o.ReasonCode != "customer-cancelled" || o.Reason != "cancelled by an administrator" || o.PaymentID == "" {
		t.Errorf("admin cancel: %+v", o)
	}

	shipped := place(t, h, tok)
	paid := shipped.paid(shipped.reserved())
	shipped.labelled(paid)
	shipped.waitStatus("SHIPPED")
	status, _, b = do(t, h, "POST", orderPath+"/"+shipped.id+"/cancel", tok, nil, nil)
	if eb := errorOf(b); status != 409 || !strings.Contains(eb.Error.Message, "is SHIPPED and can no longer be cancelled") {
		t.Errorf("cancel shipped: %d %s", status, b)
	}
}

// clock is the services' clock, which a test can move forward.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

func TestPendingOrderTimesOut(t *testing.T) {
	t.Parallel()
	clk := &clock{}
	h, _ := start(t, apptest.Settings(map[string]string{"EVENTMART_SAGA_TIMEOUT": "5s", "EVENTMART_SAGA_SWEEP_INTERVAL": "10ms"}),
		func(c *app.Config) { c.Now = clk.Now })
	tok := h.Token("cust-1", "customer")
	s := place(t, h, tok)
	progressing := place(t, h, tok)
	progressing.paid(progressing.reserved())
	clk.advance(6 * time.Second)

	e := h.Events.Wait(t, "OrderCancelled", apptest.Keyed(s.id))
	c := payloadOf[*event.OrderCancelled](t, e)
	if c.ReasonCode != "timeout" || c.Reason != "the order did not progress within 5s" || c.UserID != "cust-1" ||
		e.CorrelationID != s.created.CorrelationID || e.CausationID != s.created.EventID {
		t.Errorf("OrderCancelled %+v %+v", e, c)
	}
	if o := s.get(); o.Status != "CANCELLED" || o.ReasonCode != "timeout" {
		t.Errorf("order %+v", o)
	}
	// The sweep that cancelled the first order saw the second one confirmed.
	if o := progressing.get(); o.Status != "CONFIRMED" {
		t.Errorf("confirmed order %+v", o)
	}
	// A payment that comes after the timeout is ignored (payment refunds it).
	s.paid(s.created)
	if o := s.get(); o.Status != "CANCELLED" || o.PaymentID != "" || s.count("OrderConfirmed") != 0 || s.count("OrderCancelled") != 1 {
		t.Errorf("after a late payment: %+v %v", o, types(s.events()))
	}
}

// heldBus is the real bus with the order service's consumer group held
// back: its Subscribe waits until release is closed, as a restarted process
// waits while a dead member still holds the group's partitions. It counts
// the group's Lag calls (only the timeout sweep makes them).
type heldBus struct {
	bus.Bus
	release chan struct{}
	lags    atomic.Int32
}

func (b *heldBus) Subscribe(ctx context.Context, group string, topics []string, h bus.Handler, opts ...bus.SubscribeOption) error {
	if group == "order-service" {
		select {
		case <-ctx.Done():
			return nil
		case <-b.release:
		}
	}
	return b.Bus.Subscribe(ctx, group, topics, h, opts...)
}

func (b *heldBus) Lag(ctx context.Context, group string, topics []string) ([]bus.PartitionLag, error) {
	if group == "order-service" {
		b.lags.Add(1)
	}
	return b.Bus.Lag(ctx, group, topics)
}

// The order service restarts and cannot read for a while (issue 20: the
// group's partitions are still held by the killed process), its orders past
// the saga timeout meanwhile: a payment that waits unread in the log keeps
// its order from being cancelled, and once the service has read past an
// order's deadline a real timeout still cancels.
func TestTimeoutNeverCancelsAnOrderWhosePaymentIsUnread(t *testing.T) {
	t.Parallel()
	clk := &clock{}
	// A timeout well above the real time the steps before the clock moves
	// take on a loaded machine (a restart among them).
	h, _ := start(t, apptest.Settings(map[string]string{"EVENTMART_SAGA_TIMEOUT": "30s", "EVENTMART_SAGA_SWEEP_INTERVAL": "10ms"}),
		func(c *app.Config) { c.Now = clk.Now })
	tok := h.Token("cust-1", "customer")
	paid := place(t, h, tok)
	paid.reserved()
	abandoned := place(t, h, tok) // nothing will ever happen to it

	held := &heldBus{release: make(chan struct{})}
	h.Restart(func(c *app.Config) { held.Bus = c.Bus; c.Bus = held })
	h.Publish("payment-service", paid.created.Origin(), &event.PaymentProcessed{PaymentID: "pay-" + paid.id, OrderID: paid.id, AmountCents: 1200, Currency: "EUR"})
	clk.advance(31 * time.Second)
	// Two sweeps asked what was read (the first has decided once the
	// second asks): neither order may be cancelled, as the abandoned
	// order's events, for all the service knows, may be unread too.
	h.Eventually("two sweeps to look at the timed-out orders", func() bool { return held.lags.Load() >= 2 })
	for _, s := range []*saga{paid, abandoned} {
		if o := s.get(); o.Status != "PENDING" {
			t.Fatalf("order %s is %s (%s) while its payment waits unread", s.id, o.Status, o.ReasonCode)
		}
	}

	close(held.release)
	paid.waitStatus("CONFIRMED")
	// The pipeline has just decided an order placed before the abandoned
	// one, which may therefore be waiting its turn: its timeout counts
	// from that decision (docs/saga.md, "Timeouts").
	clk.advance(31 * time.Second)
	e := h.Events.Wait(t, "OrderCancelled", apptest.Keyed(abandoned.id))
	if c := payloadOf[*event.OrderCancelled](t, e); c.ReasonCode != "timeout" {
		t.Errorf("abandoned order cancelled for %s", c.ReasonCode)
	}
	if o := paid.get(); o.Status != "CONFIRMED" || paid.count("OrderCancelled") != 0 {
		t.Errorf("paid order %+v, saga %v", o, types(paid.events()))
	}
}

func TestPaymentOutcomeAfterCancelIsIgnored(t *testing.T) {
	t.Parallel()
	h, _ := start(t)
	tok := h.Token("cust-1", "customer")
	s := place(t, h, tok)
	reserved := s.reserved()
	h.JSON("POST", orderPath+"/"+s.id+"/cancel", tok, nil, 200, nil)
	s.paid(reserved)
	s.publish("payment-service", reserved, &event.PaymentFailed{PaymentID: "pay-2", OrderID: s.id, Code: "card-declined", Reason: "declined"})
	o := s.get()
	if o.Status != "CANCELLED" || o.ReasonCode != "customer-cancelled" || o.PaymentID != "" {
		t.Errorf("order %+v", o)
	}
	if s.count("OrderConfirmed") != 0 || s.count("OrderCancelled") != 1 {
		t.Errorf("saga %v", types(s.events()))
	}
	// A label and a notice of the cancelled order do not ship it either.
	s.notified(s.labelled(reserved), false)
	if o := s.get(); o.Status != "CANCELLED" || s.count("OrderShipped") != 0 {
		t.Errorf("cancelled order %+v shipped", o)
	}
}

func TestDuplicateDeliveryHasOneEffect(t *testing.T) {
	t.Parallel()
	h, _ := start(t)
	s := place(t, h, h.Token("cust-1", "customer"))
	twice := func(source string, cause *event.Envelope, p event.Payload) *event.Envelope {
		t.Helper()
		e, err := event.New(source, cause.Origin(), p)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			m, err := eventmsg.Encode(context.Background(), e)
			if err != nil {
				t.Fatal(err)
			}
			if err := h.Bus.Publish(context.Background(), m); err != nil {
				t.Fatal(err)
			}
		}
		return e
	}
	paid := twice("payment-service", s.created, &event.PaymentProcessed{PaymentID: "pay-1", OrderID: s.id, AmountCents: 1200, Currency: "EUR"})
	label := twice("shipping-service", paid, &event.ShippingCreated{ShipmentID: "shp-1", OrderID: s.id, TrackingNumber: "TRK-1"})
	notice := twice("notification-service", label, &event.NotificationSent{NotificationID: "n-1", UserID: "u", Template: "order-shipped",
		Subject: event.Subject{Type: "order", ID: s.id}})
	// Later events on the same partitions: once they are handled, so are
	// both copies of each duplicate.
	s.publish("payment-service", paid, &event.PaymentRefunded{PaymentID: "pay-0", OrderID: s.id, Reason: "marker"})
	s.publish("shipping-service", label, &event.ShippingDispatched{ShipmentID: "shp-1", OrderID: s.id, TrackingNumber: "TRK-1"})
	s.publish("notification-service", notice, &event.NotificationSent{NotificationID: "n-2", UserID: "u", Template: "order-delivered",
		Subject: event.Subject{Type: "order", ID: s.id}})

	if o := s.get(); o.Status != "SHIPPED" {
		t.Fatalf("status %s", o.Status)
	}
	evs := s.events()
	for _, typ := range []event.Type{"PaymentProcessed", "ShippingCreated", "OrderConfirmed", "OrderShipped"} {
		if n := s.count(typ); n != 1 {
			t.Errorf("%d %s in %v, want 1", n, typ, types(evs))
		}
	}
	// The same for a compensation.
	c := place(t, h, h.Token("cust-1", "customer"))
	twice("inventory-service", c.created, &event.InventoryReservationFailed{OrderID: c.id, Reason: "none left"})
	c.publish("inventory-service", c.created, &event.InventoryReleased{OrderID: c.id, Reason: "marker"})
	if c.count("InventoryReservationFailed") != 1 || c.count("OrderCancelled") != 1 {
		t.Errorf("saga %v", types(c.events()))
	}
}

func TestUserUpdatesReachOrders(t *testing.T) {
	t.Parallel()
	h, _ := start(t)
	ann, bob := h.Token("ann", "customer"), h.Token("bob", "customer")
	first := place(t, h, ann)
	bobs := place(t, h, bob)
	h.Publish("user-service", event.FromRequest("req-u", event.Metadata{}),
		&event.UserRegistered{UserID: "ann", Email: event.Plain("ann@real.example"), Name: event.Plain("Ann"), Role: "customer"},
		&event.UserUpdated{UserID: "ann", Email: event.Plain("ann@new.example"), Name: event.Plain("Ann New"), Changed: []string{"email", "name"}})
	h.Eventually("customer data on the order", func() bool {
		return first.get().Customer == order.Customer{Email: event.Plain("ann@new.example"), Name: event.Plain("Ann New")}
	})
	// The projection now has ann: new orders take her data, not the token's.
	var o order.Order
	h.JSON("POST", orderPath, ann, body(item("p-tea", 1)), http.StatusAccepted, &o)
	if o.Customer != (order.Customer{Email: event.Plain("ann@new.example"), Name: event.Plain("Ann New")}) {
		t.Errorf("new order's customer %+v", o.Customer)
	}
	var keyed order.Order // with a key, the user is read with it
	status, _, b := do(t, h, "POST", orderPath, ann, body(item("p-tea", 1)), map[string]string{"Idempotency-Key": "after-update"})
	if err := json.Unmarshal(b, &keyed); status != http.StatusAccepted || err != nil || keyed.Customer != o.Customer {
		t.Errorf("new order's customer, placed with a key: %+v", keyed.Customer)
	}
	c := payloadOf[*event.OrderCreated](t, h.Events.Wait(t, "OrderCreated", apptest.Keyed(o.ID)))
	if c.Customer.Email.Clear != "ann@new.example" {
		t.Errorf("OrderCreated customer %+v", c.Customer)
	}
	if got := bobs.get().Customer; got.Email.Clear != "bob@example.com" {
		t.Errorf("bob's order changed: %+v", got)
	}
}

func TestDeactivatedUserCannotOrder(t *testing.T) {
	t.Parallel()
	h, _ := start(t)
	tok := h.Token("ann", "customer")
	s := place(t, h, tok)
	h.Publish("user-service", event.FromRequest("req-d", event.Metadata{}),
		&event.UserDeactivated{UserID: "ann", Reason: "fraud"},
		&event.UserUpdated{UserID: "ann", Email: event.Plain("ann@after.example"), Name: event.Plain("Ann"), Changed: []string{"email"}})
	// The UserUpdated after the deactivation is handled once the order shows it.
	h.Eventually("the update after deactivation", func() bool { return s.get().Customer.Email.Clear == "ann@after.example" })
	for _, hdr := range []map[string]string{nil, {"Idempotency-Key": "after-deactivation"}} { // with a key, the user is read with it
		status, _, b := do(t, h, "POST", orderPath, tok, body(item("p-mug", 1)), hdr)
		if eb := errorOf(b); status != 403 || eb.Error.Code != "forbidden" || eb.Error.Message != "account deactivated" {
			t.Errorf("deactivated user ordered (headers %v): %d %s", hdr, status, b)
		}
	}
	// Others still can.
	h.JSON("POST", orderPath, h.Token("bob", "customer"), body(item("p-mug", 1)), http.StatusAccepted, nil)
}

func TestAuthorization(t *testing.T) {
	t.Parallel()
	h, _ := start(t)
	ann, bob, admin := h.Token("ann", "customer"), h.Token("bob", "customer"), h.Token("admin-1", "admin")
	a1 := place(t, h, ann)
	a2 := place(t, h, ann)
	b1 := place(t, h, bob)
	adm := place(t, h, admin) // admins may order for themselves
	h.JSON("POST", orderPath+"/"+a2.id+"/cancel", ann, nil, 200, nil)

	for _, c := range []struct {
		name, method, path, token string
		status                    int
		code                      string
	}{
		{"anonymous list", "GET", orderPath, "", 401, "unauthorized"},
		{"anonymous get", "GET", orderPath + "/" + a1.id, "", 401, "unauthorized"},
		{"anonymous events", "GET", orderPath + "/" + a1.id + "/events", "", 401, "unauthorized"},
		{"anonymous cancel", "POST", orderPath + "/" + a1.id + "/cancel", "", 401, "unauthorized"},
		{"other customer get", "GET", orderPath + "/" + a1.id, bob, 404, "not_found"},
		{"other customer events", "GET", orderPath + "/" + a1.id + "/events", bob, 404, "not_found"},
		{"other customer cancel", "POST", orderPath + "/" + a1.id + "/cancel", bob, 404, "not_found"},
		{"missing order", "GET", orderPath + "/nope", ann, 404, "not_found"},
		{"customer lists another user", "GET", orderPath + "?userId=bob", ann, 403, "forbidden"},
		{"bad status filter", "GET", orderPath + "?status=LOST", ann, 400, "invalid"},
		{"bad limit", "GET", orderPath + "?limit=0", ann, 400, "invalid"},
		{"bad offset", "GET", orderPath + "?offset=-1", ann, 400, "invalid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, _, b := h.Do(c.method, c.path, c.token, nil)
			if eb := errorOf(b); status != c.status || eb.Error.Code != c.code {
				t.Errorf("got %d %s, want %d %s", status, b, c.status, c.code)
			}
		})
	}
	ids := func(path, token string) []string {
		t.Helper()
		var list struct{ Orders []order.Order }
		h.JSON("GET", path, token, nil, http.StatusOK, &list)
		var out []string
		for _, o := range list.Orders {
			out = append(out, o.ID)
		}
		return out
	}
	for _, c := range []struct {
		who, path string
		want      []string
	}{
		{"ann", orderPath, []string{a2.id, a1.id}}, // newest first
		{"ann", orderPath + "?userId=ann", []string{a2.id, a1.id}},
		{"ann", orderPath + "?status=pending", []string{a1.id}},
		{"ann", orderPath + "?status=CANCELLED", []string{a2.id}},
		{"ann", orderPath + "?limit=1&offset=1", []string{a1.id}},
		{"bob", orderPath, []string{b1.id}},
		{"admin", orderPath, []string{adm.id, b1.id, a2.id, a1.id}},
		{"admin", orderPath + "?userId=bob", []string{b1.id}},
		{"admin", orderPath + "?userId=admin-1", []string{adm.id}},
	} {
		token := map[string]string{"ann": ann, "bob": bob, "admin": admin}[c.who]
		if got := ids(c.path, token); !slices.Equal(got, c.want) {
			t.Errorf("%s as %s: %v, want %v", c.path, c.who, got, c.want)
		}
	}
	var o order.Order
	h.JSON("GET", orderPath+"/"+b1.id, admin, nil, http.StatusOK, &o)
	if o.UserID != "bob" {
		t.Errorf("admin sees %+v", o)
	}
	h.JSON("GET", orderPath+"/"+b1.id+"/events", admin, nil, http.StatusOK, nil)
}

func TestSagaEventsInCausalOrder(t *testing.T) {
	t.Parallel()
	h, _ := start(t)
	tok := h.Token("cust-1", "customer")
	s := place(t, h, tok)
	reserved := s.reserved()
	initiated := s.publish("payment-service", reserved, &event.PaymentInitiated{PaymentID: "pay-1", OrderID: s.id, AmountCents: 1200, Currency: "EUR"})
	paid := s.paid(initiated)
	label := s.labelled(paid)
	s.waitStatus("SHIPPED")
	shippedEvent := h.Events.Wait(t, "OrderShipped", apptest.Keyed(s.id))

	// Events of no order, another order or another subject are not logged.
	// Each goes before a logged event of the same partition, so it has been
	// handled when that one is logged.
	h.Publish("notification-service", s.created.Origin(),
		&event.NotificationSent{NotificationID: "n-2", UserID: "cust-1", Template: "welcome", Subject: event.Subject{Type: "user", ID: "cust-1"}})
	h.Publish("inventory-service", s.created.Origin(),
		&event.InventoryAdjusted{ProductID: "p-mug", Delta: 5, Reason: "set"},
		&event.InventoryReserved{OrderID: "someone-elses"})

	// The notification service's clock is behind: its event has an
	// earlier timestamp than its cause, and must still come after it.
	late, err := event.New("notification-service", shippedEvent.Origin(), &event.NotificationSent{NotificationID: "n-1", UserID: "cust-1",
		Template: "order-shipped", Subject: event.Subject{Type: "order", ID: s.id}})
	if err != nil {
		t.Fatal(err)
	}
	late.Timestamp = s.created.Timestamp.Add(-time.Minute)
	m, _ := eventmsg.Encode(context.Background(), late)
	if err := h.Bus.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	h.Eventually("the late notification logged", func() bool { return s.logged(late.EventID) })
	adjusted := s.publish("inventory-service", reserved, &event.InventoryAdjusted{ProductID: "p-mug", Delta: -1, Reason: "shipped", OrderID: s.id})
	s.publish("shipping-service", label, &event.ShippingDispatched{ShipmentID: "shp-" + s.id, OrderID: s.id})

	evs := s.events()
	got := types(evs)
	want := []event.Type{"OrderCreated", "InventoryReserved", "PaymentInitiated", "PaymentProcessed", "OrderConfirmed", "ShippingCreated",
		"OrderShipped", "NotificationSent", "InventoryAdjusted", "ShippingDispatched"}
	if !sameMembers(got, want) {
		t.Fatalf("saga %v, want the members of %v", got, want)
	}
	if evs[0].EventID != s.created.EventID {
		t.Errorf("first event %s, want OrderCreated", evs[0].EventType)
	}
	pos := map[string]int{}
	for i, e := range evs {
		pos[e.EventID] = i
	}
	for i, e := range evs {
		if e.CorrelationID != s.created.CorrelationID {
			t.Errorf("%s has correlationId %s, want %s", e.EventType, e.CorrelationID, s.created.CorrelationID)
		}
		if p, ok := pos[e.CausationID]; ok && p >= i {
			t.Errorf("%s at %d, its cause at %d", e.EventType, i, p)
		} else if !ok && i != 0 {
			t.Errorf("%s: its cause %s is not in the saga", e.EventType, e.CausationID)
		}
	}
	if pos[late.EventID] < pos[shippedEvent.EventID] {
		t.Error("the early-stamped notification precedes its cause")
	}
	if pos[adjusted.EventID] < pos[reserved.EventID] {
		t.Error("InventoryAdjusted precedes InventoryReserved")
	}
}

// The fakes' answers are checked against the real catalog and cart.
func TestOrderAgainstTheRealCatalogAndCart(t *testing.T) {
	t.Parallel()
	f := newFakes()
	h := apptest.Start(t, []service.Def{order.Def(), catalog.Def(), cart.Def(), f.payment()})
	admin, tok := h.Token("admin-1", "admin"), h.Token("cust-1", "customer")
	var lamp, bulb catalog.Product
	h.JSON("POST", "/api/v1/products", admin, map[string]any{"sku": "LAMP-1", "name": "Lamp", "priceCents": 3999, "currency": "EUR"}, http.StatusCreated, &lamp)
	h.JSON("POST", "/api/v1/products", admin, map[string]any{"sku": "BULB-1", "name": "Bulb", "priceCents": 299, "currency": "EUR"}, http.StatusCreated, &bulb)
	var o order.Order
	h.JSON("POST", orderPath, tok, body(item(lamp.ID, 2)), http.StatusAccepted, &o)
	if len(o.Items) != 1 || o.Items[0] != (event.OrderLine{ProductID: lamp.ID, SKU: "LAMP-1", Name: "Lamp", Quantity: 2, UnitPriceCents: 3999}) || o.TotalCents != 7998 {
		t.Errorf("order %+v", o)
	}

	h.JSON("POST", "/api/v1/cart/items", tok, map[string]any{"productId": bulb.ID, "quantity": 3}, http.StatusOK, nil)
	h.JSON("POST", orderPath, tok, map[string]any{"fromCart": true, "payment": map[string]any{"card": visa}, "shippingAddress": address()}, http.StatusAccepted, &o)
	if !o.FromCart || len(o.Items) != 1 || o.Items[0].ProductID != bulb.ID || o.Items[0].Quantity != 3 || o.TotalCents != 897 {
		t.Errorf("order from cart %+v", o)
	}
	h.Eventually("the cart emptied by checkout", func() bool {
		var c struct{ Items []event.CartItem }
		h.JSON("GET", "/api/v1/cart", tok, nil, http.StatusOK, &c)
		return len(c.Items) == 0
	})
	status, _, b := h.Do("POST", orderPath, tok, map[string]any{"fromCart": true, "payment": map[string]any{"card": visa}, "shippingAddress": address()})
	if status != 409 || errorOf(b).Error.Message != "cart is empty" {
		t.Errorf("empty cart: %d %s", status, b)
	}

	h.JSON("DELETE", "/api/v1/products/"+lamp.ID, admin, nil, http.StatusOK, nil)
	status, _, b = h.Do("POST", orderPath, tok, body(item(lamp.ID, 1)))
	if status != 409 || !strings.Contains(errorOf(b).Error.Message, "is discontinued") {
		t.Errorf("discontinued: %d %s", status, b)
	}
	status, _, b = h.Do("POST", orderPath, tok, body(item("no-such-product", 1)))
	if status != 400 || !strings.Contains(errorOf(b).Error.Message, "unknown product no-such-product") {
		t.Errorf("unknown: %d %s", status, b)
	}
}

func TestMalformedSettingsAreRejected(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"EVENTMART_SAGA_TIMEOUT", "EVENTMART_SAGA_SWEEP_INTERVAL"} {
		// Checked at start, when the settings are parsed.
		vals, err := settings.Parse(func(k string) string {
			if k == name {
				return "soon"
			}
			return ""
		})
		if err == nil {
			_, err = order.New(service.Deps{Settings: vals})
		}
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=soon: %v", name, err)
		}
	}
}

// waitGroup waits for wg, at most d.
func waitGroup(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

func types(evs []*event.Envelope) []event.Type {
	out := make([]event.Type, len(evs))
	for i, e := range evs {
		out[i] = e.EventType
	}
	return out
}

func sameMembers(a, b []event.Type) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func permutations(s []string) [][]string {
	if len(s) <= 1 {
		return [][]string{slices.Clone(s)}
	}
	var out [][]string
	for i := range s {
		rest := append(slices.Clone(s[:i]), s[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]string{s[i]}, p...))
		}
	}
	return out
}

// TestGetHeldUntilTheOrderChanges: GET /orders/{id} carries an ETag;
// If-None-Match with it answers 304, and with Prefer: wait the request is
// held until the saga changes the order, then answers 200 with the change
// and a new tag.
func TestGetHeldUntilTheOrderChanges(t *testing.T) {
	t.Parallel()
	h, _ := start(t)
	tok := h.Token("cust-1", "customer")
	s := place(t, h, tok)
	path := orderPath + "/" + s.id

	status, hdr, _ := do(t, h, "GET", path, tok, nil, nil)
	etag := hdr.Get("ETag")
	if status != http.StatusOK || etag == "" {
		t.Fatalf("GET: %d, ETag %q", status, etag)
	}
	if status, hdr, b := do(t, h, "GET", path, tok, nil, map[string]string{"If-None-Match": etag}); status != http.StatusNotModified || len(b) != 0 || hdr.Get("ETag") != etag {
		t.Fatalf("conditional GET of an unchanged order: %d %q, ETag %q", status, b, hdr.Get("ETag"))
	}
	// Nothing changes within the wait: 304 after it, saying so.
	if status, hdr, _ := do(t, h, "GET", path, tok, nil, map[string]string{"If-None-Match": etag, "Prefer": "wait=1"}); status != http.StatusNotModified || hdr.Get("Preference-Applied") != "wait=1" {
		t.Fatalf("held GET without a change: %d, Preference-Applied %q", status, hdr.Get("Preference-Applied"))
	}

	held := holdGet(t, h, path, tok, etag)
	s.publish("inventory-service", s.created, &event.InventoryReservationFailed{OrderID: s.id, Reason: "not enough stock",
		Shortages: []event.Shortage{{ProductID: "p-mug", Requested: 1}}})
	a := <-held
	if a.status != http.StatusOK || a.order.Status != "CANCELLED" || a.etag == "" || a.etag == etag {
		t.Fatalf("held GET after the cancellation: %d %+v, ETag %q (was %q)", a.status, a.order, a.etag, etag)
	}
	// Someone else's order is not found, held or not.
	if status, _, _ := do(t, h, "GET", path, h.Token("cust-2", "customer"), nil, map[string]string{"If-None-Match": "*", "Prefer": "wait=5"}); status != http.StatusNotFound {
		t.Fatalf("another customer's held GET: %d", status)
	}
}

// twoListeningInstances starts two order instances on one PostgreSQL
// database; the first rechecks an order only hourly, so only a change's
// NOTIFY wakes a GET held there, and it is listening.
func twoListeningInstances(t *testing.T) (h *apptest.Harness, first service.Service, second *app.App) {
	t.Helper()
	f := newFakes()
	defs := []service.Def{order.Def(), f.catalog(), f.cart(), f.payment()}
	h = apptest.Start(t, defs, apptest.OnPostgres(t, defs))
	second = h.StartInstance()
	first = h.App.Service(order.Name)
	order.SetRecheck(first, time.Hour, time.Hour)
	h.Eventually("the first instance listening for changes", func() bool { return order.Listening(first) })
	return h, first, second
}

// TestHeldGetHearsOtherInstances: with two order instances on one
// PostgreSQL database, a GET held on the first returns the change as soon
// as the second commits it (the customer cancels there): the commit
// notifies every instance. The first one's rechecks are an hour away, so
// only that notification can wake it before the wait ends.
func TestHeldGetHearsOtherInstances(t *testing.T) {
	h, first, second := twoListeningInstances(t)
	tok := h.Token("cust-1", "customer")
	s := place(t, h, tok)
	path := orderPath + "/" + s.id
	status, hdr, _ := do(t, h, "GET", path, tok, nil, nil)
	etag := hdr.Get("ETag")
	if status != http.StatusOK || etag == "" {
		t.Fatalf("GET: %d, ETag %q", status, etag)
	}

	held := holdGet(t, h, path, tok, etag)
	h.Eventually("the GET held on the first instance", func() bool { return order.Watched(first) == 1 })
	if err := order.CancelAsCustomer(context.Background(), second.Service(order.Name), s.id); err != nil {
		t.Fatal(err)
	}
	a := <-held
	if a.status != http.StatusOK || a.order.Status != "CANCELLED" || a.order.ReasonCode != "customer-cancelled" || a.etag == "" || a.etag == etag {
		t.Fatalf("GET held on the first instance after the cancellation on the second: %d %+v, ETag %q (was %q)", a.status, a.order, a.etag, etag)
	}
}

// TestKnownOrderHeldHearsOtherInstances: with two order instances on one
// PostgreSQL database, a GET held without a read on the first (it knows
// the order is still at the ETag named) returns the change the second
// commits, and the first then knows the order at its new ETag: the change
// was heard of once, through the NOTIFY.
func TestKnownOrderHeldHearsOtherInstances(t *testing.T) {
	h, first, second := twoListeningInstances(t)
	tok := h.Token("cust-1", "customer")
	s := place(t, h, tok)
	path := orderPath + "/" + s.id
	var etag string
	h.Eventually("the order's GET remembered by the first instance", func() bool {
		status, hdr, _ := do(t, h, "GET", path, tok, nil, nil)
		if etag = hdr.Get("ETag"); status != http.StatusOK || etag == "" {
			t.Fatalf("GET: %d, ETag %q", status, etag)
		}
		return order.Known(first) == 1
	})

	held := holdGet(t, h, path, tok, etag)
	h.Eventually("the GET held on the first instance", func() bool { return order.Watched(first) == 1 })
	if err := order.CancelAsCustomer(context.Background(), second.Service(order.Name), s.id); err != nil {
		t.Fatal(err)
	}
	a := <-held
	if a.status != http.StatusOK || a.order.Status != "CANCELLED" || a.etag == "" || a.etag == etag {
		t.Fatalf("known GET held on the first instance after the cancellation on the second: %d %+v, ETag %q (was %q)", a.status, a.order, a.etag, etag)
	}
	if n := order.Known(first); n != 1 {
		t.Fatalf("the first instance knows %d orders after answering the change, want 1", n)
	}
	if status, _, _ := do(t, h, "GET", path, h.Token("cust-2", "customer"), nil, map[string]string{"If-None-Match": a.etag, "Prefer": "wait=5"}); status != http.StatusNotFound {
		t.Fatalf("another customer's GET held on the known ETag: %d", status)
	}
}

// TestHeldGetDoesNotPollSQLite: on SQLite every change of an order is this
// process's and wakes its held GETs, so a GET held on an order that does
// not change reads it once (it watches the order before reading it) and
// then waits for its deadline without reading again (it read it every
// 500 ms). Ten such GETs are held at once; the order database's
// reads counted include the background's, about two a second (the outbox
// relay's poll and the consumer's retries), which ten rechecking GETs
// would exceed many times over.
func TestHeldGetDoesNotPollSQLite(t *testing.T) {
	t.Parallel()
	h, _ := start(t, apptest.Settings(map[string]string{"EVENTMART_SAGA_SWEEP_INTERVAL": "1h"}))
	db := h.App.DB(order.Name)
	if db.Dialect != sqldb.SQLite {
		t.Skip("on PostgreSQL held GETs recheck (TestHeldGetHearsOtherInstances)")
	}
	tok := h.Token("cust-1", "customer")
	const n, wait = 10, 2
	paths, etags := make([]string, n), make([]string, n)
	for i := range n {
		paths[i] = orderPath + "/" + place(t, h, tok).id
		status, hdr, _ := do(t, h, "GET", paths[i], tok, nil, nil)
		if etags[i] = hdr.Get("ETag"); status != http.StatusOK || etags[i] == "" {
			t.Fatalf("GET: %d, ETag %q", status, etags[i])
		}
	}
	before := db.Stats()
	holdUnchanged(t, h, tok, paths, etags, wait, "held GET %d without a change")
	reads := db.Stats().Sub(before).Reads
	if most := int64(n + 3*(wait+1)); reads > most {
		t.Errorf("%d GETs held %d s on unchanged orders: %d reads of the order database, at most %d expected", n, wait, reads, most)
	}
	t.Logf("%d GETs held %d s: %d reads", n, wait, reads)
}

// holdUnchanged holds a GET of each of paths on its ETag for wait seconds,
// all at once, and fails (what: "held GET %d …") unless each answers 304.
func holdUnchanged(t *testing.T, h *apptest.Harness, tok string, paths, etags []string, wait int, what string) {
	t.Helper()
	statuses := make([]int, len(paths))
	var wg sync.WaitGroup
	for i := range paths {
		wg.Go(func() {
			statuses[i], _, _ = do(t, h, "GET", paths[i], tok, nil, map[string]string{"If-None-Match": etags[i], "Prefer": fmt.Sprintf("wait=%d", wait)})
		})
	}
	wg.Wait()
	for i, st := range statuses {
		if st != http.StatusNotModified {
			t.Fatalf(what+": %d", i, st)
		}
	}
}

// startHearingEveryChange starts the order service with no sweep to read
// meanwhile; on PostgreSQL its rechecks are an hour away and it is
// listening, so that, as on SQLite, it hears of every change.
func startHearingEveryChange(t *testing.T) (*apptest.Harness, service.Service, *sqldb.DB) {
	t.Helper()
	h, _ := start(t, apptest.Settings(map[string]string{"EVENTMART_SAGA_SWEEP_INTERVAL": "1h"}))
	svc := h.App.Service(order.Name)
	db := h.App.DB(order.Name)
	if db.Dialect == sqldb.Postgres {
		order.SetRecheck(svc, time.Hour, time.Hour)
		h.Eventually("the instance listening for changes", func() bool { return order.Listening(svc) })
	}
	return h, svc, db
}

// TestHeldGetOfAKnownOrderReadsNothing: a GET held on the ETag this
// instance last answered for the order, with no change heard of since,
// waits without reading the order (its previous answer was that read), on
// SQLite as on PostgreSQL while the instance listens. Twenty such GETs
// read at most what the background reads meanwhile (about two a second);
// reading each order once would exceed it.
func TestHeldGetOfAKnownOrderReadsNothing(t *testing.T) {
	t.Parallel()
	h, svc, db := startHearingEveryChange(t)
	tok := h.Token("cust-1", "customer")
	const n, wait = 20, 1
	paths, etags := make([]string, n), make([]string, n)
	for i := range n {
		paths[i] = orderPath + "/" + place(t, h, tok).id
	}
	// Answered after the orders' placements were heard of (the GET of
	// an order whose change is still to be heard of is not remembered).
	h.Eventually("every order's GET remembered", func() bool {
		for i := range n {
			status, hdr, _ := do(t, h, "GET", paths[i], tok, nil, nil)
			if etags[i] = hdr.Get("ETag"); status != http.StatusOK || etags[i] == "" {
				t.Fatalf("GET: %d, ETag %q", status, etags[i])
			}
		}
		return order.Known(svc) >= n
	})
	before := db.Stats()
	holdUnchanged(t, h, tok, paths, etags, wait, "held GET %d without a change")
	reads := db.Stats().Sub(before).Reads
	if most := int64(3 * (wait + 1)); reads > most {
		t.Errorf("%d GETs held %d s on known unchanged orders: %d reads of the order database, at most %d expected", n, wait, reads, most)
	}
	t.Logf("%d GETs held %d s: %d reads", n, wait, reads)
}

// TestPlacedOrderETagHoldsWithoutReading: POST /orders answers the ETag
// a GET of the order answers right after, and the instance remembers it:
// a held GET naming it, sent at once (the placing's NOTIFY still to come
// on PostgreSQL), reads nothing.
func TestPlacedOrderETagHoldsWithoutReading(t *testing.T) {
	t.Parallel()
	h, _, db := startHearingEveryChange(t)
	tok := h.Token("cust-1", "customer")
	const n, wait = 20, 1
	paths, etags, bodies := make([]string, n), make([]string, n), make([][]byte, n)
	for i := range n {
		status, hdr, b := do(t, h, "POST", orderPath, tok, body(item("p-mug", 1)), nil)
		var o order.Order
		if err := json.Unmarshal(b, &o); status != http.StatusAccepted || err != nil {
			t.Fatalf("POST: %d %s", status, b)
		}
		if etags[i] = hdr.Get("ETag"); etags[i] == "" {
			t.Fatal("POST /orders answered no ETag")
		}
		paths[i], bodies[i] = orderPath+"/"+o.ID, b
	}
	before := db.Stats()
	holdUnchanged(t, h, tok, paths, etags, wait, "held GET %d on the POST's ETag, without a change")
	reads := db.Stats().Sub(before).Reads
	if most := int64(3 * (wait + 1)); reads > most {
		t.Errorf("%d GETs held %d s on the ETags of their POSTs: %d reads of the order database, at most %d expected", n, wait, reads, most)
	}
	t.Logf("%d GETs held %d s: %d reads", n, wait, reads)
	for i := range n {
		status, hdr, b := do(t, h, "GET", paths[i], tok, nil, nil)
		if status != http.StatusOK || hdr.Get("ETag") != etags[i] || !bytes.Equal(b, bodies[i]) {
			t.Fatalf("GET after POST: %d, ETag %q (POST's %q)\nGET  %s\nPOST %s", status, hdr.Get("ETag"), etags[i], b, bodies[i])
		}
	}
}

// heldAnswer is what a held GET of an order answered.
type heldAnswer struct {
	status  int
	etag    string
	applied string // Preference-Applied (holdUntilFinal)
	order   order.Order
}

// holdGet sends a GET of path held up to 30 s while the order is still
// etag, and delivers its answer on the channel it returns.
func holdGet(t *testing.T, h *apptest.Harness, path, tok, etag string) <-chan heldAnswer {
	held := make(chan heldAnswer, 1)
	go func() {
		status, hdr, b := do(t, h, "GET", path, tok, nil, map[string]string{"If-None-Match": etag, "Prefer": "wait=30"})
		a := heldAnswer{status: status, etag: hdr.Get("ETag")}
		json.Unmarshal(b, &a.order)
		held <- a
	}()
	return held
}

// TestHeldGetWokenByItsOwnChangeReadsNothing: on PostgreSQL, a held GET
// woken by the notification of a change this instance committed answers
// with the row the instance wrote, without reading the order; the answer
// is what a GET reads right after. Twenty such GETs read at most what the
// background reads meanwhile (about two a second, and the outbox relay's
// poll for the cancellations); reading each order once would exceed it.
func TestHeldGetWokenByItsOwnChangeReadsNothing(t *testing.T) {
	t.Parallel()
	h, svc, db := startHearingEveryChange(t)
	if db.Dialect != sqldb.Postgres {
		t.Skip("on SQLite a held GET woken by a change reads it")
	}
	tok := h.Token("cust-1", "customer")
	const n = 20
	ids, etags := make([]string, n), make([]string, n)
	for i := range n {
		status, hdr, b := do(t, h, "POST", orderPath, tok, body(item("p-mug", 1)), nil)
		var o order.Order
		if err := json.Unmarshal(b, &o); status != http.StatusAccepted || err != nil || hdr.Get("ETag") == "" {
			t.Fatalf("POST: %d %s", status, b)
		}
		ids[i], etags[i] = o.ID, hdr.Get("ETag")
	}
	h.Eventually("every placing heard of", func() bool { return order.Committing(svc) == 0 })
	held := make([]<-chan heldAnswer, n)
	for i := range n {
		held[i] = holdGet(t, h, orderPath+"/"+ids[i], tok, etags[i])
	}
	h.Eventually("the GETs held", func() bool { return order.Watched(svc) == n })
	began, before := time.Now(), db.Stats()
	// One transaction: one poll of the outbox relay, which reads.
	if err := order.CancelAllAsCustomer(context.Background(), svc, ids...); err != nil {
		t.Fatal(err)
	}
	answers := make([]heldAnswer, n)
	for i := range n {
		answers[i] = <-held[i]
	}
	reads := db.Stats().Sub(before).Reads
	if most := 3 * (int64(time.Since(began)/time.Second) + 1); reads > most {
		t.Errorf("%d held GETs woken by this instance's changes: %d reads of the order database, at most %d expected", n, reads, most)
	}
	t.Logf("%d held GETs woken by this instance's changes: %d reads in %s", n, reads, time.Since(began))
	for i, a := range answers {
		if a.status != http.StatusOK || a.order.Status != "CANCELLED" || a.etag == etags[i] {
			t.Fatalf("held GET %d after the cancellation: %d %+v, ETag %q (was %q)", i, a.status, a.order, a.etag, etags[i])
		}
		status, hdr, b := do(t, h, "GET", orderPath+"/"+ids[i], tok, nil, nil)
		var read order.Order
		json.Unmarshal(b, &read)
		if status != http.StatusOK || hdr.Get("ETag") != a.etag || !reflect.DeepEqual(read, a.order) {
			t.Fatalf("GET %d after the held one: %d, ETag %q (held %q)\nread %+v\nheld %+v", i, status, hdr.Get("ETag"), a.etag, read, a.order)
		}
	}
}

// TestPlacingReadsTheCallerFromMemory: once the caller's projection row
// is remembered, POST /orders reads nothing before the order's
// transaction — one commit on the order database — and a retry of its
// Idempotency-Key is still answered with the first order (found by the
// transaction's insert of the key), with another body still a 422, and
// under load shedding still answered; a change of the row is seen at once,
// and not answered from memory while it is being written.
func TestPlacingReadsTheCallerFromMemory(t *testing.T) {
	t.Parallel()
	h, _ := start(t)
	svc := h.App.Service(order.Name)
	db := h.App.DB(order.Name)
	tok := h.Token("ann", "customer")
	if db.Dialect == sqldb.Postgres {
		h.Eventually("listening for changes", func() bool { return order.Listening(svc) })
	}
	place(t, h, tok)
	h.Eventually("ann's row remembered", func() bool { return order.UserRemembered(svc, "ann") })

	// Quiet first: the saga's consumers write to the same database.
	var got sqldb.Stats
	var status int
	var b []byte
	var key string
	// The relay's reads of the outbox (the POST's commit wakes it) are
	// not the POST's: those in the window are left out.
	for i := 0; ; i++ {
		key = fmt.Sprint("mem-", i)
		relayBefore := order.OutboxReads(svc)
		before := db.Stats()
		status, _, b = do(t, h, "POST", orderPath, tok, body(item("p-mug", 1)), map[string]string{"Idempotency-Key": key})
		got = db.Stats().Sub(before)
		if relay := order.OutboxReads(svc) - relayBefore; got.Commits == 1 && got.Reads == relay {
			break
		}
		if i == 50 {
			t.Fatalf("no POST with a single commit and no read on the order database but the outbox relay's in 50: the last %+v", got)
		}
	}
	var first order.Order
	json.Unmarshal(b, &first)
	if status != http.StatusAccepted || first.ID == "" {
		t.Fatalf("POST: %d %s", status, b)
	}
	status, _, b = do(t, h, "POST", orderPath, tok, body(item("p-mug", 1)), map[string]string{"Idempotency-Key": key})
	var again order.Order
	json.Unmarshal(b, &again)
	if status != http.StatusAccepted || again.ID != first.ID {
		t.Errorf("retry with the key: %d %s, want order %s", status, b, first.ID)
	}
	if status, _, b = do(t, h, "POST", orderPath, tok, body(item("p-mug", 2)), map[string]string{"Idempotency-Key": key}); status != http.StatusUnprocessableEntity {
		t.Errorf("the key with another body: %d %s, want 422", status, b)
	}
	order.SetShedding(svc, true)
	status, hdr, b := do(t, h, "POST", orderPath, tok, body(item("p-mug", 1)), map[string]string{"Idempotency-Key": key})
	if json.Unmarshal(b, &again); status != http.StatusAccepted || again.ID != first.ID {
		t.Errorf("retry while shedding: %d %s, want order %s", status, b, first.ID)
	}
	if status, hdr, _ = do(t, h, "POST", orderPath, tok, body(item("p-mug", 1)), map[string]string{"Idempotency-Key": "mem-new"}); status != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Errorf("a new order while shedding: %d, Retry-After %q; want 503 with it", status, hdr.Get("Retry-After"))
	}
	order.SetShedding(svc, false)

	// From the write on — its commit may be visible before its commit hook
	// runs — the row is not answered from memory.
	if err := order.DeactivateUser(context.Background(), svc, "ann", func() {
		if order.UserRemembered(svc, "ann") {
			t.Error("ann's row answered from memory while a write of it is in flight")
		}
	}); err != nil {
		t.Fatal(err)
	}
	if order.UserRemembered(svc, "ann") {
		t.Error("ann's row still remembered after its change committed")
	}
	if status, _, b = do(t, h, "POST", orderPath, tok, body(item("p-mug", 1)), nil); status != http.StatusForbidden {
		t.Errorf("POST after the deactivation: %d %s, want 403", status, b)
	}
}

// TestAnotherInstancesUserChangeIsHeard: with two order instances on one
// PostgreSQL database, a change of a user's row committed by the second
// (its consumer's partition) makes the first forget the row it remembers:
// its next POST sees the change.
func TestAnotherInstancesUserChangeIsHeard(t *testing.T) {
	h, first, second := twoListeningInstances(t)
	tok := h.Token("ann", "customer")
	place(t, h, tok)
	h.Eventually("ann's row remembered by the first instance", func() bool { return order.UserRemembered(first, "ann") })
	if err := order.DeactivateUser(context.Background(), second.Service(order.Name), "ann", nil); err != nil {
		t.Fatal(err)
	}
	h.Eventually("the first instance forgets ann's row", func() bool { return !order.UserRemembered(first, "ann") })
	if status, _, b := do(t, h, "POST", orderPath, tok, body(item("p-mug", 1)), nil); status != http.StatusForbidden {
		t.Errorf("POST on the first instance after the deactivation on the second: %d %s, want 403", status, b)
	}
}

// untilFinal is what a client that wants only an order's outcome sends.
const untilFinal = "wait=30, until=final"

// holdUntilFinal sends, to base (h's server if empty), a GET of path held
// until the order is final (If-None-Match etag, if not empty), and
// delivers its answer, with its Preference-Applied, on the channel it
// returns.
func holdUntilFinal(t *testing.T, h *apptest.Harness, base, path, tok, etag string) <-chan heldAnswer {
	if base == "" {
		base = h.Server.URL
	}
	held := make(chan heldAnswer, 1)
	go func() {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Prefer", untilFinal)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		var a heldAnswer
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			a.applied = err.Error()
			held <- a
			return
		}
		defer resp.Body.Close()
		a.status, a.etag, a.applied = resp.StatusCode, resp.Header.Get("ETag"), resp.Header.Get("Preference-Applied")
		json.NewDecoder(resp.Body).Decode(&a.order)
		held <- a
	}()
	return held
}

// TestGetHeldUntilFinal: a GET with Prefer: until=final is held while the
// order moves to statuses that are not final — PENDING to CONFIRMED does
// not end it — and answers once it is SHIPPED (or CANCELLED), with the
// order as it is then, whether or not it named an ETag; the answer says
// so (Preference-Applied). On SQLite as on PostgreSQL.
func TestGetHeldUntilFinal(t *testing.T) {
	t.Parallel()
	h, _ := start(t)
	svc := h.App.Service(order.Name)
	tok := h.Token("cust-1", "customer")
	s := place(t, h, tok)
	path := orderPath + "/" + s.id
	status, hdr, _ := do(t, h, "GET", path, tok, nil, nil)
	pending := hdr.Get("ETag")
	if status != http.StatusOK || pending == "" {
		t.Fatalf("GET: %d, ETag %q", status, pending)
	}
	onETag := holdUntilFinal(t, h, "", path, tok, pending)
	noETag := holdUntilFinal(t, h, "", path, tok, "")
	// Both held (one watch of the order) before the saga moves on.
	h.Eventually("the GETs held", func() bool { return order.Watched(svc) == 1 })
	s.paid(s.reserved())
	s.waitStatus("CONFIRMED")
	s.labelled(s.created)
	want := s.waitStatus("SHIPPED")
	for name, held := range map[string]<-chan heldAnswer{"on the ETag": onETag, "without ETag": noETag} {
		a := <-held
		if a.status != http.StatusOK || a.order.Status != "SHIPPED" || a.order.TrackingNumber != want.TrackingNumber || a.etag == "" || a.etag == pending {
			t.Fatalf("GET held until final %s: %d %+v, ETag %q (was %q)", name, a.status, a.order, a.etag, pending)
		}
		if a.applied != "wait=30, until=final" {
			t.Errorf("GET held until final %s: Preference-Applied %q", name, a.applied)
		}
	}

	// A cancellation is final too.
	c := place(t, h, tok)
	cancelled := holdUntilFinal(t, h, "", orderPath+"/"+c.id, tok, "")
	h.Eventually("the GET held", func() bool { return order.Watched(svc) == 1 })
	if err := order.CancelAsCustomer(context.Background(), svc, c.id); err != nil {
		t.Fatal(err)
	}
	if a := <-cancelled; a.status != http.StatusOK || a.order.Status != "CANCELLED" || a.order.ReasonCode != "customer-cancelled" {
		t.Fatalf("GET held until final, after the cancellation: %d %+v", a.status, a.order)
	}
}

// TestGetUntilFinalOfAFinalOrderAnswersAtOnce: a GET held until final of
// an order that is final already is answered at once, not held
// (Preference-Applied names until=final but no wait): 304 when its
// If-None-Match names the order as it is — remembered by the instance or
// read — 200 with the order otherwise. Someone else's order stays not
// found.
func TestGetUntilFinalOfAFinalOrderAnswersAtOnce(t *testing.T) {
	t.Parallel()
	h, _ := start(t)
	tok := h.Token("cust-1", "customer")
	s := place(t, h, tok)
	path := orderPath + "/" + s.id
	_, hdr, _ := do(t, h, "GET", path, tok, nil, nil)
	pending := hdr.Get("ETag")
	if err := order.CancelAsCustomer(context.Background(), h.App.Service(order.Name), s.id); err != nil {
		t.Fatal(err)
	}
	s.waitStatus("CANCELLED")
	status, hdr, b := do(t, h, "GET", path, tok, nil, map[string]string{"If-None-Match": pending, "Prefer": untilFinal})
	final := hdr.Get("ETag")
	var o order.Order
	json.Unmarshal(b, &o)
	if status != http.StatusOK || o.Status != "CANCELLED" || final == "" || final == pending || hdr.Get("Preference-Applied") != "until=final" {
		t.Fatalf("GET until final on the PENDING ETag of a cancelled order: %d %+v, ETag %q, Preference-Applied %q", status, o, final, hdr.Get("Preference-Applied"))
	}
	for _, hs := range []map[string]string{
		{"Prefer": untilFinal},
		{"Prefer": "until=final, wait=30"},
	} {
		if status, hdr, _ := do(t, h, "GET", path, tok, nil, hs); status != http.StatusOK || hdr.Get("ETag") != final || hdr.Get("Preference-Applied") != "until=final" {
			t.Fatalf("GET until final (%q) of a cancelled order: %d, ETag %q, Preference-Applied %q", hs, status, hdr.Get("ETag"), hdr.Get("Preference-Applied"))
		}
	}
	// On its own ETag: not modified. Twice: the second is answered by what
	// the instance remembers of the first (known), the first perhaps too.
	for range 2 {
		status, hdr, b := do(t, h, "GET", path, tok, nil, map[string]string{"If-None-Match": final, "Prefer": untilFinal})
		if status != http.StatusNotModified || len(b) != 0 || hdr.Get("ETag") != final || hdr.Get("Preference-Applied") != "until=final" {
			t.Fatalf("GET until final on the final ETag: %d %q, ETag %q, Preference-Applied %q", status, b, hdr.Get("ETag"), hdr.Get("Preference-Applied"))
		}
	}
	if status, _, _ := do(t, h, "GET", path, h.Token("cust-2", "customer"), nil, map[string]string{"If-None-Match": final, "Prefer": untilFinal}); status != http.StatusNotFound {
		t.Fatalf("another customer's GET until final: %d", status)
	}
	// Without wait, until=final is no hold: a plain GET.
	if status, hdr, _ := do(t, h, "GET", path, tok, nil, map[string]string{"If-None-Match": final, "Prefer": "until=final"}); status != http.StatusNotModified || hdr.Get("Preference-Applied") != "" {
		t.Fatalf("GET with until=final and no wait: %d, Preference-Applied %q", status, hdr.Get("Preference-Applied"))
	}
}

// TestGetUntilFinalTimesOutWithTheOrderAsItIs: a GET held until final
// that times out answers the order as it is then: 304 if its
// If-None-Match names that, 200 with the order (CONFIRMED, not final)
// otherwise — the order changed since the ETag named, but not to a final
// status, so the GET was held to the end of its wait.
func TestGetUntilFinalTimesOutWithTheOrderAsItIs(t *testing.T) {
	t.Parallel()
	h, _ := start(t)
	tok := h.Token("cust-1", "customer")
	s := place(t, h, tok)
	path := orderPath + "/" + s.id
	_, hdr, _ := do(t, h, "GET", path, tok, nil, nil)
	pending := hdr.Get("ETag")
	status, hdr, _ := do(t, h, "GET", path, tok, nil, map[string]string{"If-None-Match": pending, "Prefer": "wait=1, until=final"})
	if status != http.StatusNotModified || hdr.Get("ETag") != pending || hdr.Get("Preference-Applied") != "wait=1, until=final" {
		t.Fatalf("GET until final of an unchanged order, timed out: %d, ETag %q (was %q), Preference-Applied %q", status, hdr.Get("ETag"), pending, hdr.Get("Preference-Applied"))
	}
	s.paid(s.reserved())
	confirmed := s.waitStatus("CONFIRMED")
	status, hdr, b := do(t, h, "GET", path, tok, nil, map[string]string{"If-None-Match": pending, "Prefer": "wait=1, until=final"})
	var o order.Order
	json.Unmarshal(b, &o)
	if status != http.StatusOK || !reflect.DeepEqual(o, confirmed) || hdr.Get("ETag") == pending || hdr.Get("Preference-Applied") != "wait=1, until=final" {
		t.Fatalf("GET until final on the PENDING ETag of a CONFIRMED order, timed out: %d %+v, ETag %q (was %q), Preference-Applied %q", status, o, hdr.Get("ETag"), pending, hdr.Get("Preference-Applied"))
	}
	status, hdr2, _ := do(t, h, "GET", path, tok, nil, map[string]string{"If-None-Match": hdr.Get("ETag"), "Prefer": "wait=1, until=final"})
	if status != http.StatusNotModified || hdr2.Get("ETag") != hdr.Get("ETag") {
		t.Fatalf("GET until final on the CONFIRMED ETag, timed out: %d, ETag %q (was %q)", status, hdr2.Get("ETag"), hdr.Get("ETag"))
	}
}

// TestGetUntilFinalThroughTheGateway: a gateway that proxies the order
// service (distributed mode) passes the preference on and its
// Preference-Applied back: the GET is held there until the order ships.
func TestGetUntilFinalThroughTheGateway(t *testing.T) {
	t.Parallel()
	h, _ := start(t)
	svc := h.App.Service(order.Name)
	upstream, err := url.Parse(h.Server.URL)
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(gateway.Handler(http.NotFoundHandler(), nil, map[string][]*url.URL{order.Name: {upstream}}))
	defer gw.Close()
	tok := h.Token("cust-1", "customer")
	status, hdr, b := do(t, h, "POST", orderPath, tok, body(item("p-mug", 1)), nil)
	var o order.Order
	if err := json.Unmarshal(b, &o); status != http.StatusAccepted || err != nil || hdr.Get("ETag") == "" {
		t.Fatalf("POST: %d %s", status, b)
	}
	s := &saga{t: t, h: h, token: tok, id: o.ID, created: h.Events.Wait(t, "OrderCreated", apptest.Keyed(o.ID))}
	held := holdUntilFinal(t, h, gw.URL, orderPath+"/"+o.ID, tok, hdr.Get("ETag"))
	h.Eventually("the GET held", func() bool { return order.Watched(svc) == 1 })
	s.paid(s.reserved())
	s.labelled(s.created)
	a := <-held
	if a.status != http.StatusOK || a.order.Status != "SHIPPED" || a.applied != "wait=30, until=final" {
		t.Fatalf("GET until final through the gateway: %d %+v, Preference-Applied %q", a.status, a.order, a.applied)
	}
}
