package inventory_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/catalog"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/inventory"
)

func start(t *testing.T) (*apptest.Harness, string) {
	h := apptest.Start(t, []service.Def{inventory.Def()})
	return h, h.Token("admin-1", "admin")
}

var origin = event.FromRequest("test-correlation", event.Metadata{UserID: "cust-1"})

// product makes id known to inventory (as the catalog would) with onHand
// in stock.
func product(t *testing.T, h *apptest.Harness, admin, id string, onHand int64) {
	t.Helper()
	h.Publish("catalog-service", origin, &event.ProductCreated{ProductID: id, SKU: id, Name: id, PriceCents: 100, Currency: "EUR"})
	h.Eventually("stock row of "+id, func() bool {
		status, _, _ := h.Do("GET", "/api/v1/inventory/"+id, "", nil)
		return status == http.StatusOK
	})
	if onHand > 0 {
		h.JSON("PUT", "/api/v1/inventory/"+id, admin, map[string]any{"onHand": onHand}, http.StatusOK, nil)
	}
}

func stock(t *testing.T, h *apptest.Harness, id string) inventory.Stock {
	t.Helper()
	var st inventory.Stock
	h.JSON("GET", "/api/v1/inventory/"+id, "", nil, http.StatusOK, &st)
	return st
}

func order(id string, lines ...event.OrderLine) *event.OrderCreated {
	return &event.OrderCreated{OrderID: id, Customer: event.Customer{UserID: "cust-1"}, Lines: lines, Currency: "EUR"}
}

func line(productID string, qty int64) event.OrderLine {
	return event.OrderLine{ProductID: productID, SKU: productID, Name: productID, Quantity: qty, UnitPriceCents: 100}
}

func payload[T event.Payload](t *testing.T, e *event.Envelope) T {
	t.Helper()
	p, err := e.Payload()
	if err != nil {
		t.Fatal(err)
	}
	return p.(T)
}

// drain waits until inventory has handled every order event of orderID
// published so far, and the recorder has seen every inventory event they
// caused: it sends an empty order whose id shares orderID's partition on
// order-events (so it is handled after them) and on inventory-events (so
// its failure is recorded after their events), and waits for that failure.
func drain(t *testing.T, h *apptest.Harness, orderID string) {
	t.Helper()
	part := func(key string, topic event.Topic) int32 {
		for _, ts := range event.Topics {
			if ts.Name == topic {
				return bus.PartitionFor([]byte(key), ts.Partitions)
			}
		}
		t.Fatalf("no topic %s", topic)
		return 0
	}
	for i := 0; ; i++ {
		id := fmt.Sprintf("%s-sync-%d", orderID, i)
		if part(id, event.TopicOrder) == part(orderID, event.TopicOrder) && part(id, event.TopicInventory) == part(orderID, event.TopicInventory) {
			h.Publish("order-service", origin, order(id))
			h.Events.Wait(t, "InventoryReservationFailed", apptest.Keyed(id))
			return
		}
	}
}

func count(h *apptest.Harness, typ event.Type, key string) int {
	return len(h.Events.All(func(e *event.Envelope) bool { return e.EventType == typ && e.Key == key }))
}

func TestOrderReservesEveryLineOrNone(t *testing.T) {
	h, admin := start(t)
	product(t, h, admin, "MUG", 5)
	product(t, h, admin, "TEA", 1)

	created := h.Publish("order-service", origin, order("o1", line("TEA", 1), line("MUG", 2)))[0]
	e := h.Events.Wait(t, "InventoryReserved", apptest.Keyed("o1"))
	if e.CorrelationID != created.CorrelationID || e.CausationID != created.EventID || e.Source != "inventory-service" {
		t.Errorf("envelope %+v, caused by %s", e, created.EventID)
	}
	res := payload[*event.InventoryReserved](t, e)
	wantLines := []event.Line{{ProductID: "MUG", Quantity: 2}, {ProductID: "TEA", Quantity: 1}}
	wantLevels := []event.StockLevel{
		{ProductID: "MUG", OnHand: 5, Reserved: 2, Available: 3, Version: 2}, // set, then reserved
		{ProductID: "TEA", OnHand: 1, Reserved: 1, Available: 0, Version: 2},
	}
	if fmt.Sprint(res.Lines) != fmt.Sprint(wantLines) || fmt.Sprint(res.Levels) != fmt.Sprint(wantLevels) {
		t.Errorf("reserved %+v, want lines %+v levels %+v", res, wantLines, wantLevels)
	}

	// TEA is sold out: the second order reserves nothing, not even its MUG.
	h.Publish("order-service", origin, order("o2", line("MUG", 1), line("TEA", 1)))
	f := payload[*event.InventoryReservationFailed](t, h.Events.Wait(t, "InventoryReservationFailed", apptest.Keyed("o2")))
	if f.Reason != "not enough stock for TEA: 1 requested, 0 available" ||
		len(f.Shortages) != 1 || f.Shortages[0] != (event.Shortage{ProductID: "TEA", Requested: 1, Available: 0}) {
		t.Errorf("failure %+v", f)
	}
	if st := stock(t, h, "MUG"); st.Reserved != 2 || st.Available != 3 || st.Version != 2 {
		t.Errorf("MUG after the failed order %+v", st)
	}
}

