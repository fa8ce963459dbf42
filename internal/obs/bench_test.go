package obs

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
)

type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, ...*bus.Message) error { return nil }

func messages(b *testing.B, n int) []*bus.Message {
	e, err := event.New("order-service", event.Origin{CorrelationID: "c"}, &event.OrderCreated{OrderID: "o-1"})
	if err != nil {
		b.Fatal(err)
	}
	m, err := eventmsg.Encode(context.Background(), e)
	if err != nil {
		b.Fatal(err)
	}
	msgs := make([]*bus.Message, n)
	for i := range msgs {
		msgs[i] = m
	}
	return msgs
}

// BenchmarkPublishMetrics: the relay publisher's cost per event with
// tracing off (counting only), over a publisher that does nothing.
func BenchmarkPublishMetrics(b *testing.B) {
	p := New(nil).Publisher(nopPublisher{}, NewTracing(nil), "order-service")
	msgs := messages(b, 100)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.Publish(context.Background(), msgs...)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(msgs)), "ns/event")
}

// BenchmarkConsumerMetrics: what the inbox adds per handled event.
func BenchmarkConsumerMetrics(b *testing.B) {
	c := New(nil).Consumer("inventory-service", []string{"order-events"})
	m := messages(b, 1)[0]
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ev := c.Of(m)
		ev.Duration.Observe(0.001)
		ev.Consumed(OutcomeProcessed)
	}
}

// BenchmarkHTTPMiddleware: the metrics middleware around a routed mux.
func BenchmarkHTTPMiddleware(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/orders/{id}", func(w http.ResponseWriter, r *http.Request) {})
	h := New(nil).Middleware(NewTracing(nil), Routed(mux))
	r := httptest.NewRequest("GET", "/api/v1/orders/123", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		h.ServeHTTP(w, r)
	}
}
