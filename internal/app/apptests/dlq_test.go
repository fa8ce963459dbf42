// Package apptests tests the runtime with every service in one process.
package apptests

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/eventmart/eventmart/cart"
	"github.com/eventmart/eventmart/catalog"
	"github.com/eventmart/eventmart/internal/app"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/deadletter"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/inventory"
	"github.com/eventmart/eventmart/notification"
	"github.com/eventmart/eventmart/order"
	"github.com/eventmart/eventmart/payment"
	"github.com/eventmart/eventmart/shipping"
	"github.com/eventmart/eventmart/user"
)

func all() []service.Def {
	return []service.Def{user.Def(), catalog.Def(), inventory.Def(), cart.Def(), order.Def(), payment.Def(), shipping.Def(), notification.Def()}
}

// settings can change while the app runs (guarded for the race detector).
type settings struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *settings) get(k string) string { s.mu.Lock(); defer s.mu.Unlock(); return s.m[k] }
func (s *settings) set(k, v string)     { s.mu.Lock(); defer s.mu.Unlock(); s.m[k] = v }

// TestBrokenHandlerDeadLettersThenRedriveCompletesOnce is the issue's
// walk-through: break shipping, place orders, see them in the DLQ, fix,
// redrive, and every order completes once.
func TestBrokenHandlerDeadLettersThenRedriveCompletesOnce(t *testing.T) {
	env := apptest.Settings(map[string]string{
		"EVENTMART_FAIL_EVENTS": "shipping:PaymentProcessed", "EVENTMART_RETRY_DELAYS": "20ms", "EVENTMART_RETRY_ATTEMPTS": "5",
	})
	h := apptest.Start(t, all(), env)
	admin := h.Token("admin-1", "admin")
	// A registered customer: notification needs the recipient's user event.
	h.JSON("POST", "/api/v1/users", "", map[string]string{"email": "c@example.com", "password": "long enough password", "name": "C"}, 201, nil)
	var tok struct{ Token string }
	h.JSON("POST", "/api/v1/auth/token", "", map[string]string{"email": "c@example.com", "password": "long enough password"}, 200, &tok)
	customer := tok.Token
	var p struct{ ID string }
	h.JSON("POST", "/api/v1/products", admin, map[string]any{"sku": "DLQ", "name": "Mug", "priceCents": 500, "currency": "EUR"}, 201, &p)
	h.Eventually("stock", func() bool {
		status, _, _ := h.Do("PUT", "/api/v1/inventory/"+p.ID, admin, map[string]int{"onHand": 10})
		return status == 200
	})
	body := map[string]any{"items": []map[string]any{{"productId": p.ID, "quantity": 1}}, "payment": map[string]string{"card": "4242424242424242"},
		"shippingAddress": map[string]string{"name": "A", "line1": "l", "city": "c", "postalCode": "1", "country": "DE"}}
	var ids []string
	for i := 0; i < 3; i++ {
		var o struct{ ID string }
		h.JSON("POST", "/api/v1/orders", customer, body, 202, &o)
		ids = append(ids, o.ID)
	}
	var list struct{ DeadLetters []deadletter.DeadLetter }
	h.Eventually("three dead letters in shipping", func() bool {
		h.JSON("GET", "/api/v1/admin/dlq/shipping?status=dead", admin, nil, 200, &list)
		return len(list.DeadLetters) == 3
	})
	for _, d := range list.DeadLetters {
		if d.EventType != "PaymentProcessed" || d.Group != "shipping-service" || d.Attempts != 5 || d.Permanent || d.Topic != "payment-events" {
			t.Errorf("dead letter %+v", d)
		}
	}
	for _, id := range ids {
		var o struct{ Status string }
		h.JSON("GET", "/api/v1/orders/"+id, customer, nil, 200, &o)
		if o.Status != "CONFIRMED" {
			t.Errorf("order %s is %s while shipping is broken, want CONFIRMED", id, o.Status)
		}
	}
	if status, _, _ := h.Do("GET", "/api/v1/admin/dlq/shipping", customer, nil); status != http.StatusForbidden {
		t.Errorf("customer read the DLQ: %d", status)
	}

	h.App.StopInjectingFailures() // the fix is deployed
	var one deadletter.DeadLetter
	h.JSON("GET", fmt.Sprintf("/api/v1/admin/dlq/shipping/%d", list.DeadLetters[0].ID), admin, nil, 200, &one)
	var r struct{ Redriven int }
	h.JSON("POST", "/api/v1/admin/dlq/shipping/redrive", admin, nil, 200, &r)
	if r.Redriven != 3 {
		t.Fatalf("redrove %d, want 3", r.Redriven)
	}
	for _, id := range ids {
		h.Eventually("order "+id+" shipped", func() bool {
			var o struct{ Status string }
			h.JSON("GET", "/api/v1/orders/"+id, customer, nil, 200, &o)
			return o.Status == "SHIPPED"
		})
		var sh struct{ Shipments []any }
		h.JSON("GET", "/api/v1/shipments?orderId="+id, customer, nil, 200, &sh)
		if len(sh.Shipments) != 1 {
			t.Errorf("order %s has %d shipments", id, len(sh.Shipments))
		}
	}
	h.JSON("POST", "/api/v1/admin/dlq/shipping/redrive", admin, nil, 200, &r)
	if r.Redriven != 0 {
		t.Errorf("second redrive sent %d", r.Redriven)
	}
	if status, _, _ := h.Do("POST", fmt.Sprintf("/api/v1/admin/dlq/shipping/%d/discard", one.ID), admin, nil); status != http.StatusConflict {
		t.Errorf("discarding a redriven letter: %d, want 409", status)
	}
	if status, _, _ := h.Do("GET", "/api/v1/admin/dlq/warehouse", admin, nil); status != http.StatusNotFound {
		t.Errorf("unknown service: %d, want 404", status)
	}
}

