package cart_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/cart"
	"github.com/eventmart/eventmart/catalog"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/obs/obstest"
	"github.com/eventmart/eventmart/internal/service"
)

func start(t *testing.T, opts ...apptest.Option) (*apptest.Harness, string) {
	h := apptest.Start(t, []service.Def{catalog.Def(), cart.Def()}, opts...)
	return h, h.Token("a", "admin")
}

// product creates an active catalog product and returns its id.
func product(t *testing.T, h *apptest.Harness, admin, sku string) string {
	t.Helper()
	var p catalog.Product
	h.JSON("POST", "/api/v1/products", admin, map[string]any{"sku": sku, "name": sku, "priceCents": 100, "currency": "EUR"}, http.StatusCreated, &p)
	return p.ID
}

func add(t *testing.T, h *apptest.Harness, token, productID string, qty int64) cart.Cart {
	t.Helper()
	var c cart.Cart
	h.JSON("POST", "/api/v1/cart/items", token, map[string]any{"productId": productID, "quantity": qty}, http.StatusOK, &c)
	return c
}

func get(t *testing.T, h *apptest.Harness, token string) cart.Cart {
	t.Helper()
	var c cart.Cart
	h.JSON("GET", "/api/v1/cart", token, nil, http.StatusOK, &c)
	return c
}

func items(its ...any) []event.CartItem {
	out := []event.CartItem{}
	for i := 0; i < len(its); i += 2 {
		out = append(out, event.CartItem{ProductID: its[i].(string), Quantity: int64(its[i+1].(int))})
	}
	return out
}

func same(a, b []event.CartItem) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func updated(t *testing.T, e *event.Envelope) *event.CartUpdated {
	t.Helper()
	p, err := e.Payload()
	if err != nil {
		t.Fatal(err)
	}
	return p.(*event.CartUpdated)
}

// withReason matches CartUpdated events of one user with one reason.
func withReason(userID, reason string) func(*event.Envelope) bool {
	return func(e *event.Envelope) bool {
		if e.EventType != "CartUpdated" || e.Key != userID {
			return false
		}
		p, err := e.Payload()
		return err == nil && p.(*event.CartUpdated).Reason == reason
	}
}

var origin = event.FromRequest("test-correlation", event.Metadata{})

func TestAddRemoveAndList(t *testing.T) {
	h, admin := start(t)
	mug, tea := product(t, h, admin, "MUG"), product(t, h, admin, "TEA")
	c1 := h.Token("c1", "customer")

	status, _, body := h.Do("GET", "/api/v1/cart", c1, nil)
	if status != http.StatusOK || string(body) != `{"cartId":"","userId":"c1","items":[]}`+"\n" {
		t.Errorf("empty cart: %d %s", status, body)
	}

	c := add(t, h, c1, mug, 2)
	if c.CartID == "" || c.UserID != "c1" || !same(c.Items, items(mug, 2)) || c.UpdatedAt.IsZero() {
		t.Errorf("after the first item %+v", c)
	}
	created := h.Events.Wait(t, "CartCreated", apptest.Keyed("c1"))
	first := h.Events.Wait(t, "CartUpdated", apptest.Keyed("c1"))
	if created.Metadata.UserID != "c1" || first.CorrelationID != created.CorrelationID {
		t.Errorf("CartCreated %+v, CartUpdated %+v", created, first)
	}
	if all := h.Events.All(apptest.Keyed("c1")); all[0].EventType != "CartCreated" {
		t.Errorf("first cart event %s, want CartCreated", all[0].EventType)
	}

	add(t, h, c1, mug, 3)
	c = add(t, h, c1, tea, 1)
	if !same(c.Items, items(mug, 5, tea, 1)) {
		t.Errorf("after adding %+v", c.Items)
	}
	if got := get(t, h, c1); got.CartID != c.CartID || !same(got.Items, c.Items) || !got.UpdatedAt.Equal(c.UpdatedAt) {
		t.Errorf("GET %+v, want %+v", got, c)
	}

	h.JSON("DELETE", "/api/v1/cart/items/"+mug, c1, nil, http.StatusOK, &c)
	if !same(c.Items, items(tea, 1)) {
		t.Errorf("after removing %+v", c.Items)
	}
	e := h.Events.Wait(t, "CartUpdated", func(e *event.Envelope) bool {
		p, err := e.Payload()
		return err == nil && e.Key == "c1" && same(p.(*event.CartUpdated).Items, items(tea, 1))
	})
	if p := updated(t, e); p.CartID != c.CartID || p.Reason != "" {
		t.Errorf("CartUpdated %+v", p)
	}
	h.JSON("DELETE", "/api/v1/cart/items/"+mug, c1, nil, http.StatusNotFound, nil)

	// Emptied, the cart stays the same cart.
	cartID := c.CartID
	h.JSON("DELETE", "/api/v1/cart/items/"+tea, c1, nil, http.StatusOK, &c)
	if len(c.Items) != 0 || c.CartID != cartID {
		t.Errorf("emptied %+v", c)
	}
	c = add(t, h, c1, tea, 1)
	h.Events.Wait(t, "CartUpdated", func(e *event.Envelope) bool {
		p, err := e.Payload()
		return err == nil && e.Key == "c1" && same(p.(*event.CartUpdated).Items, items(tea, 1)) && e.CorrelationID != first.CorrelationID
	})
	if n := len(h.Events.All(func(e *event.Envelope) bool { return e.EventType == "CartCreated" })); n != 1 || c.CartID != cartID {
		t.Errorf("%d CartCreated, cart %+v", n, c)
	}
}

