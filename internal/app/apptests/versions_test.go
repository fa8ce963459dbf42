package apptests

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/apptest"
)

// seen is what a test consumer of order-events observed per order.
type seen struct {
	mu sync.Mutex
	// legacy: a consumer that knows only OrderCreated v1 (as an old binary
	// would): whether it could read the order's record.
	legacy map[string]bool
	// current: the placedAt a consumer of the current version got, after
	// upcasting; and the record's version.
	placedAt map[string]time.Time
	version  map[string]string
	stamp    map[string]time.Time
}

// subscribe runs two extra consumer groups on order-events: one that reads
// OrderCreated only as v1 (its schema and payload type), one that reads it
// through event.Envelope.Payload (v1 is upcast to v2).
func (s *seen) subscribe(t *testing.T, b bus.Bus) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	run := func(group string, h bus.Handler) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Subscribe(ctx, group, []string{string(event.TopicOrder)}, h); err != nil && ctx.Err() == nil {
				t.Errorf("%s: %v", group, err)
			}
		}()
	}
	run("legacy-v1-consumer", func(ctx context.Context, batch []*bus.Message) error {
		for _, m := range batch {
			if m.Header(eventmsg.HeaderEventType) != "OrderCreated" {
				continue
			}
			e, err := eventmsg.Decode(m)
			if err != nil {
				return err
			}
			var v1 event.OrderCreatedV1
			ok := e.EventVersion == "v1" && event.ValidatePayload("OrderCreated", "v1", e.Data) == nil
			s.mu.Lock()
			s.legacy[string(m.Key)] = ok && jsonInto(e.Data, &v1) && v1.OrderID == string(m.Key)
			s.mu.Unlock()
		}
		return nil
	})
	run("current-consumer", func(ctx context.Context, batch []*bus.Message) error {
		for _, m := range batch {
			if m.Header(eventmsg.HeaderEventType) != "OrderCreated" {
				continue
			}
			e, err := eventmsg.Decode(m)
			if err != nil {
				return err
			}
			p, err := e.Payload()
			if err != nil {
				t.Errorf("current consumer: %v", err)
				continue
			}
			oc := p.(*event.OrderCreated)
			s.mu.Lock()
			s.placedAt[oc.OrderID], s.version[oc.OrderID], s.stamp[oc.OrderID] = oc.PlacedAt, e.EventVersion, e.Timestamp
			s.mu.Unlock()
		}
		return nil
	})
}

// TestOrderCreatedV1AndV2OnOneTopic is a rolling upgrade of OrderCreated:
// first the order service still emits v1 (EVENTMART_EMIT_VERSIONS pins
// it), so a consumer that knows only v1 keeps working; restarted without
// the pin, it emits v2.
// Both versions travel on order-events, and every service's consumer
// (inventory, payment, shipping, cart, order's saga log) handles both: both
// orders ship. A v2 consumer gets v1 records upcast (placedAt = the
// envelope's timestamp).
func TestOrderCreatedV1AndV2OnOneTopic(t *testing.T) {
	h := apptest.Start(t, all(), apptest.Settings(map[string]string{"EVENTMART_EMIT_VERSIONS": "OrderCreated=v1"}))
	s := &seen{legacy: map[string]bool{}, placedAt: map[string]time.Time{}, version: map[string]string{}, stamp: map[string]time.Time{}}
	s.subscribe(t, h.Bus)

	admin := h.Token("admin-1", "admin")
	h.JSON("POST", "/api/v1/users", "", map[string]string{"email": "v@example.com", "password": "long enough password", "name": "V"}, 201, nil)
	var tok struct{ Token string }
	h.JSON("POST", "/api/v1/auth/token", "", map[string]string{"email": "v@example.com", "password": "long enough password"}, 200, &tok)
	var p struct{ ID string }
	h.JSON("POST", "/api/v1/products", admin, map[string]any{"sku": "VER", "name": "Mug", "priceCents": 700, "currency": "EUR"}, 201, &p)
	h.Eventually("stock", func() bool {
		status, _, _ := h.Do("PUT", "/api/v1/inventory/"+p.ID, admin, map[string]int{"onHand": 10})
		return status == 200
	})
	body := map[string]any{"items": []map[string]any{{"productId": p.ID, "quantity": 2}}, "payment": map[string]string{"card": "4242424242424242"},
		"shippingAddress": map[string]string{"name": "V", "line1": "l", "city": "c", "postalCode": "1", "country": "DE"}}
	order := func() (id string, createdAt time.Time) {
		var o struct {
			ID        string
			CreatedAt time.Time
		}
		h.JSON("POST", "/api/v1/orders", tok.Token, body, 202, &o)
		h.Eventually("order "+o.ID+" shipped", func() bool {
			var got struct{ Status string }
			h.JSON("GET", "/api/v1/orders/"+o.ID, tok.Token, nil, 200, &got)
			return got.Status == "SHIPPED"
		})
		return o.ID, o.CreatedAt
	}
	old, _ := order()
	h.Eventually("the test consumers saw the v1 order", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		_, a := s.legacy[old]
		_, b := s.placedAt[old]
		return a && b
	})
	h.Restart(apptest.Settings(nil)) // every consumer now understands v2: the services restart without the pin and emit it
	cur, createdAt := order()
	h.Eventually("the test consumers saw the v2 order", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		_, a := s.legacy[cur]
		_, b := s.placedAt[cur]
		return a && b
	})

	// The services' own view: both orders' OrderCreated, at their versions.
	for id, want := range map[string]string{old: "v1", cur: "v2"} {
		e := h.Events.Wait(t, "OrderCreated", apptest.Keyed(id))
		if e.EventVersion != want {
			t.Errorf("order %s: OrderCreated %s, want %s", id, e.EventVersion, want)
		}
		for _, typ := range []event.Type{"InventoryReserved", "PaymentProcessed", "ShippingCreated", "OrderShipped"} {
			h.Events.Wait(t, typ, apptest.Keyed(id))
		}
	}
	var inv struct{ OnHand, Reserved int64 }
	h.Eventually("stock of both orders left", func() bool {
		h.JSON("GET", "/api/v1/inventory/"+p.ID, admin, nil, 200, &inv)
		return inv.OnHand == 6
	})

	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.legacy[old] {
		t.Error("the v1-only consumer could not read the order emitted while v1 was pinned")
	}
	if s.legacy[cur] {
		t.Error("the v1-only consumer read a v2 record as v1")
	}
	if s.version[old] != "v1" || !s.placedAt[old].Equal(s.stamp[old]) {
		t.Errorf("v1 record upcast: version %s placedAt %v, want the envelope's timestamp %v", s.version[old], s.placedAt[old], s.stamp[old])
	}
	if s.version[cur] != "v2" || !s.placedAt[cur].Equal(createdAt) {
		t.Errorf("v2 record: version %s placedAt %v, want the order's createdAt %v", s.version[cur], s.placedAt[cur], createdAt)
	}
}

func jsonInto(data []byte, v any) bool { return json.Unmarshal(data, v) == nil }
