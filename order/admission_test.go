package order_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/order"
)

// With EVENTMART_ORDER_MAX_PENDING orders PENDING, a new order is refused
// with 503, Retry-After and the JSON error body, and nothing of it is
// stored or sent anywhere; once the PENDING orders are decided, the same
// request (same Idempotency-Key) is accepted.
func TestAdmissionShedsNewOrdersWhileTooManyArePending(t *testing.T) {
	t.Parallel()
	h, f := start(t, apptest.Settings(map[string]string{"EVENTMART_ORDER_MAX_PENDING": "2"}))
	tok := h.Token("cust-1", "customer")
	pending := []*saga{place(t, h, tok), place(t, h, tok)}
	orders := func() int {
		var page struct{ Orders []order.Order }
		h.JSON("GET", orderPath+"?limit=100", tok, nil, http.StatusOK, &page)
		return len(page.Orders)
	}

	// Orders placed before the next sample of the PENDING count are
	// accepted (the limit is a sampled gauge); then they are shed.
	var key string
	var hdr http.Header
	var b []byte
	var before, vaultedBefore int
	h.Eventually("a new order shed", func() bool {
		before, vaultedBefore = orders(), len(f.vaultedCards())
		key = fmt.Sprintf("shed-%d", before)
		var status int
		status, hdr, b = do(t, h, "POST", orderPath, tok, body(item("p-mug", 1)), map[string]string{"Idempotency-Key": key})
		switch status {
		case http.StatusAccepted:
			var o order.Order
			json.Unmarshal(b, &o)
			pending = append(pending, &saga{t: t, h: h, token: tok, id: o.ID, created: h.Events.Wait(t, "OrderCreated", apptest.Keyed(o.ID))})
			return false
		case http.StatusServiceUnavailable:
			return true
		}
		t.Fatalf("POST: %d %s", status, b)
		return false
	})
	if eb := errorOf(b); hdr.Get("Retry-After") != "1" || eb.Error.Code != "unavailable" || eb.Error.Message == "" {
		t.Errorf("shed answer: Retry-After %q, body %s", hdr.Get("Retry-After"), b)
	}
	if n, v := orders(), len(f.vaultedCards()); n != before || v != vaultedBefore {
		t.Errorf("a shed order left traces: %d orders (before %d), %d cards vaulted (before %d)", n, before, v, vaultedBefore)
	}

	// The pipeline decides the PENDING orders: new orders are accepted
	// again, the shed one with its key among them.
	for _, s := range pending {
		s.paid(s.created)
		s.waitStatus("CONFIRMED")
	}
	var placed order.Order
	h.Eventually("the shed order accepted once the PENDING orders are decided", func() bool {
		status, _, b := do(t, h, "POST", orderPath, tok, body(item("p-mug", 1)), map[string]string{"Idempotency-Key": key})
		json.Unmarshal(b, &placed)
		return status == http.StatusAccepted
	})
	var again order.Order
	status, _, b := do(t, h, "POST", orderPath, tok, body(item("p-mug", 1)), map[string]string{"Idempotency-Key": key})
	json.Unmarshal(b, &again)
	if status != http.StatusAccepted || again.ID != placed.ID || orders() != before+1 {
		t.Errorf("the key of the accepted order: %d %s (first %s), %d orders", status, b, placed.ID, orders())
	}
}