func TestBadRequestsGetClearErrors(t *testing.T) {
	h, admin := start(t)
	mug, old := product(t, h, admin, "MUG"), product(t, h, admin, "OLD")
	h.JSON("DELETE", "/api/v1/products/"+old, admin, nil, http.StatusOK, nil)
	c1 := h.Token("c1", "customer")
	add(t, h, c1, mug, 60)

	for _, c := range []struct {
		name, method, path, token, body string
		status                          int
		code, msg                       string
	}{
		{"anonymous read", "GET", "/api/v1/cart", "", ``, 401, "unauthorized", "authentication required"},
		{"anonymous add", "POST", "/api/v1/cart/items", "", `{"productId":"x","quantity":1}`, 401, "unauthorized", "authentication required"},
		{"anonymous remove", "DELETE", "/api/v1/cart/items/" + mug, "", ``, 401, "unauthorized", "authentication required"},
		{"missing productId", "POST", "/api/v1/cart/items", c1, `{"quantity":1}`, 400, "invalid", "productId is required"},
		{"missing quantity", "POST", "/api/v1/cart/items", c1, `{"productId":"` + mug + `"}`, 400, "invalid", "quantity is required"},
		{"zero quantity", "POST", "/api/v1/cart/items", c1, `{"productId":"` + mug + `","quantity":0}`, 400, "invalid", "quantity must be between 1 and 100"},
		{"huge quantity", "POST", "/api/v1/cart/items", c1, `{"productId":"` + mug + `","quantity":101}`, 400, "invalid", "quantity must be between 1 and 100"},
		{"line limit", "POST", "/api/v1/cart/items", c1, `{"productId":"` + mug + `","quantity":41}`, 400, "invalid", "holds 60 of product " + mug + "; adding 41 would exceed the limit of 100"},
		{"wrong type", "POST", "/api/v1/cart/items", c1, `{"productId":"` + mug + `","quantity":"two"}`, 400, "invalid", `"quantity" must be a number`},
		{"unknown field", "POST", "/api/v1/cart/items", c1, `{"productId":"` + mug + `","quantity":1,"price":1}`, 400, "invalid", `unknown field "price"`},
		{"malformed", "POST", "/api/v1/cart/items", c1, `{"productId":`, 400, "invalid", "JSON"},
		{"unknown product", "POST", "/api/v1/cart/items", c1, `{"productId":"nope","quantity":1}`, 404, "not_found", "unknown product nope"},
		{"discontinued", "POST", "/api/v1/cart/items", c1, `{"productId":"` + old + `","quantity":1}`, 409, "conflict", "product " + old + " is discontinued"},
		{"remove absent", "DELETE", "/api/v1/cart/items/nope", c1, ``, 404, "not_found", "product nope is not in your cart"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var body any
			if c.body != "" {
				body = c.body
			}
			status, _, b := h.Do(c.method, c.path, c.token, body)
			var eb httpx.ErrorBody
			json.Unmarshal(b, &eb)
			if status != c.status || eb.Error.Code != c.code || !strings.Contains(eb.Error.Message, c.msg) {
				t.Errorf("got %d %s, want %d %s containing %q", status, b, c.status, c.code, c.msg)
			}
		})
	}
	if c := add(t, h, c1, mug, 40); !same(c.Items, items(mug, 100)) {
		t.Errorf("up to the limit: %+v", c.Items)
	}
}