func TestDuplicateProductLinesAreSummed(t *testing.T) {
	h, admin := start(t)
	product(t, h, admin, "MUG", 3)

	h.Publish("order-service", origin, order("o1", line("MUG", 2), line("MUG", 2)))
	f := payload[*event.InventoryReservationFailed](t, h.Events.Wait(t, "InventoryReservationFailed", apptest.Keyed("o1")))
	if f.Reason != "not enough stock for MUG: 4 requested, 3 available" {
		t.Errorf("reason %q", f.Reason)
	}

	h.Publish("order-service", origin, order("o2", line("MUG", 1), line("MUG", 2)))
	r := payload[*event.InventoryReserved](t, h.Events.Wait(t, "InventoryReserved", apptest.Keyed("o2")))
	if len(r.Lines) != 1 || r.Lines[0].Quantity != 3 || r.Levels[0].Available != 0 {
		t.Errorf("reserved %+v", r)
	}
}

func TestUnknownAndDiscontinuedProductsAreNotReserved(t *testing.T) {
	h, admin := start(t)
	product(t, h, admin, "MUG", 5)
	product(t, h, admin, "OLD", 5)
	h.Publish("catalog-service", origin, &event.ProductDiscontinued{ProductID: "OLD"})
	h.Eventually("OLD discontinued", func() bool { return stock(t, h, "OLD").Discontinued })

	h.Publish("order-service", origin, order("o1", line("MUG", 1), line("OLD", 1), line("GHOST", 2)))
	f := payload[*event.InventoryReservationFailed](t, h.Events.Wait(t, "InventoryReservationFailed", apptest.Keyed("o1")))
	if f.Reason != "unknown product GHOST; product OLD is discontinued" || len(f.Shortages) != 2 {
		t.Errorf("failure %+v", f)
	}
	if st := stock(t, h, "MUG"); st.Reserved != 0 {
		t.Errorf("MUG reserved %d", st.Reserved)
	}

	// Discontinued before created (out of order): the product stays discontinued.
	h.Publish("catalog-service", origin, &event.ProductDiscontinued{ProductID: "LATE"}, &event.ProductCreated{ProductID: "LATE", SKU: "LATE", Name: "Late", PriceCents: 1, Currency: "EUR"})
	h.Eventually("LATE known", func() bool {
		status, _, _ := h.Do("GET", "/api/v1/inventory/LATE", "", nil)
		return status == http.StatusOK
	})
	if st := stock(t, h, "LATE"); !st.Discontinued {
		t.Errorf("LATE %+v", st)
	}
}

func TestCancelReleasesTheReservation(t *testing.T) {
	h, admin := start(t)
	product(t, h, admin, "MUG", 5)
	h.Publish("order-service", origin, order("o1", line("MUG", 2)))
	h.Events.Wait(t, "InventoryReserved", apptest.Keyed("o1"))

	cancel := &event.OrderCancelled{OrderID: "o1", UserID: "cust-1", ReasonCode: "payment-failed", Reason: "card declined"}
	h.Publish("order-service", origin, cancel)
	rel := payload[*event.InventoryReleased](t, h.Events.Wait(t, "InventoryReleased", apptest.Keyed("o1")))
	if rel.Reason != "payment-failed" || len(rel.Lines) != 1 || rel.Lines[0].Quantity != 2 ||
		rel.Levels[0] != (event.StockLevel{ProductID: "MUG", OnHand: 5, Reserved: 0, Available: 5, Version: 3}) {
		t.Errorf("released %+v", rel)
	}

	// A second cancellation (a different event) releases nothing more, and
	// a late OrderShipped does not take goods that are no longer reserved.
	h.Publish("order-service", origin, cancel, &event.OrderShipped{OrderID: "o1", UserID: "cust-1"})
	drain(t, h, "o1")
	if n := count(h, "InventoryReleased", "o1"); n != 1 {
		t.Errorf("%d InventoryReleased, want 1", n)
	}
	if st := stock(t, h, "MUG"); st.OnHand != 5 || st.Reserved != 0 || st.Version != 3 {
		t.Errorf("MUG %+v", st)
	}
}

