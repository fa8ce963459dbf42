package e2e

import (
	"net/http"
	"slices"
	"testing"
)

// API shapes, as a client would declare them.
type product struct {
	ID           string `json:"id"`
	Availability struct {
		OnHand, Reserved, Available int64
	} `json:"availability"`
}

type stock struct {
	OnHand, Reserved, Available int64
}

type order struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	ReasonCode string `json:"reasonCode"`
	Reason     string `json:"reason"`
	TotalCents int64  `json:"totalCents"`
	Customer   struct {
		Email, Name string
	} `json:"customer"`
}

type envelope struct {
	EventID       string `json:"eventId"`
	EventType     string `json:"eventType"`
	CorrelationID string `json:"correlationId"`
	CausationID   string `json:"causationId"`
}

type payment struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

var address = map[string]any{"name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postalCode": "SW1Y 4JH", "country": "GB"}

const (
	cardOK       = "4242424242424242"
	cardDeclined = "4000000000000002"
)

// shop holds what scenarios share: an admin token.
type shop struct {
	*system
	admin string
}

func newShop(s *system) *shop {
	var tok struct{ Token string }
	s.must("POST", "/api/v1/auth/token", "", map[string]string{"email": adminEmail, "password": adminPassword}, 200, &tok)
	return &shop{system: s, admin: tok.Token}
}

// customer registers a new customer and returns its token and id.
func (s *shop) customer(name string) (string, string) {
	email := unique(name) + "@example.com"
	var u struct{ ID string }
	s.must("POST", "/api/v1/users", "", map[string]string{"email": email, "password": "long enough password", "name": name}, 201, &u)
	var tok struct{ Token string }
	s.must("POST", "/api/v1/auth/token", "", map[string]string{"email": email, "password": "long enough password"}, 200, &tok)
	return tok.Token, u.ID
}

// product creates a product with stock and waits until the catalog shows it.
func (s *shop) product(priceCents, onHand int64) string {
	var p product
	s.must("POST", "/api/v1/products", s.admin, map[string]any{"sku": unique("SKU"), "name": "Widget", "priceCents": priceCents, "currency": "EUR"}, 201, &p)
	// Inventory learns of the product from ProductCreated.
	s.eventually("inventory knows the product", func() bool {
		status, _, _ := s.call("PUT", "/api/v1/inventory/"+p.ID, s.admin, map[string]int64{"onHand": onHand})
		return status == 200
	})
	s.eventually("catalog availability", func() bool { return s.availability(p.ID).Available == onHand })
	return p.ID
}

func (s *shop) availability(productID string) stock {
	var p product
	s.must("GET", "/api/v1/products/"+productID, "", nil, 200, &p)
	return stock{p.Availability.OnHand, p.Availability.Reserved, p.Availability.Available}
}

func (s *shop) stock(productID string) stock {
	var st stock
	s.must("GET", "/api/v1/inventory/"+productID, s.admin, nil, 200, &st)
	return st
}

// order places an order and returns its id and the request's correlation id.
func (s *shop) order(token string, lines []map[string]any, card string) (string, string) {
	s.t.Helper()
	var o order
	hdr := s.must("POST", "/api/v1/orders", token, map[string]any{"items": lines, "payment": map[string]string{"card": card}, "shippingAddress": address}, http.StatusAccepted, &o)
	if o.Status != "PENDING" || hdr.Get("Location") != "/api/v1/orders/"+o.ID {
		s.t.Fatalf("POST /orders answered %+v, Location %q", o, hdr.Get("Location"))
	}
	return o.ID, hdr.Get("X-Correlation-ID")
}

func line(productID string, qty int) []map[string]any {
	return []map[string]any{{"productId": productID, "quantity": qty}}
}

// final waits until the order is SHIPPED or CANCELLED and returns it.
func (s *shop) final(token, id string) order {
	var o order
	s.eventually("order "+id+" to finish", func() bool {
		s.must("GET", "/api/v1/orders/"+id, token, nil, 200, &o)
		return o.Status == "SHIPPED" || o.Status == "CANCELLED"
	})
	return o
}

func (s *shop) payments(token, orderID string) []payment {
	var r struct{ Payments []payment }
	s.must("GET", "/api/v1/payments?orderId="+orderID, token, nil, 200, &r)
	return r.Payments
}

func (s *shop) sagaEvents(token, orderID string) []envelope {
	var r struct{ Events []envelope }
	s.must("GET", "/api/v1/orders/"+orderID+"/events", token, nil, 200, &r)
	return r.Events
}

func types(es []envelope) []string {
	var ts []string
	for _, e := range es {
		ts = append(ts, e.EventType)
	}
	return ts
}