func TestConcurrentAdditionsAllCount(t *testing.T) {
	h, admin := start(t)
	mug := product(t, h, admin, "MUG")
	c1 := h.Token("c1", "customer")
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if status, _, body := h.Do("POST", "/api/v1/cart/items", c1, map[string]any{"productId": mug, "quantity": 2}); status != http.StatusOK {
				t.Errorf("add: %d %s", status, body)
			}
		}()
	}
	wg.Wait()
	if c := get(t, h, c1); !same(c.Items, items(mug, 40)) {
		t.Errorf("cart %+v", c.Items)
	}
	h.Eventually("20 CartUpdated", func() bool {
		return len(h.Events.All(func(e *event.Envelope) bool { return e.EventType == "CartUpdated" })) == 20
	})
	if n := len(h.Events.All(func(e *event.Envelope) bool { return e.EventType == "CartCreated" })); n != 1 {
		t.Errorf("%d CartCreated", n)
	}
}

func TestCustomersReadOnlyTheirOwnCart(t *testing.T) {
	h, admin := start(t)
	mug := product(t, h, admin, "MUG")
	c1, c2 := h.Token("c1", "customer"), h.Token("c2", "customer")
	mine := add(t, h, c1, mug, 1)

	status, _, body := h.Do("GET", "/api/v1/cart?userId=c1", c2, nil)
	if status != http.StatusForbidden || !strings.Contains(string(body), "only admins") {
		t.Errorf("another customer's cart: %d %s", status, body)
	}
	if c := get(t, h, c2); c.CartID != "" || len(c.Items) != 0 {
		t.Errorf("c2's own cart %+v", c)
	}
	var c cart.Cart
	h.JSON("GET", "/api/v1/cart?userId=c1", admin, nil, http.StatusOK, &c)
	if c.CartID != mine.CartID || !same(c.Items, items(mug, 1)) {
		t.Errorf("admin reads %+v, want %+v", c, mine)
	}
	h.JSON("GET", "/api/v1/cart?userId=c1", c1, nil, http.StatusOK, &c)
	if c.CartID != mine.CartID {
		t.Errorf("own cart by userId %+v", c)
	}
	// c2 cannot remove from c1's cart: it works on c2's own, where the product is not.
	h.JSON("DELETE", "/api/v1/cart/items/"+mug, c2, nil, http.StatusNotFound, nil)
}

