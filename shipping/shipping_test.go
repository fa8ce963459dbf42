package shipping_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/settings"
	"github.com/eventmart/eventmart/shipping"
)

type fixture struct {
	*apptest.Harness
	t *testing.T
}

func start(t *testing.T, opts ...apptest.Option) *fixture {
	return &fixture{Harness: apptest.Start(t, []service.Def{shipping.Def()}, opts...), t: t}
}

// apply publishes one event as if another service had emitted it and waits
// until the shipping service consumed it, so the next one arrives after it.
func (f *fixture) apply(source string, o event.Origin, p event.Payload) *event.Envelope {
	f.t.Helper()
	e := f.Publish(source, o, p)[0]
	f.Eventually(string(p.EventType())+" consumed", func() bool { return shipping.Processed(f.App.Service("shipping"), e.EventID) })
	return e
}

// publishTwice delivers the very same envelope twice, as an at-least-once bus may.
func (f *fixture) publishTwice(source string, o event.Origin, p event.Payload) {
	f.t.Helper()
	e, err := event.New(source, o, p)
	if err != nil {
		f.t.Fatal(err)
	}
	for range 2 {
		m, err := eventmsg.Encode(context.Background(), e)
		if err != nil {
			f.t.Fatal(err)
		}
		if err := f.Bus.Publish(context.Background(), m); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *fixture) shipments(token, query string) []shipping.Shipment {
	f.t.Helper()
	var out struct{ Shipments []shipping.Shipment }
	f.JSON("GET", "/api/v1/shipments"+query, token, nil, http.StatusOK, &out)
	return out.Shipments
}

// shipmentOf returns the order's shipment as its owner sees it, waiting for
// the given status.
func (f *fixture) shipmentOf(userID, orderID, status string) shipping.Shipment {
	f.t.Helper()
	var got shipping.Shipment
	f.Eventually("shipment "+status, func() bool {
		ss := f.shipments(f.Token(userID, "customer"), "?orderId="+orderID)
		if len(ss) == 1 {
			got = ss[0]
		}
		return got.Status == status
	})
	return got
}

func (f *fixture) count(typ event.Type, orderID string) int {
	return len(f.Events.All(func(e *event.Envelope) bool { return e.EventType == typ && e.Key == orderID }))
}

var address = event.Address{Name: "Ann Smith", Line1: "1 Main St", City: "Springfield", PostalCode: "12345", Country: "US"}

func orderCreated(orderID, userID string) *event.OrderCreated {
	return &event.OrderCreated{
		OrderID: orderID, Customer: event.Customer{UserID: userID, Email: event.Plain(userID + "@example.com"), Name: event.Plain(userID)},
		Lines:      []event.OrderLine{{ProductID: "p1", SKU: "MUG", Name: "Mug", Quantity: 1, UnitPriceCents: 1000}},
		TotalCents: 1000, Currency: "EUR", Payment: event.PaymentMethod{CardToken: "tok_x", CardLast4: "4242"},
		ShippingAddress: event.PlainAddress(address),
	}
}

func paid(orderID, userID string) *event.PaymentProcessed {
	return &event.PaymentProcessed{PaymentID: "pay-" + orderID, OrderID: orderID, UserID: userID, AmountCents: 1000, Currency: "EUR", AuthCode: "AUTH-1"}
}

func cancelled(orderID, userID string) *event.OrderCancelled {
	return &event.OrderCancelled{OrderID: orderID, UserID: userID, ReasonCode: "customer-cancelled", Reason: "The customer cancelled the order."}
}

func shipped(orderID, userID string) *event.OrderShipped {
	return &event.OrderShipped{OrderID: orderID, UserID: userID}
}

func saga(id string) event.Origin {
	return event.FromRequest(id, event.Metadata{UserID: "u1"})
}

// label brings an order to a created label and returns the shipment and
// its ShippingCreated envelope.
func (f *fixture) label(orderID, userID string) (shipping.Shipment, *event.Envelope) {
	f.t.Helper()
	o := saga("corr-" + orderID)
	f.Publish("order-service", o, orderCreated(orderID, userID))
	f.Publish("payment-service", o, paid(orderID, userID))
	e := f.Events.Wait(f.t, "ShippingCreated", apptest.Keyed(orderID))
	return f.shipmentOf(userID, orderID, "created"), e
}

var trackingPattern = regexp.MustCompile(`^EP[0-9]{12}$`)

func TestLabelIsCreatedOnceOrderedAndPaid(t *testing.T) {
	f := start(t)
	o := saga("corr-1")
	created := f.Publish("order-service", o, orderCreated("o1", "u1"))[0]
	payment := f.Publish("payment-service", o, paid("o1", "u1"))[0]
	e := f.Events.Wait(t, "ShippingCreated", apptest.Keyed("o1"))
	pl, _ := e.Payload()
	sc := pl.(*event.ShippingCreated)
	got := f.shipmentOf("u1", "o1", "created")
	if sc.ShipmentID != got.ID || sc.OrderID != "o1" || sc.UserID != "u1" || sc.Carrier != "EventPost" ||
		!trackingPattern.MatchString(sc.TrackingNumber) || sc.Address != event.PlainAddress(address) {
		t.Errorf("ShippingCreated %+v", sc)
	}
	if e.Source != "shipping-service" || e.CorrelationID != "corr-1" || (e.CausationID != created.EventID && e.CausationID != payment.EventID) {
		t.Errorf("envelope %+v", e)
	}
	if got.TrackingNumber != sc.TrackingNumber || got.Carrier != "EventPost" || got.Address != event.PlainAddress(address) || got.UserID != "u1" ||
		got.CreatedAt.IsZero() || got.DispatchedAt != nil || got.DeliveredAt != nil {
		t.Errorf("shipment %+v", got)
	}
	// The JSON leaves out the times not reached yet.
	_, _, b := f.Do("GET", "/api/v1/shipments?orderId=o1", f.Token("u1", "customer"), nil)
	if strings.Contains(string(b), "dispatchedAt") || !strings.Contains(string(b), `"trackingNumber":"EP`) {
		t.Errorf("JSON %s", b)
	}
}

// TestEveryArrivalOrder applies OrderCreated, PaymentProcessed and
// OrderCancelled in every order: a label is created exactly once when the
// first two came before the cancellation (and then voided), never
// otherwise.
func TestEveryArrivalOrder(t *testing.T) {
	f := start(t)
	for _, order := range []string{"CPX", "PCX", "CXP", "PXC", "XCP", "XPC", "CP", "PC"} {
		t.Run(order, func(t *testing.T) {
			orderID := "order-" + order
			o := saga("corr-" + order)
			var cancel *event.Envelope
			for _, step := range order {
				switch step {
				case 'C':
					f.apply("order-service", o, orderCreated(orderID, "u1"))
				case 'P':
					f.apply("payment-service", o, paid(orderID, "u1"))
				case 'X':
					cancel = f.apply("order-service", o, cancelled(orderID, "u1"))
				}
			}
			switch {
			case !strings.Contains(order, "X"):
				got := f.shipmentOf("u1", orderID, "created")
				if !trackingPattern.MatchString(got.TrackingNumber) {
					t.Errorf("shipment %+v", got)
				}
			case order[2] == 'X':
				got := f.shipmentOf("u1", orderID, "cancelled")
				e := f.Events.Wait(t, "ShippingCancelled", apptest.Keyed(orderID))
				pl, _ := e.Payload()
				if p := pl.(*event.ShippingCancelled); p.Reason != "customer-cancelled" || p.ShipmentID != got.ID || e.CausationID != cancel.EventID {
					t.Errorf("ShippingCancelled %+v, causation %s", p, e.CausationID)
				}
				if n := f.count("ShippingCreated", orderID); n != 1 {
					t.Errorf("%d ShippingCreated, want 1", n)
				}
			default: // cancelled before it could be labelled
				got := f.shipmentOf("u1", orderID, "cancelled")
				if got.TrackingNumber != "" || got.Carrier != "" {
					t.Errorf("a label was created: %+v", got)
				}
			}
		})
	}
}

func TestDuplicateDeliveryCreatesOneLabel(t *testing.T) {
	f := start(t)
	o := saga("corr-dup")
	f.publishTwice("order-service", o, orderCreated("o-dup", "u1"))
	f.publishTwice("payment-service", o, paid("o-dup", "u1"))
	// Later events of the same topics and key land after the duplicates in
	// their partitions: once they are consumed, so are the duplicates.
	f.apply("order-service", o, orderCreated("o-dup", "u1"))
	f.apply("payment-service", o, paid("o-dup", "u1"))
	f.shipmentOf("u1", "o-dup", "created")
	// ShippingCancelled follows any ShippingCreated of the order in its
	// partition, so once it is seen every label event has been.
	f.Publish("order-service", o, cancelled("o-dup", "u1"))
	f.Events.Wait(t, "ShippingCancelled", apptest.Keyed("o-dup"))
	if n := f.count("ShippingCreated", "o-dup"); n != 1 {
		t.Errorf("%d ShippingCreated, want 1", n)
	}
}

func TestDispatchAndDeliverByHand(t *testing.T) {
	f := start(t)
	admin, customer := f.Token("admin-1", "admin"), f.Token("u1", "customer")
	sh, created := f.label("o1", "u1")
	dispatch, deliver := "/api/v1/shipments/"+sh.ID+"/dispatch", "/api/v1/shipments/"+sh.ID+"/deliver"

	for _, c := range []struct {
		name, path, token string
		status            int
		code, msg         string
	}{
		{"anonymous", dispatch, "", 401, "unauthorized", "authentication required"},
		{"customer", dispatch, customer, 403, "forbidden", "admins only"},
		{"customer deliver", deliver, customer, 403, "forbidden", "admins only"},
		{"unknown shipment", "/api/v1/shipments/nope/dispatch", admin, 404, "not_found", "shipment nope not found"},
		{"order not shipped", dispatch, admin, 409, "conflict", "has not shipped yet"},
		{"deliver before dispatch", deliver, admin, 409, "conflict", "is created; only a dispatched shipment can be delivered"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, _, b := f.Do("POST", c.path, c.token, nil)
			var eb httpx.ErrorBody
			json.Unmarshal(b, &eb)
			if status != c.status || eb.Error.Code != c.code || !strings.Contains(eb.Error.Message, c.msg) {
				t.Errorf("got %d %s, want %d %s containing %q", status, b, c.status, c.code, c.msg)
			}
		})
	}

	f.apply("order-service", created.Origin(), shipped("o1", "u1"))
	var got shipping.Shipment
	f.JSON("POST", dispatch, admin, nil, http.StatusOK, &got)
	if got.Status != "dispatched" || got.DispatchedAt == nil || got.DeliveredAt != nil {
		t.Errorf("dispatched %+v", got)
	}
	e := f.Events.Wait(t, "ShippingDispatched", apptest.Keyed("o1"))
	pl, _ := e.Payload()
	if p := pl.(*event.ShippingDispatched); p.ShipmentID != sh.ID || p.TrackingNumber != sh.TrackingNumber || e.Metadata.UserID != "admin-1" {
		t.Errorf("ShippingDispatched %+v, envelope %+v", p, e)
	}
	status, _, b := f.Do("POST", dispatch, admin, nil)
	if status != 409 || !strings.Contains(string(b), "is dispatched; only a created shipment can be dispatched") {
		t.Errorf("second dispatch: %d %s", status, b)
	}

	f.JSON("POST", deliver, admin, nil, http.StatusOK, &got)
	if got.Status != "delivered" || got.DeliveredAt == nil || got.DispatchedAt == nil {
		t.Errorf("delivered %+v", got)
	}
	f.Events.Wait(t, "ShippingDelivered", apptest.Keyed("o1"))
	status, _, b = f.Do("POST", deliver, admin, nil)
	if status != 409 || !strings.Contains(string(b), "is delivered") {
		t.Errorf("second deliver: %d %s", status, b)
	}

	// Too late to cancel: the parcel stays delivered.
	f.apply("order-service", created.Origin(), cancelled("o1", "u1"))
	if got := f.shipmentOf("u1", "o1", "delivered"); got.DeliveredAt == nil {
		t.Errorf("shipment %+v", got)
	}
}