// scenarios run in both modes.
var scenarios = []struct {
	name string
	run  func(*testing.T, *shop)
}{
	{"HappyPath", happyPath},
	{"DeclinedCard", declinedCard},
	{"OutOfStock", outOfStock},
	{"CancelBeforeShipping", cancelBeforeShipping},
	{"CartCheckout", cartCheckout},
	{"UserUpdatePropagates", userUpdate},
	{"AvailabilityPropagates", availability},
	{"CustomersSeeOnlyTheirOwn", isolation},
}

func runScenarios(t *testing.T, s *shop) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			sub := &shop{system: &system{t: t, base: s.base, procs: s.procs, mode: s.mode}, admin: s.admin}
			sc.run(t, sub)
		})
	}
}

func happyPath(t *testing.T, s *shop) {
	tok, _ := s.customer("happy")
	pid := s.product(1250, 10)
	id, corr := s.order(tok, line(pid, 2), cardOK)
	o := s.final(tok, id)
	if o.Status != "SHIPPED" || o.TotalCents != 2500 {
		t.Fatalf("order %+v, want SHIPPED with total 2500", o)
	}
	s.eventually("stock to leave the shelf", func() bool { return s.stock(pid) == stock{8, 0, 8} })
	if ps := s.payments(tok, id); len(ps) != 1 || ps[0].Status != "processed" {
		t.Errorf("payments %+v, want one processed", ps)
	}
	var sh struct{ Shipments []struct{ Status string } }
	s.must("GET", "/api/v1/shipments?orderId="+id, tok, nil, 200, &sh)
	if len(sh.Shipments) != 1 {
		t.Errorf("shipments %+v, want one", sh.Shipments)
	}
	var ns struct {
		Notifications []struct{ Template, SubjectID string }
	}
	// The e-mail follows OrderShipped (docs/saga.md, "Notifications").
	s.eventually("the order-shipped notification", func() bool {
		s.must("GET", "/api/v1/notifications", tok, nil, 200, &ns)
		return slices.ContainsFunc(ns.Notifications, func(n struct{ Template, SubjectID string }) bool {
			return n.Template == "order-shipped" && n.SubjectID == id
		})
	})

	var es []envelope
	s.eventually("the saga's events", func() bool {
		es = s.sagaEvents(tok, id)
		return slices.Contains(types(es), "OrderShipped") && slices.Contains(types(es), "NotificationSent")
	})
	for _, want := range []string{"OrderCreated", "InventoryReserved", "PaymentInitiated", "PaymentProcessed", "OrderConfirmed", "ShippingCreated", "OrderShipped", "NotificationSent"} {
		if !slices.Contains(types(es), want) {
			t.Errorf("saga lacks %s: %v", want, types(es))
		}
	}
	seen := map[string]bool{corr: true}
	for _, e := range es {
		if e.CorrelationID != corr {
			t.Errorf("%s has correlationId %s, want the request's %s", e.EventType, e.CorrelationID, corr)
		}
		if !seen[e.CausationID] {
			t.Errorf("%s caused by %s, which is not an earlier event of the saga", e.EventType, e.CausationID)
		}
		seen[e.EventID] = true
	}
}

func declinedCard(t *testing.T, s *shop) {
	tok, _ := s.customer("declined")
	pid := s.product(990, 5)
	id, _ := s.order(tok, line(pid, 3), cardDeclined)
	o := s.final(tok, id)
	if o.Status != "CANCELLED" || o.ReasonCode != "payment-failed" || o.Reason == "" {
		t.Fatalf("order %+v, want CANCELLED payment-failed with a reason", o)
	}
	s.eventually("stock restored", func() bool { return s.stock(pid) == stock{5, 0, 5} })
	s.eventually("catalog availability restored", func() bool { return s.availability(pid).Available == 5 })
	if ps := s.payments(tok, id); len(ps) != 1 || ps[0].Status != "failed" {
		t.Errorf("payments %+v, want one failed", ps)
	}
}

func outOfStock(t *testing.T, s *shop) {
	tok, _ := s.customer("oos")
	pid := s.product(100, 1)
	id, _ := s.order(tok, line(pid, 2), cardOK)
	o := s.final(tok, id)
	if o.Status != "CANCELLED" || o.ReasonCode != "out-of-stock" {
		t.Fatalf("order %+v, want CANCELLED out-of-stock", o)
	}
	if st := s.stock(pid); st != (stock{1, 0, 1}) {
		t.Errorf("stock %+v after a failed reservation", st)
	}
	if ps := s.payments(tok, id); len(ps) > 0 && ps[0].Status == "processed" {
		t.Errorf("charged for an out-of-stock order: %+v", ps)
	}
}

