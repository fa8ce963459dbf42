package apptests

import (
	"slices"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventmart/eventmart/internal/app"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/obs/obstest"
)

// shop sets up a customer and a product with stock, and places orders.
type shop struct {
	h        *apptest.Harness
	customer string
	product  string
}

func newShop(t *testing.T, h *apptest.Harness) *shop {
	admin := h.Token("admin-1", "admin")
	h.JSON("POST", "/api/v1/users", "", map[string]string{"email": "m@example.com", "password": "long enough password", "name": "M"}, 201, nil)
	var tok struct{ Token string }
	h.JSON("POST", "/api/v1/auth/token", "", map[string]string{"email": "m@example.com", "password": "long enough password"}, 200, &tok)
	var p struct{ ID string }
	h.JSON("POST", "/api/v1/products", admin, map[string]any{"sku": "OBS", "name": "Mug", "priceCents": 500, "currency": "EUR"}, 201, &p)
	h.Eventually("stock", func() bool {
		status, _, _ := h.Do("PUT", "/api/v1/inventory/"+p.ID, admin, map[string]int{"onHand": 10})
		return status == 200
	})
	return &shop{h: h, customer: tok.Token, product: p.ID}
}

// order places an order paid with card and returns its id and the
// response's X-Correlation-ID.
func (s *shop) order(card string) string {
	var o struct{ ID string }
	s.h.JSON("POST", "/api/v1/orders", s.customer, map[string]any{"items": []map[string]any{{"productId": s.product, "quantity": 1}},
		"payment":         map[string]string{"card": card},
		"shippingAddress": map[string]string{"name": "A", "line1": "l", "city": "c", "postalCode": "1", "country": "DE"}}, 202, &o)
	return o.ID
}

func (s *shop) waitStatus(id, status string) {
	s.h.Eventually("order "+id+" "+status, func() bool {
		var o struct{ Status string }
		s.h.JSON("GET", "/api/v1/orders/"+id, s.customer, nil, 200, &o)
		return o.Status == status
	})
}

func scrape(t *testing.T, h *apptest.Harness) obstest.Samples {
	t.Helper()
	s, err := obstest.Scrape(h.Server.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMetricsAfterAKnownFlow places two orders, one declined, with the
// notification of cancelled orders broken, and checks what /metrics says.
func TestMetricsAfterAKnownFlow(t *testing.T) {
	h := apptest.Start(t, all(), apptest.Settings(map[string]string{
		"EVENTMART_FAIL_EVENTS": "notification:OrderCancelled", "EVENTMART_RETRY_DELAYS": "20ms", "EVENTMART_RETRY_ATTEMPTS": "4",
	}))
	s := newShop(t, h)
	shipped, declined := s.order("4242424242424242"), s.order("4000000000000002")
	s.waitStatus(shipped, "SHIPPED")
	s.waitStatus(declined, "CANCELLED")

	var m obstest.Samples
	h.Eventually("the OrderCancelled notification dead-lettered and every group caught up", func() bool {
		m = scrape(t, h)
		lag, found := m.Sum("eventmart_consumer_lag")
		// The consumer's counters move as its transactions commit, a
		// moment apart from the queue's depth that the probe reads from
		// the database: wait for both.
		notified := []string{"group", "notification-service", "event_type", "OrderCancelled"}
		dead, _ := m.Sum("eventmart_consumer_dead_letters_total", notified...)
		parked, _ := m.Sum("eventmart_consumer_parked_total", notified...)
		return m.Value("eventmart_dead_letter_queue_events", "group", "notification-service") == 1 && dead == 1 && parked == 1 &&
			found && lag == 0 && m.Value("eventmart_outbox_backlog") == 0
	})
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"eventmart_saga_outcomes_total", []string{"outcome", "SHIPPED"}, 1},
		{"eventmart_saga_outcomes_total", []string{"outcome", "CANCELLED", "reason", "payment-failed"}, 1},
		{"eventmart_saga_outcomes_total", []string{"outcome", "CANCELLED"}, 1},
		{"eventmart_saga_duration_seconds", []string{"outcome", "SHIPPED"}, 1},
		{"eventmart_saga_duration_seconds", []string{"outcome", "CANCELLED"}, 1},
		{"eventmart_events_published_total", []string{"topic", "order-events", "event_type", "OrderCreated", "outcome", "ok"}, 2},
		{"eventmart_events_published_total", []string{"event_type", "PaymentProcessed", "outcome", "ok"}, 1},
		{"eventmart_events_published_total", []string{"event_type", "PaymentFailed", "outcome", "ok"}, 1},
		{"eventmart_events_published_total", []string{"event_type", "OrderShipped"}, 1},
		{"eventmart_events_published_total", []string{"outcome", "error"}, 0},
		{"eventmart_events_consumed_total", []string{"group", "order-service", "topic", "payment-events", "event_type", "PaymentProcessed", "outcome", "processed"}, 1},
		{"eventmart_events_consumed_total", []string{"group", "order-service", "topic", "payment-events", "event_type", "PaymentFailed", "outcome", "processed"}, 1},
		{"eventmart_events_consumed_total", []string{"group", "payment-service", "topic", "inventory-events", "event_type", "InventoryReserved", "outcome", "processed"}, 2},
		{"eventmart_events_consumed_total", []string{"group", "inventory-service", "topic", "order-events", "event_type", "OrderCreated", "outcome", "processed"}, 2},
		{"eventmart_events_consumed_total", []string{"group", "notification-service", "event_type", "OrderCancelled", "outcome", "dead_lettered"}, 1},
		{"eventmart_consumer_dead_letters_total", []string{"group", "notification-service", "event_type", "OrderCancelled"}, 1},
		{"eventmart_consumer_dead_letters_total", nil, 1},
		// 3 in place, 1 delayed; the 4th attempt dead-letters it.
		{"eventmart_consumer_retries_total", []string{"group", "notification-service", "event_type", "OrderCancelled"}, 4},
		{"eventmart_consumer_parked_total", []string{"group", "notification-service", "event_type", "OrderCancelled"}, 1},
		{"eventmart_handler_duration_seconds", []string{"group", "shipping-service", "event_type", "PaymentProcessed"}, 1},
		{"eventmart_http_requests_total", []string{"route", "/api/v1/orders", "method", "POST", "code", "202"}, 2},
		{"eventmart_bus_up", nil, 1},
		{"eventmart_dead_letter_queue_events", []string{"group", "shipping-service"}, 0},
		{"eventmart_retry_queue_events", nil, 0},
	}
	for _, c := range checks {
		if got, found := m.Sum(c.name, c.labels...); got != c.want || (!found && c.want != 0) {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, found, c.want)
		}
	}
	// Routes are patterns, never raw paths.
	routes := m.LabelValues("eventmart_http_requests_total", "route")
	if !slices.Contains(routes, "/api/v1/orders/{id}") {
		t.Errorf("routes %v: no /api/v1/orders/{id}", routes)
	}
	for _, r := range routes {
		if strings.Contains(r, shipped) || strings.Contains(r, s.product) {
			t.Errorf("route label %q holds an id", r)
		}
	}
	if _, found := m.Sum("go_goroutines"); !found {
		t.Error("no Go runtime metrics")
	}
}

