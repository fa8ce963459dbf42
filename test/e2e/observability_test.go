package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/eventmart/eventmart/internal/obs/obstest"
)

func init() {
	distributedScenarios = append(distributedScenarios, struct {
		name string
		run  func(*testing.T, *shop, []string)
	}{"OneTraceAndMetricsAcrossProcesses", traceAcrossProcesses})
}

// span is what the test keeps of an exported span.
type span struct {
	service, name string
	kind          tracepb.Span_SpanKind
	traceID       string
}

// otlpReceiver is an OTLP/HTTP traces endpoint keeping every span.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []span
}

var otlp = &otlpReceiver{}

// startOTLP serves the receiver and returns the environment that makes
// the processes export their spans to it, quickly.
func startOTLP(t *testing.T) []string {
	srv := httptest.NewServer(http.HandlerFunc(otlp.serve))
	t.Cleanup(srv.Close)
	return []string{"EVENTMART_OTLP_ENDPOINT=" + srv.URL, "OTEL_BSP_SCHEDULE_DELAY=100"}
}

func (o *otlpReceiver) serve(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	var req coltrace.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(b, &req)
	}
	if r.URL.Path != "/v1/traces" || err != nil {
		http.Error(w, fmt.Sprintf("want an OTLP protobuf export at /v1/traces: %v", err), http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	for _, rs := range req.ResourceSpans {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				o.spans = append(o.spans, span{service: service, name: sp.Name, kind: sp.Kind, traceID: hex.EncodeToString(sp.TraceId)})
			}
		}
	}
	o.mu.Unlock()
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

func (o *otlpReceiver) trace(id string) []span {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []span
	for _, s := range o.spans {
		if s.traceID == id {
			out = append(out, s)
		}
	}
	return out
}

// traceAcrossProcesses places an order with a W3C traceparent and checks
// that the gateway's and every saga service's spans, each exported by its
// own process over OTLP, join that one trace through Kafka and the outbox;
// then that the processes' /metrics tell the story, Kafka's included.
func traceAcrossProcesses(t *testing.T, s *shop, _ []string) {
	tok, _ := s.customer("tracer")
	pid := s.product(1500, 5)
	tid, sid := make([]byte, 16), make([]byte, 8)
	rand.Read(tid)
	rand.Read(sid)
	traceID := hex.EncodeToString(tid)
	status, _, b := s.call("POST", "/api/v1/orders", tok, map[string]any{"items": line(pid, 1), "payment": map[string]string{"card": cardOK}, "shippingAddress": address},
		"traceparent", "00-"+traceID+"-"+hex.EncodeToString(sid)+"-01")
	var o order
	if status != http.StatusAccepted || json.Unmarshal(b, &o) != nil {
		t.Fatalf("POST /orders: %d %s", status, b)
	}
	if f := s.final(tok, o.ID); f.Status != "SHIPPED" {
		t.Fatalf("order %+v", f)
	}
	want := []span{
		{service: "eventmart-gateway", kind: tracepb.Span_SPAN_KIND_SERVER, name: "POST proxy:order"},
		{service: "eventmart-order", kind: tracepb.Span_SPAN_KIND_SERVER, name: "POST /api/v1/orders"},
		{service: "eventmart-order", kind: tracepb.Span_SPAN_KIND_PRODUCER, name: "order-events publish"},
		{service: "eventmart-inventory", kind: tracepb.Span_SPAN_KIND_CONSUMER, name: "OrderCreated process"},
		{service: "eventmart-payment", kind: tracepb.Span_SPAN_KIND_CONSUMER, name: "InventoryReserved process"},
		{service: "eventmart-order", kind: tracepb.Span_SPAN_KIND_CONSUMER, name: "PaymentProcessed process"},
		{service: "eventmart-shipping", kind: tracepb.Span_SPAN_KIND_CONSUMER, name: "PaymentProcessed process"},
		{service: "eventmart-notification", kind: tracepb.Span_SPAN_KIND_CONSUMER, name: "OrderShipped process"},
		{service: "eventmart-order", kind: tracepb.Span_SPAN_KIND_CONSUMER, name: "NotificationSent process"},
		{service: "eventmart-audit", kind: tracepb.Span_SPAN_KIND_CONSUMER, name: "OrderShipped process"},
	}
	var missing []span
	defer func() {
		if t.Failed() {
			t.Logf("spans missing from trace %s: %+v", traceID, missing)
		}
	}()
	s.eventually("the saga's spans from every process in the request's trace", func() bool {
		got := map[span]bool{}
		for _, sp := range otlp.trace(traceID) {
			sp.traceID = ""
			got[sp] = true
		}
		missing = missing[:0]
		for _, w := range want {
			if !got[w] {
				missing = append(missing, w)
			}
		}
		return len(missing) == 0
	})

	metrics := func(proc string) obstest.Samples {
		m, err := obstest.Scrape("http://" + s.procs[proc].addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	ord := metrics("order")
	for _, c := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"eventmart_saga_outcomes_total", []string{"outcome", "SHIPPED"}, 1},
		{"eventmart_events_published_total", []string{"event_type", "OrderCreated", "outcome", "ok"}, 1},
		{"eventmart_kafka_client_produce_records_total", []string{"client", "shared", "topic", "order-events"}, 1},
		{"eventmart_kafka_client_fetch_records_total", []string{"client", "group:order-service"}, 1},
		{"eventmart_kafka_brokers", nil, 1},
		{"eventmart_bus_up", nil, 1},
	} {
		if got := ord.Value(c.name, c.labels...); got < c.min {
			t.Errorf("order process: %s%v = %v, want at least %v", c.name, c.labels, got, c.min)
		}
	}
	if v, found := ord.Sum("eventmart_kafka_under_replicated_partitions"); !found || v != 0 {
		t.Errorf("under-replicated partitions %v (found %v), want 0 on a healthy single broker", v, found)
	}
	if got := metrics("gateway").Value("eventmart_http_requests_total", "route", "proxy:order", "method", "POST", "code", "202"); got < 1 {
		t.Errorf("gateway: POST proxy:order 202 counted %v times", got)
	}
	if got := metrics("shipping").Value("eventmart_events_consumed_total", "group", "shipping-service", "event_type", "PaymentProcessed", "outcome", "processed"); got < 1 {
		t.Errorf("shipping: PaymentProcessed processed %v times", got)
	}
}
