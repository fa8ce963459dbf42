package security_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/audit"
	"github.com/eventmart/eventmart/catalog"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/inventory"
	"github.com/eventmart/eventmart/notification"
	"github.com/eventmart/eventmart/order"
	"github.com/eventmart/eventmart/payment"
	"github.com/eventmart/eventmart/shipping"
	"github.com/eventmart/eventmart/user"
)

// An erasure reaches an order: OrderCreated and ShippingCreated seal the
// customer and the address, the order's stream and the shipment keep them
// sealed, so after DELETE /users/{id}/personal-data the order (GET, its
// history, its saga events), the shipment's label, the admin's trail and an
// export read "[erased]", while the audit chain still verifies.
func TestPersonalDataErasureAfterAnOrder(t *testing.T) {
	t.Parallel()
	h := apptest.Start(t, []service.Def{user.Def(), audit.Def(), catalog.Def(), inventory.Def(), order.Def(), payment.Def(), shipping.Def(), notification.Def()})
	const email, name, password = "olga@example.com", "Olga Orderly", "gnus graze on plains"
	const line1, city = "7 Shredder Lane", "Ciphertown"
	personal := []string{email, "Olga", line1, city}
	admin := h.Token("admin-1", "admin")
	var u user.User
	h.JSON("POST", "/api/v1/users", "", map[string]string{"email": email, "name": name, "password": password}, http.StatusCreated, &u)
	var tok user.TokenResponse
	h.JSON("POST", "/api/v1/auth/token", "", map[string]string{"email": email, "password": password}, http.StatusOK, &tok)
	var p struct{ ID string }
	h.JSON("POST", "/api/v1/products", admin, map[string]any{"sku": "ERASE-1", "name": "Mug", "priceCents": 700, "currency": "EUR"}, http.StatusCreated, &p)
	h.Eventually("stock", func() bool {
		status, _, _ := h.Do("PUT", "/api/v1/inventory/"+p.ID, admin, map[string]int{"onHand": 5})
		return status == http.StatusOK
	})
	var o order.Order
	h.JSON("POST", "/api/v1/orders", tok.Token, map[string]any{"items": []map[string]any{{"productId": p.ID, "quantity": 1}},
		"payment":         map[string]string{"card": "4242424242424242"},
		"shippingAddress": map[string]string{"name": name, "line1": line1, "city": city, "postalCode": "12345", "country": "DE"}}, http.StatusAccepted, &o)
	h.Eventually("the order shipped", func() bool {
		var got order.Order
		h.JSON("GET", "/api/v1/orders/"+o.ID, tok.Token, nil, http.StatusOK, &got)
		return got.Status == order.StatusShipped
	})

	owner := tok.Token // the owner's reads, until the erasure ends their session
	reads := map[string]func() string{
		"the order": func() string { _, _, b := h.Do("GET", "/api/v1/orders/"+o.ID, owner, nil); return string(b) },
		"the orders as the admin lists them": func() string {
			_, _, b := h.Do("GET", "/api/v1/orders?userId="+u.ID, admin, nil)
			return string(b)
		},
		"the order's history":     func() string { _, _, b := h.Do("GET", "/api/v1/orders/"+o.ID+"/history", admin, nil); return string(b) },
		"the order's saga events": func() string { _, _, b := h.Do("GET", "/api/v1/orders/"+o.ID+"/events", owner, nil); return string(b) },
		"the shipment's label": func() string {
			_, _, b := h.Do("GET", "/api/v1/shipments?orderId="+o.ID, admin, nil)
			return string(b)
		},
		"the admin's trail (the audit records)": func() string {
			_, _, b := h.Do("GET", "/api/v1/admin/events?entity="+o.ID, admin, nil)
			return string(b)
		},
	}
	h.Eventually("OrderCreated and ShippingCreated in the trail", func() bool {
		b := reads["the admin's trail (the audit records)"]()
		return strings.Contains(b, "OrderCreated") && strings.Contains(b, "ShippingCreated")
	})
	// Before: the owner and the admin read the personal fields opened…
	for what, read := range reads {
		if b := read(); !strings.Contains(b, line1) {
			t.Errorf("%s before the erasure lacks the address: %.600s", what, b)
		}
	}
	// …which every event of the order, and the audit trail, hold sealed.
	for _, e := range h.Events.All(func(e *event.Envelope) bool { return e.Key == o.ID }) {
		for _, s := range personal {
			if strings.Contains(string(e.Data), s) {
				t.Errorf("%s %s carries %q in clear: %s", e.EventType, e.EventVersion, s, e.Data)
			}
		}
	}
	created := h.Events.Wait(t, "OrderCreated", apptest.Keyed(o.ID))
	pl, err := created.Payload()
	if err != nil {
		t.Fatal(err)
	}
	oc := pl.(*event.OrderCreated)
	if oc.Customer.Email.Sealed == nil || oc.ShippingAddress.Sealed == nil || h.Open(oc.Customer.Email) != email {
		t.Errorf("OrderCreated %s: %s", created.EventVersion, created.Data)
	}

	if status, _, b := h.Do("DELETE", "/api/v1/users/"+u.ID+"/personal-data", admin, nil); status != http.StatusNoContent {
		t.Fatalf("erasing: %d %s", status, b)
	}
	h.Events.Wait(t, "PersonalDataErased", apptest.Keyed(u.ID))
	owner = admin

	// After: every read shows the fields erased.
	h.Eventually("the order's customer erased", func() bool {
		var got order.Order
		h.JSON("GET", "/api/v1/orders/"+o.ID, admin, nil, http.StatusOK, &got)
		return got.Customer.Email.Clear == event.Erased
	})
	for what, read := range reads {
		b := read()
		if !strings.Contains(b, event.Erased) {
			t.Errorf("%s after the erasure shows nothing erased: %.600s", what, b)
		}
		for _, s := range personal {
			if strings.Contains(b, s) {
				t.Errorf("%s after the erasure shows %q: %.600s", what, s, b)
			}
		}
	}
	var sh struct {
		Shipments []shipping.Shipment `json:"shipments"`
	}
	h.JSON("GET", "/api/v1/shipments?orderId="+o.ID, admin, nil, http.StatusOK, &sh)
	if len(sh.Shipments) != 1 || sh.Shipments[0].Address != event.PlainAddress(event.ErasedAddress) {
		t.Errorf("the label after erasure: %+v", sh.Shipments)
	}
	var verify struct {
		Records int64 `json:"records"`
		OK      bool  `json:"ok"`
	}
	h.JSON("GET", "/api/v1/admin/audit/verify", admin, nil, http.StatusOK, &verify)
	if !verify.OK || verify.Records < 8 {
		t.Errorf("audit verify after erasure: %+v", verify)
	}
	// An export after the erasure: sealed records only.
	var all strings.Builder
	for _, b := range exported(t, h, event.TopicOrder, event.TopicShipping, event.TopicAudit) {
		all.WriteString(b)
	}
	for _, s := range personal {
		if strings.Contains(all.String(), s) {
			t.Errorf("the export holds %q", s)
		}
	}
	if !strings.Contains(all.String(), o.ID) || !strings.Contains(all.String(), `"ct"`) {
		t.Errorf("the export lacks the order's sealed records")
	}
}