func TestCancelBeforeCreateReservesNothing(t *testing.T) {
	h, admin := start(t)
	product(t, h, admin, "MUG", 5)
	h.Publish("order-service", origin,
		&event.OrderCancelled{OrderID: "o1", UserID: "cust-1", ReasonCode: "timeout", Reason: "timed out"},
		order("o1", line("MUG", 2)))
	drain(t, h, "o1")
	for _, typ := range []event.Type{"InventoryReserved", "InventoryReservationFailed", "InventoryReleased"} {
		if n := count(h, typ, "o1"); n != 0 {
			t.Errorf("%d %s for a cancelled order", n, typ)
		}
	}
	if st := stock(t, h, "MUG"); st.Reserved != 0 {
		t.Errorf("MUG %+v", st)
	}
}

func TestShippingTakesReservedGoodsOffTheShelf(t *testing.T) {
	h, admin := start(t)
	product(t, h, admin, "MUG", 5)
	product(t, h, admin, "TEA", 4)
	h.Publish("order-service", origin, order("o1", line("TEA", 1), line("MUG", 2)))
	h.Events.Wait(t, "InventoryReserved", apptest.Keyed("o1"))

	shipped := h.Publish("order-service", origin, &event.OrderShipped{OrderID: "o1", UserID: "cust-1", ShipmentID: "s1"})[0]
	adj := payload[*event.InventoryAdjusted](t, h.Events.Wait(t, "InventoryAdjusted", func(e *event.Envelope) bool {
		return e.Key == "MUG" && e.CausationID == shipped.EventID
	}))
	if adj.Delta != -2 || adj.Reason != "shipped" || adj.OrderID != "o1" ||
		adj.Level != (event.StockLevel{ProductID: "MUG", OnHand: 3, Reserved: 0, Available: 3, Version: 3}) {
		t.Errorf("adjusted %+v", adj)
	}
	h.Events.Wait(t, "InventoryAdjusted", func(e *event.Envelope) bool { return e.Key == "TEA" && e.CausationID == shipped.EventID })
	if st := stock(t, h, "TEA"); st.OnHand != 3 || st.Reserved != 0 || st.Available != 3 {
		t.Errorf("TEA %+v", st)
	}

	// Cancelling a shipped order gives nothing back.
	h.Publish("order-service", origin, &event.OrderCancelled{OrderID: "o1", ReasonCode: "customer-cancelled", Reason: "too late"})
	drain(t, h, "o1")
	if n := count(h, "InventoryReleased", "o1"); n != 0 {
		t.Errorf("%d InventoryReleased after shipping", n)
	}
}