func TestCancelledLabelCannotBeDispatched(t *testing.T) {
	f := start(t)
	sh, created := f.label("o1", "u1")
	f.apply("order-service", created.Origin(), shipped("o1", "u1"))
	f.apply("order-service", created.Origin(), cancelled("o1", "u1"))
	f.Events.Wait(t, "ShippingCancelled", apptest.Keyed("o1"))
	status, _, b := f.Do("POST", "/api/v1/shipments/"+sh.ID+"/dispatch", f.Token("admin-1", "admin"), nil)
	if status != 409 || !strings.Contains(string(b), "is cancelled") {
		t.Errorf("dispatch of a cancelled shipment: %d %s", status, b)
	}
}

func TestSimulatedCarrier(t *testing.T) {
	f := start(t, apptest.Settings(map[string]string{
		"EVENTMART_CARRIER_DISPATCH_AFTER": "1ms",
		"EVENTMART_CARRIER_TICK":           "5ms",
	}))
	_, waiting := f.label("o-waiting", "u1") // labelled, but the order never ships
	sh, created := f.label("o-go", "u1")
	shippedEnv := f.apply("order-service", created.Origin(), shipped("o-go", "u1"))

	dispatched := f.Events.Wait(t, "ShippingDispatched", apptest.Keyed("o-go"))
	delivered := f.Events.Wait(t, "ShippingDelivered", apptest.Keyed("o-go"))
	if dispatched.CorrelationID != created.CorrelationID || dispatched.CausationID != created.EventID || dispatched.Metadata.UserID != "" {
		t.Errorf("ShippingDispatched envelope %+v (ShippingCreated %s, OrderShipped %s)", dispatched, created.EventID, shippedEnv.EventID)
	}
	if delivered.CorrelationID != created.CorrelationID || delivered.CausationID != dispatched.EventID {
		t.Errorf("ShippingDelivered envelope %+v", delivered)
	}
	pl, _ := delivered.Payload()
	if p := pl.(*event.ShippingDelivered); p.ShipmentID != sh.ID || p.TrackingNumber != sh.TrackingNumber {
		t.Errorf("ShippingDelivered %+v", p)
	}
	got := f.shipmentOf("u1", "o-go", "delivered")
	if got.DispatchedAt == nil || got.DeliveredAt == nil || got.DeliveredAt.Before(*got.DispatchedAt) {
		t.Errorf("shipment %+v", got)
	}
	// The carrier passed the other label many times without taking it.
	if n := f.count("ShippingDispatched", waiting.Key); n != 0 {
		t.Errorf("an order that never shipped was dispatched")
	}
	f.shipmentOf("u1", "o-waiting", "created")
}

