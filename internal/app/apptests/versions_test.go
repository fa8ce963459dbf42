package apptests

import (
	"context"
	"encoding/json"
	"strings"
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
// through event.Envelope.Payload (older versions are upcast).
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

// TestOrderCreatedV3ReachesEveryConsumer: OrderCreated v3 seals the
// customer and the address, and cannot be downcast (a pin to v1 or v2 is
// refused at start: TestEmitPinOfSealedVersionIsRefused in internal/app).
// Every service's consumer (inventory, payment, shipping, cart, order's saga
// log) handles v3: the order ships, its ShippingCreated at v2 with the
// address sealed. A consumer that knows only v1 cannot read the record —
// why consumers are upgraded before the producer (docs/events.md). Older
// records are upcast (TestOrderCreatedV1IsUpcast in event).
func TestOrderCreatedV3ReachesEveryConsumer(t *testing.T) {
	h := apptest.Start(t, all())
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
	h.Eventually("the test consumers saw the order", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		_, a := s.legacy[o.ID]
		_, b := s.placedAt[o.ID]
		return a && b
	})

	e := h.Events.Wait(t, "OrderCreated", apptest.Keyed(o.ID))
	if e.EventVersion != "v3" || strings.Contains(string(e.Data), "v@example.com") || strings.Contains(string(e.Data), `"line1"`) {
		t.Errorf("OrderCreated %s %s: want v3 with the email and address sealed", e.EventVersion, e.Data)
	}
	sc := h.Events.Wait(t, "ShippingCreated", apptest.Keyed(o.ID))
	if sc.EventVersion != "v2" || strings.Contains(string(sc.Data), `"line1"`) {
		t.Errorf("ShippingCreated %s %s: want v2 with the address sealed", sc.EventVersion, sc.Data)
	}
	for _, typ := range []event.Type{"InventoryReserved", "PaymentProcessed", "OrderShipped"} {
		h.Events.Wait(t, typ, apptest.Keyed(o.ID))
	}
	var inv struct{ OnHand, Reserved int64 }
	h.Eventually("stock of the order left", func() bool {
		h.JSON("GET", "/api/v1/inventory/"+p.ID, admin, nil, 200, &inv)
		return inv.OnHand == 8
	})

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.legacy[o.ID] {
		t.Error("the v1-only consumer read a v3 record as v1")
	}
	if s.version[o.ID] != "v3" || !s.placedAt[o.ID].Equal(o.CreatedAt) {
		t.Errorf("v3 record: version %s placedAt %v, want the order's createdAt %v", s.version[o.ID], s.placedAt[o.ID], o.CreatedAt)
	}
}

func jsonInto(data []byte, v any) bool { return json.Unmarshal(data, v) == nil }