// TestTraceCoversTheSagaOnTheEmbeddedBus: the spans of a saga's handlers in
// order, payment and shipping share the trace of the request that placed
// the order, through the outbox and the bus.
func TestTraceCoversTheSagaOnTheEmbeddedBus(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	h := apptest.Start(t, all(), func(c *app.Config) { c.Tracer = tp })
	s := newShop(t, h)
	id := s.order("4242424242424242")
	s.waitStatus(id, "SHIPPED")

	var place trace.SpanID
	var tid trace.TraceID
	for _, sp := range rec.Ended() {
		if sp.Name() == "POST /api/v1/orders" && sp.SpanKind() == trace.SpanKindServer {
			tid, place = sp.SpanContext().TraceID(), sp.SpanContext().SpanID()
		}
	}
	if !tid.IsValid() {
		t.Fatalf("no server span POST /api/v1/orders among %d spans", len(rec.Ended()))
	}
	want := map[string]bool{ // group/event handled in the order's trace
		"inventory-service/OrderCreated":    false,
		"payment-service/InventoryReserved": false,
		"order-service/PaymentProcessed":    false,
		"shipping-service/PaymentProcessed": false,
		"notification-service/OrderShipped": false,
		"order-service/NotificationSent":    false,
	}
	h.Eventually("handler spans in the order's trace", func() bool {
		for _, sp := range rec.Ended() {
			if sp.SpanContext().TraceID() != tid || sp.SpanKind() != trace.SpanKindConsumer {
				continue
			}
			var group, typ string
			for _, a := range sp.Attributes() {
				switch a.Key {
				case "messaging.consumer.group.name":
					group = a.Value.AsString()
				case "eventmart.event_type":
					typ = a.Value.AsString()
				}
			}
			if _, ok := want[group+"/"+typ]; ok {
				want[group+"/"+typ] = true
			}
		}
		for _, seen := range want {
			if !seen {
				return false
			}
		}
		return true
	})
	// The OrderCreated publish is a child of the request's span.
	found := false
	for _, sp := range rec.Ended() {
		if sp.SpanKind() == trace.SpanKindProducer && sp.Name() == "order-events publish" && sp.Parent().SpanID() == place {
			found = true
		}
	}
	if !found {
		t.Error("no order-events publish span under the POST /api/v1/orders span")
	}
}