func TestBadCarrierSettings(t *testing.T) {
	for _, m := range []map[string]string{
		{"EVENTMART_CARRIER_DISPATCH_AFTER": "soon"},
		{"EVENTMART_CARRIER_DISPATCH_AFTER": "-1s"},
		{"EVENTMART_CARRIER_DISPATCH_AFTER": "1s", "EVENTMART_CARRIER_DELIVER_AFTER": "later"},
		{"EVENTMART_CARRIER_TICK": "0s"},
	} {
		// Checked at start: parsing the settings, or New.
		vals, err := settings.Parse(func(k string) string { return m[k] })
		if err == nil {
			_, err = shipping.New(service.Deps{Settings: vals})
		}
		if err == nil || !strings.Contains(err.Error(), "EVENTMART_CARRIER_") {
			t.Errorf("%v: error %v", m, err)
		}
	}
}

func TestListShipmentsAuthorization(t *testing.T) {
	f := start(t)
	f.label("o1", "u1")
	f.label("o2", "u1")
	owner, other, admin := f.Token("u1", "customer"), f.Token("u2", "customer"), f.Token("admin-1", "admin")
	if ss := f.shipments(owner, "?orderId=o1"); len(ss) != 1 || ss[0].OrderID != "o1" {
		t.Errorf("owner sees %+v", ss)
	}
	if ss := f.shipments(owner, ""); len(ss) != 2 {
		t.Errorf("owner's list %+v", ss)
	}
	if ss := f.shipments(other, "?orderId=o1"); len(ss) != 0 {
		t.Errorf("another customer sees %+v", ss)
	}
	if ss := f.shipments(other, ""); len(ss) != 0 {
		t.Errorf("another customer's list %+v", ss)
	}
	if ss := f.shipments(admin, "?orderId=o1"); len(ss) != 1 {
		t.Errorf("admin sees %+v", ss)
	}
	if ss := f.shipments(owner, "?limit=1&offset=1"); len(ss) != 1 {
		t.Errorf("limit=1&offset=1 gives %d shipments", len(ss))
	}
	for _, c := range []struct {
		path, token string
		status      int
		msg         string
	}{
		{"/api/v1/shipments?orderId=o1", "", 401, "authentication required"},
		{"/api/v1/shipments?limit=501", owner, 400, "limit"},
		{"/api/v1/shipments?offset=-1", owner, 400, "offset"},
	} {
		status, _, b := f.Do("GET", c.path, c.token, nil)
		if status != c.status || !strings.Contains(string(b), c.msg) {
			t.Errorf("GET %s: %d %s", c.path, status, b)
		}
	}
}
