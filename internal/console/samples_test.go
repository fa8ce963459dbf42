package console

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/bus/embedded"
	"github.com/eventmart/eventmart/event"
)

// Samples turn end offsets into events per second per topic and handler
// histograms into a p99 per group; the history is bounded, and the
// endpoint answers the samples of the range asked for.
func TestSamples(t *testing.T) {
	b := openBus(t)
	reg := prometheus.NewRegistry()
	hist := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "eventmart_handler_duration_seconds", Buckets: []float64{.001, .005, .025, .1}}, []string{"group", "event_type"})
	dead := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eventmart_consumer_dead_letters_total"}, []string{"group"})
	reg.MustRegister(hist, dead)
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &Console{Bus: b, Metrics: reg, SampleHistory: 3, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }}
	tick := func() { mu.Lock(); now = now.Add(10 * time.Second); mu.Unlock() }
	ctx := context.Background()

	c.TakeSample(ctx) // the base: no point yet
	for range 20 {
		publish(t, b, event.Origin{}, &event.OrderCancelled{OrderID: event.NewID(), UserID: "u1", ReasonCode: "timeout", Reason: "r"})
	}
	for range 99 {
		hist.WithLabelValues("shipping-service", "PaymentProcessed").Observe(.002)
	}
	hist.WithLabelValues("shipping-service", "OrderCreated").Observe(.05)
	hist.WithLabelValues("shipping-service", "OrderCreated").Observe(.05)
	dead.WithLabelValues("shipping-service").Add(2)
	tick()
	c.TakeSample(ctx)

	rec := httptest.NewRecorder()
	c.Samples(rec, httptest.NewRequest("GET", "/?range=5m", nil))
	var body struct {
		Range, Every string
		Samples      []Sample
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Samples) != 1 {
		t.Fatalf("%s (%v): want one sample", rec.Body, err)
	}
	s := body.Samples[0]
	if s.EventsPerSecond["order-events"] != 2 || s.EventsPerSecond["user-events"] != 0 {
		t.Errorf("events per second %v, want 2 on order-events", s.EventsPerSecond)
	}
	if s.HandlerP99Ms["shipping-service"] != 100 { // 2 of 101 observations at 50ms: p99 in the (25ms, 100ms] bucket
		t.Errorf("handler p99 %v, want 100ms for shipping-service", s.HandlerP99Ms)
	}
	if s.DeadLetters != 2 || body.Range != "5m" || body.Every != "10s" {
		t.Errorf("sample %+v, range %q, every %q", s, body.Range, body.Every)
	}
	if _, ok := s.Lag["shipping-service"]; !ok {
		t.Errorf("no lag for shipping-service: %v", s.Lag)
	}

	// The next interval saw no handler calls: no p99 for it.
	tick()
	c.TakeSample(ctx)
	for range 3 {
		tick()
		c.TakeSample(ctx)
	}
	rec = httptest.NewRecorder()
	c.Samples(rec, httptest.NewRequest("GET", "/?range=1h", nil))
	json.Unmarshal(rec.Body.Bytes(), &body)
	if len(body.Samples) != 3 {
		t.Fatalf("%d samples kept, want the history's 3", len(body.Samples))
	}
	if len(body.Samples[2].HandlerP99Ms) != 0 || body.Samples[2].EventsPerSecond["order-events"] != 0 {
		t.Errorf("a quiet interval: %+v", body.Samples[2])
	}
}

// A watched topic the bus does not have leaves out only itself: the
// others' rates are still sampled (their ends are listed together, or one
// by one when that fails).
func TestSamplesWithoutATopic(t *testing.T) {
	b, err := embedded.Open(filepath.Join(t.TempDir(), "eventlog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if _, err := b.EnsureTopics(context.Background(), []bus.TopicConfig{{Name: string(event.TopicOrder), Partitions: 2}}); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &Console{Bus: b, Metrics: prometheus.NewRegistry(), SampleHistory: 3, Now: func() time.Time { return now }}
	ctx := context.Background()
	c.TakeSample(ctx)
	for range 30 {
		publish(t, b, event.Origin{}, &event.OrderCancelled{OrderID: event.NewID(), UserID: "u1", ReasonCode: "timeout", Reason: "r"})
	}
	now = now.Add(10 * time.Second)
	c.TakeSample(ctx)
	s := c.samples.samples
	if len(s) != 1 {
		t.Fatalf("%d samples, want 1", len(s))
	}
	if got := s[0].EventsPerSecond; got["order-events"] != 3 || len(got) != 1 {
		t.Errorf("events per second %v, want 3 on order-events and no other topic", got)
	}
}