func TestDiscontinuedProductLeavesEveryCart(t *testing.T) {
	h, admin := start(t)
	mug, tea := product(t, h, admin, "MUG"), product(t, h, admin, "TEA")
	c1, c2, c3 := h.Token("c1", "customer"), h.Token("c2", "customer"), h.Token("c3", "customer")
	add(t, h, c1, mug, 1)
	add(t, h, c1, tea, 2)
	add(t, h, c2, mug, 3)
	add(t, h, c3, tea, 1)

	h.JSON("DELETE", "/api/v1/products/"+mug, admin, nil, http.StatusOK, nil)
	if p := updated(t, h.Events.Wait(t, "CartUpdated", withReason("c1", "product-discontinued"))); !same(p.Items, items(tea, 2)) {
		t.Errorf("c1 %+v", p)
	}
	if p := updated(t, h.Events.Wait(t, "CartUpdated", withReason("c2", "product-discontinued"))); len(p.Items) != 0 {
		t.Errorf("c2 %+v", p)
	}
	if c := get(t, h, c1); !same(c.Items, items(tea, 2)) {
		t.Errorf("c1 cart %+v", c.Items)
	}
	if c := get(t, h, c3); !same(c.Items, items(tea, 1)) {
		t.Errorf("c3 cart %+v", c.Items)
	}
	if n := len(h.Events.All(withReason("c3", "product-discontinued"))); n != 0 {
		t.Errorf("%d CartUpdated for an unaffected cart", n)
	}
}

func TestCheckoutTakesOrderedItemsOut(t *testing.T) {
	h, admin := start(t)
	mug, tea := product(t, h, admin, "MUG"), product(t, h, admin, "TEA")
	c1 := h.Token("c1", "customer")
	add(t, h, c1, mug, 5)
	add(t, h, c1, tea, 1)
	order := func(id string, fromCart bool, lines ...event.OrderLine) *event.OrderCreated {
		return &event.OrderCreated{OrderID: id, Customer: event.Customer{UserID: "c1"}, Lines: lines, Currency: "EUR", FromCart: fromCart}
	}

	// Not from the cart: the cart stays as it is.
	h.Publish("order-service", origin, order("o0", false, event.OrderLine{ProductID: mug, Quantity: 5}))
	// The same OrderCreated delivered twice takes its items out once.
	env, err := event.New("order-service", origin, order("o1", true, event.OrderLine{ProductID: mug, Quantity: 2}))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		m, err := eventmsg.Encode(context.Background(), env)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Bus.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	// The whole remaining cart, after both copies (all on one partition as o1).
	last := sameOrderPartition("o1")
	h.Publish("order-service", origin, order(last, true, event.OrderLine{ProductID: mug, Quantity: 3}, event.OrderLine{ProductID: tea, Quantity: 1}))
	e := h.Events.Wait(t, "CartUpdated", func(e *event.Envelope) bool {
		p, err := e.Payload()
		return err == nil && e.Key == "c1" && p.(*event.CartUpdated).Reason == "checkout" && len(p.(*event.CartUpdated).Items) == 0
	})
	if c := get(t, h, c1); len(c.Items) != 0 {
		t.Errorf("cart after checkout %+v", c.Items)
	}
	checkouts := h.Events.All(withReason("c1", "checkout"))
	if len(checkouts) != 2 || !same(updated(t, checkouts[0]).Items, items(mug, 3, tea, 1)) || checkouts[1] != e {
		t.Errorf("%d checkout updates, first %+v", len(checkouts), updated(t, checkouts[0]))
	}
}