func TestDuplicateDeliveryReservesOnce(t *testing.T) {
	h, admin := start(t)
	product(t, h, admin, "MUG", 5)
	env, err := event.New("order-service", origin, order("o1", line("MUG", 2)))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*bus.Message
	for range 2 {
		m, err := eventmsg.Encode(context.Background(), env)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if err := h.Bus.Publish(context.Background(), msgs[0]); err != nil {
		t.Fatal(err)
	}
	if err := h.Bus.Publish(context.Background(), msgs[1]); err != nil {
		t.Fatal(err)
	}
	drain(t, h, "o1")
	if n := count(h, "InventoryReserved", "o1"); n != 1 {
		t.Errorf("%d InventoryReserved, want 1", n)
	}
	if st := stock(t, h, "MUG"); st.Reserved != 2 || st.Version != 2 {
		t.Errorf("MUG %+v", st)
	}
}

func TestSetStock(t *testing.T) {
	h, admin := start(t)
	product(t, h, admin, "MUG", 0)

	var st inventory.Stock
	h.JSON("PUT", "/api/v1/inventory/MUG", admin, map[string]any{"onHand": 7}, http.StatusOK, &st)
	if st != (inventory.Stock{ProductID: "MUG", OnHand: 7, Available: 7, Version: 1}) {
		t.Errorf("set %+v", st)
	}
	e := h.Events.Wait(t, "InventoryAdjusted", apptest.Keyed("MUG"))
	adj := payload[*event.InventoryAdjusted](t, e)
	if adj.Delta != 7 || adj.Reason != "set" || adj.Level.Version != 1 || e.Metadata.UserID != "admin-1" {
		t.Errorf("adjusted %+v by %+v", adj, e.Metadata)
	}

	h.Publish("order-service", origin, order("o1", line("MUG", 5)))
	h.Events.Wait(t, "InventoryReserved", apptest.Keyed("o1"))
	h.JSON("PUT", "/api/v1/inventory/MUG", admin, map[string]any{"onHand": 5}, http.StatusOK, &st)
	if st.OnHand != 5 || st.Reserved != 5 || st.Available != 0 || st.Version != 3 {
		t.Errorf("lowered to the reserved stock: %+v", st)
	}
	// The same value again: nothing changes, nothing is emitted.
	h.JSON("PUT", "/api/v1/inventory/MUG", admin, map[string]any{"onHand": 5}, http.StatusOK, &st)
	if st.Version != 3 {
		t.Errorf("version %d after setting the same value", st.Version)
	}
	h.Events.Wait(t, "InventoryAdjusted", func(e *event.Envelope) bool {
		p, err := e.Payload()
		return err == nil && p.(*event.InventoryAdjusted).Level.Version == 3
	})
	if n := count(h, "InventoryAdjusted", "MUG"); n != 2 {
		t.Errorf("%d InventoryAdjusted, want 2", n)
	}

	customer := h.Token("cust-1", "customer")
	for _, c := range []struct {
		name, method, path, token, body string
		status                          int
		code, msg                       string
	}{
		{"below reserved", "PUT", "/api/v1/inventory/MUG", admin, `{"onHand":4}`, 409, "conflict", "below the 5 units of product MUG reserved"},
		{"unknown product", "PUT", "/api/v1/inventory/GHOST", admin, `{"onHand":4}`, 404, "not_found", "unknown product GHOST"},
		{"unknown product read", "GET", "/api/v1/inventory/GHOST", "", ``, 404, "not_found", "unknown product GHOST"},
		{"anonymous", "PUT", "/api/v1/inventory/MUG", "", `{"onHand":9}`, 401, "unauthorized", "authentication required"},
		{"customer", "PUT", "/api/v1/inventory/MUG", customer, `{"onHand":9}`, 403, "forbidden", "admins only"},
		{"missing onHand", "PUT", "/api/v1/inventory/MUG", admin, `{}`, 400, "invalid", "onHand is required"},
		{"negative", "PUT", "/api/v1/inventory/MUG", admin, `{"onHand":-1}`, 400, "invalid", "onHand must be between 0 and 1000000000"},
		{"too many", "PUT", "/api/v1/inventory/MUG", admin, `{"onHand":1000000001}`, 400, "invalid", "onHand must be between"},
		{"wrong type", "PUT", "/api/v1/inventory/MUG", admin, `{"onHand":"lots"}`, 400, "invalid", `"onHand" must be a number`},
		{"unknown field", "PUT", "/api/v1/inventory/MUG", admin, `{"onHand":9,"reserved":0}`, 400, "invalid", `unknown field "reserved"`},
		{"malformed", "PUT", "/api/v1/inventory/MUG", admin, `{"onHand":`, 400, "invalid", "JSON"},
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
	if st := stock(t, h, "MUG"); st.OnHand != 5 || st.Version != 3 {
		t.Errorf("after rejected requests %+v", st)
	}
}

func TestConcurrentOrdersNeverOversell(t *testing.T) {
	h, admin := start(t)
	product(t, h, admin, "MUG", 10)
	product(t, h, admin, "TEA", 10)
	var orders []event.Payload
	for i := range 25 {
		// Lines in both orders of product ids: the service locks in one order.
		orders = append(orders, order(fmt.Sprintf("o%d", i), line("TEA", 1), line("MUG", 1)))
	}
	h.Publish("order-service", origin, orders...)
	h.Eventually("every order answered", func() bool {
		return len(h.Events.All(func(e *event.Envelope) bool {
			return e.EventType == "InventoryReserved" || e.EventType == "InventoryReservationFailed"
		})) == 25
	})
	if n := len(h.Events.All(func(e *event.Envelope) bool { return e.EventType == "InventoryReserved" })); n != 10 {
		t.Errorf("%d orders reserved, want 10", n)
	}
	for _, id := range []string{"MUG", "TEA"} {
		if st := stock(t, h, id); st.Reserved != 10 || st.Available != 0 || st.Version != 11 {
			t.Errorf("%s %+v", id, st)
		}
	}
}

// An admin who creates a product and sets its stock at once gets the stock
// set: inventory waits for the product's ProductCreated event when the
// catalog has the product, instead of answering 404.
func TestStockSetRightAfterTheProductIsCreated(t *testing.T) {
	h := apptest.Start(t, []service.Def{catalog.Def(), inventory.Def()})
	admin := h.Token("admin-1", "admin")
	for i := range 10 {
		var p struct{ ID string }
		h.JSON("POST", "/api/v1/products", admin, map[string]any{"sku": fmt.Sprintf("NOW-%d", i), "name": "Mug", "priceCents": 500, "currency": "EUR"}, 201, &p)
		var st struct{ OnHand int64 }
		h.JSON("PUT", "/api/v1/inventory/"+p.ID, admin, map[string]any{"onHand": 10}, http.StatusOK, &st)
		if st.OnHand != 10 {
			t.Fatalf("product %d: on hand %d, want 10", i, st.OnHand)
		}
	}
	// A product the catalog does not have is still 404, at once.
	if status, _, body := h.Do("PUT", "/api/v1/inventory/GHOST", admin, map[string]any{"onHand": 1}); status != http.StatusNotFound {
		t.Errorf("unknown product: %d %s", status, body)
	}
}