// cancelBeforeShipping cancels right after ordering; whether the card was
// charged by then is a race, so both outcomes must be consistent.
func cancelBeforeShipping(t *testing.T, s *shop) {
	tok, _ := s.customer("cancel")
	pid := s.product(700, 4)
	id, _ := s.order(tok, line(pid, 1), cardOK)
	status, _, body := s.call("POST", "/api/v1/orders/"+id+"/cancel", tok, nil)
	if status == http.StatusConflict {
		t.Skipf("the saga finished before the cancel arrived (%s); nothing to compensate", body)
	}
	if status != 200 {
		t.Fatalf("cancel: %d %s", status, body)
	}
	o := s.final(tok, id)
	if o.Status != "CANCELLED" || o.ReasonCode != "customer-cancelled" {
		t.Fatalf("order %+v", o)
	}
	s.eventually("stock released", func() bool { return s.stock(pid) == stock{4, 0, 4} })
	s.eventually("payment settled", func() bool {
		ps := s.payments(tok, id)
		return len(ps) == 0 || ps[0].Status == "refunded" || ps[0].Status == "voided"
	})
	if st, _, _ := s.call("POST", "/api/v1/orders/"+id+"/cancel", tok, nil); st != http.StatusConflict {
		t.Errorf("second cancel answered %d, want 409", st)
	}
}

func cartCheckout(t *testing.T, s *shop) {
	tok, _ := s.customer("cart")
	a, b := s.product(300, 10), s.product(450, 10)
	s.must("POST", "/api/v1/cart/items", tok, map[string]any{"productId": a, "quantity": 2}, 200, nil)
	s.must("POST", "/api/v1/cart/items", tok, map[string]any{"productId": b, "quantity": 1}, 200, nil)
	var o order
	s.must("POST", "/api/v1/orders", tok, map[string]any{"fromCart": true, "payment": map[string]string{"card": cardOK}, "shippingAddress": address}, 202, &o)
	o = s.final(tok, o.ID)
	if o.Status != "SHIPPED" || o.TotalCents != 1050 {
		t.Fatalf("order %+v, want SHIPPED 1050", o)
	}
	s.eventually("cart emptied by checkout", func() bool {
		var c struct{ Items []any }
		s.must("GET", "/api/v1/cart", tok, nil, 200, &c)
		return len(c.Items) == 0
	})
}

func userUpdate(t *testing.T, s *shop) {
	tok, _ := s.customer("rename")
	pid := s.product(100, 5)
	id, _ := s.order(tok, line(pid, 1), cardOK)
	s.final(tok, id)
	s.must("PATCH", "/api/v1/users/me", tok, map[string]string{"name": "Renamed Customer"}, 200, nil)
	s.eventually("order history to carry the new name", func() bool {
		var o order
		s.must("GET", "/api/v1/orders/"+id, tok, nil, 200, &o)
		return o.Customer.Name == "Renamed Customer"
	})
	s.eventually("a profile-updated notification", func() bool {
		var ns struct{ Notifications []struct{ Template string } }
		s.must("GET", "/api/v1/notifications", tok, nil, 200, &ns)
		return slices.ContainsFunc(ns.Notifications, func(n struct{ Template string }) bool { return n.Template == "profile-updated" })
	})
}

func availability(t *testing.T, s *shop) {
	pid := s.product(100, 3)
	s.must("PUT", "/api/v1/inventory/"+pid, s.admin, map[string]int64{"onHand": 7}, 200, nil)
	s.eventually("catalog shows 7", func() bool { return s.availability(pid) == stock{7, 0, 7} })
	tok, _ := s.customer("avail")
	id, _ := s.order(tok, line(pid, 2), cardOK)
	s.final(tok, id)
	s.eventually("catalog shows 5 after shipping", func() bool { return s.availability(pid) == stock{5, 0, 5} })
}

func isolation(t *testing.T, s *shop) {
	alice, _ := s.customer("alice")
	bob, _ := s.customer("bob")
	pid := s.product(100, 5)
	id, _ := s.order(alice, line(pid, 1), cardOK)
	for _, path := range []string{"/api/v1/orders/" + id, "/api/v1/orders/" + id + "/events"} {
		if st, _, b := s.call("GET", path, bob, nil); st != 404 {
			t.Errorf("bob GET %s: %d %s, want 404", path, st, b)
		}
	}
	if st, _, _ := s.call("POST", "/api/v1/orders/"+id+"/cancel", bob, nil); st != 404 {
		t.Errorf("bob cancelled alice's order: %d", st)
	}
	if ps := s.payments(bob, id); len(ps) != 0 {
		t.Errorf("bob sees alice's payments: %+v", ps)
	}
	if st, _, _ := s.call("GET", "/api/v1/orders/"+id, "", nil); st != 401 {
		t.Errorf("anonymous read: %d, want 401", st)
	}
	s.must("GET", "/api/v1/orders/"+id, s.admin, nil, 200, nil)
	if st, _, _ := s.call("POST", "/api/v1/products", alice, map[string]any{"sku": "X", "name": "x", "priceCents": 1, "currency": "EUR"}); st != 403 {
		t.Errorf("customer created a product: %d", st)
	}
}