// TestOrderNotFromTheCartCostsNoTransaction: an order not placed from a
// cart is consumed as ignored, with no transaction in the cart service's
// database (on SQLite, and on PostgreSQL with
// EVENTMART_TEST_SERVICES_DB=postgres); TestCheckoutTakesOrderedItemsOut
// shows an order from the cart still takes its items out.
func TestOrderNotFromTheCartCostsNoTransaction(t *testing.T) {
	h, _ := start(t)
	db := h.App.DB(cart.Name)
	ignored := func() float64 {
		m, err := obstest.Scrape(h.Server.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		return m.Value("eventmart_events_consumed_total", "group", "cart-service", "event_type", "OrderCreated", "outcome", "ignored")
	}
	was, before := ignored(), db.Stats()
	for _, id := range []string{"o1", "o2", "o3"} {
		h.Publish("order-service", origin, &event.OrderCreated{OrderID: id, Customer: event.Customer{UserID: "c1"}, Currency: "EUR",
			Lines: []event.OrderLine{{ProductID: "p1", Quantity: 1}}})
	}
	h.Eventually("three orders consumed as ignored", func() bool { return ignored()-was == 3 })
	if got := db.Stats().Sub(before); got.Commits != 0 || got.Statements != 0 {
		t.Errorf("three orders not from a cart: %+v, want no commit and no statement", got)
	}
}

// sameOrderPartition returns an order id on the same order-events partition
// as orderID, so it is handled after orderID's earlier events.
func sameOrderPartition(orderID string) string {
	n := int32(0)
	for _, ts := range event.Topics {
		if ts.Name == event.TopicOrder {
			n = ts.Partitions
		}
	}
	for i := 0; ; i++ {
		id := fmt.Sprintf("%s-%d", orderID, i)
		if bus.PartitionFor([]byte(id), n) == bus.PartitionFor([]byte(orderID), n) {
			return id
		}
	}
}

func TestDeactivatedUserCannotUseTheCart(t *testing.T) {
	h, admin := start(t)
	mug := product(t, h, admin, "MUG")
	c1 := h.Token("c1", "customer")
	add(t, h, c1, mug, 2)

	h.Publish("user-service", origin, &event.UserDeactivated{UserID: "c1", Reason: "fraud"})
	if p := updated(t, h.Events.Wait(t, "CartUpdated", withReason("c1", "user-deactivated"))); len(p.Items) != 0 {
		t.Errorf("CartUpdated %+v", p)
	}
	if c := get(t, h, c1); len(c.Items) != 0 {
		t.Errorf("cart %+v", c.Items)
	}
	status, _, body := h.Do("POST", "/api/v1/cart/items", c1, map[string]any{"productId": mug, "quantity": 1})
	if status != http.StatusForbidden || !strings.Contains(string(body), "deactivated") {
		t.Errorf("add after deactivation: %d %s", status, body)
	}
	if status, _, _ := h.Do("DELETE", "/api/v1/cart/items/"+mug, c1, nil); status != http.StatusForbidden {
		t.Errorf("remove after deactivation: %d", status)
	}
}

func TestAbandonedCartIsReportedOncePerIdlePeriod(t *testing.T) {
	h, admin := start(t, apptest.Settings(map[string]string{
		"EVENTMART_CART_SWEEP_INTERVAL": "20ms",
		"EVENTMART_CART_ABANDON_AFTER":  "50ms",
	}))
	mug := product(t, h, admin, "MUG")
	c1, c2 := h.Token("c1", "customer"), h.Token("c2", "customer")
	c := add(t, h, c1, mug, 2)

	abandoned := func(userID string, since cart.Cart) *event.CartAbandoned {
		t.Helper()
		e := h.Events.Wait(t, "CartAbandoned", func(e *event.Envelope) bool {
			p, err := e.Payload()
			return err == nil && e.Key == userID && p.(*event.CartAbandoned).IdleSince.Equal(since.UpdatedAt)
		})
		p, _ := e.Payload()
		return p.(*event.CartAbandoned)
	}
	if p := abandoned("c1", c); p.CartID != c.CartID || p.UserID != "c1" || !same(p.Items, items(mug, 2)) {
		t.Errorf("CartAbandoned %+v", p)
	}

	// c2's cart, filled after c1's was reported, is abandoned only after
	// several sweeps; by then c1's must still have been reported once.
	abandoned("c2", add(t, h, c2, mug, 1))
	if n := len(h.Events.All(func(e *event.Envelope) bool { return e.EventType == "CartAbandoned" && e.Key == "c1" })); n != 1 {
		t.Errorf("c1 reported %d times in one idle period", n)
	}

	// A change starts a new idle period, reported again.
	c = add(t, h, c1, mug, 1)
	if p := abandoned("c1", c); !same(p.Items, items(mug, 3)) {
		t.Errorf("second CartAbandoned %+v", p)
	}
}