// TestReplayAppliesWhatTheGroupMissed breaks the catalog's handling of
// stock events until they are dead-lettered, fixes it, and replays
// inventory-events to the catalog's group: availability is rebuilt, and a
// second replay changes nothing.
func TestReplayAppliesWhatTheGroupMissed(t *testing.T) {
	env := apptest.Settings(map[string]string{
		"EVENTMART_FAIL_EVENTS": "catalog:InventoryAdjusted", "EVENTMART_RETRY_DELAYS": "10ms", "EVENTMART_RETRY_ATTEMPTS": "4",
	})
	h := apptest.Start(t, []service.Def{catalog.Def(), inventory.Def()}, env)
	admin := h.Token("admin-1", "admin")
	var p struct {
		ID           string
		Availability struct{ Available int64 }
	}
	h.JSON("POST", "/api/v1/products", admin, map[string]any{"sku": "RPL", "name": "Tea", "priceCents": 300, "currency": "EUR"}, 201, &p)
	h.Eventually("stock set", func() bool {
		status, _, _ := h.Do("PUT", "/api/v1/inventory/"+p.ID, admin, map[string]int{"onHand": 7})
		return status == 200
	})
	var list struct{ DeadLetters []deadletter.DeadLetter }
	h.Eventually("the stock event dead-lettered", func() bool {
		h.JSON("GET", "/api/v1/admin/dlq/catalog", admin, nil, 200, &list)
		return len(list.DeadLetters) == 1
	})
	h.App.StopInjectingFailures()
	var res app.ReplayResult
	h.JSON("POST", "/api/v1/admin/replay/catalog", admin, map[string]any{"topic": "inventory-events", "key": p.ID}, 200, &res)
	if res.Redelivered != 1 || res.Read < 1 {
		t.Fatalf("replay %+v, want one record redelivered", res)
	}
	h.JSON("GET", "/api/v1/products/"+p.ID, "", nil, 200, &p)
	if p.Availability.Available != 7 {
		t.Fatalf("availability %d after replay, want 7", p.Availability.Available)
	}
	h.JSON("POST", "/api/v1/admin/replay/catalog", admin, map[string]any{"topic": "inventory-events", "fromOffset": 0}, 200, &res)
	h.JSON("GET", "/api/v1/products/"+p.ID, "", nil, 200, &p)
	if p.Availability.Available != 7 {
		t.Fatalf("second replay changed availability to %d", p.Availability.Available)
	}
	for _, bad := range []map[string]any{{"topic": "payment-events"}, {}, {"topic": "inventory-events", "fromOffset": 0, "fromTime": "2026-01-01T00:00:00Z"}} {
		if status, _, _ := h.Do("POST", "/api/v1/admin/replay/catalog", admin, bad); status != 400 {
			t.Errorf("replay %v: %d, want 400", bad, status)
		}
	}
	if status, _, _ := h.Do("POST", "/api/v1/admin/replay/catalog", h.Token("c", "customer"), map[string]any{"topic": "inventory-events"}); status != 403 {
		t.Errorf("customer replay: %d, want 403", status)
	}
}

// TestBadFailEventsStopsTheStart: EVENTMART_FAIL_EVENTS is parsed once, at
// start, and a bad value is an error naming the setting.
func TestBadFailEventsStopsTheStart(t *testing.T) {
	for _, bad := range []string{"shipping", "shipping:NoSuchEvent"} {
		settings := map[string]string{"EVENTMART_FAIL_EVENTS": bad}
		a, err := app.Start(context.Background(), app.Config{Settings: func(k string) string { return settings[k] }})
		if err == nil {
			a.Close()
			t.Fatalf("%q: started, want an error", bad)
		}
		if !strings.Contains(err.Error(), "EVENTMART_FAIL_EVENTS") || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: %v, want the setting and its value named", bad, err)
		}
	}
}

// lockedBuffer is a log destination safe for the services' goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Failure injection says so in the log when the services start.
func TestFailureInjectionIsLogged(t *testing.T) {
	var logs lockedBuffer
	apptest.Start(t, []service.Def{catalog.Def()},
		apptest.Settings(map[string]string{"EVENTMART_FAIL_EVENTS": "catalog:InventoryAdjusted"}),
		func(c *app.Config) { c.Log = slog.New(slog.NewJSONHandler(&logs, nil)) })
	var line struct{ Level, Msg, Handlers string }
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "failure injection") {
			json.Unmarshal([]byte(l), &line)
		}
	}
	if line.Level != "WARN" || line.Handlers != "catalog:InventoryAdjusted" {
		t.Errorf("no warning naming the injected failures; log:\n%s", logs.String())
	}
}
