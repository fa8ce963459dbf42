package obs

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/eventmart/eventmart/internal/obs/obstest"
)

func TestLogHandlerAddsTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewJSONHandler(&buf, nil))).With("service", "order-service")
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	log.InfoContext(ctx, "hello")
	log.Info("no context")
	dec := json.NewDecoder(&buf)
	var first, second map[string]any
	if err := dec.Decode(&first); err != nil {
		t.Fatal(err)
	}
	dec.Decode(&second)
	if first["trace_id"] != tid.String() || first["span_id"] != sid.String() || first["service"] != "order-service" {
		t.Errorf("line %v", first)
	}
	if _, ok := second["trace_id"]; ok {
		t.Errorf("trace_id without a span: %v", second)
	}
}

// The route label is the innermost mux's pattern; a request served within
// another (an in-process call) does not rename the outer one; unmatched
// paths share one label.
func TestHTTPMetricsByRoutePattern(t *testing.T) {
	m := New(nil)
	inner := http.NewServeMux()
	inner.HandleFunc("GET /api/v1/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		// an in-process call to another route, within this request
		nested := http.NewServeMux()
		nested.HandleFunc("GET /api/v1/products/{id}", func(http.ResponseWriter, *http.Request) {})
		Routed(nested).ServeHTTP(httptest.NewRecorder(), r.WithContext(WithoutRoute(r.Context())))
		w.WriteHeader(http.StatusTeapot)
	})
	inner.HandleFunc("/", http.NotFound)
	outer := http.NewServeMux()
	outer.Handle("/", Routed(inner))
	srv := httptest.NewServer(m.Middleware(NewTracing(nil), Routed(outer)))
	defer srv.Close()
	for _, p := range []string{"/api/v1/orders/1", "/api/v1/orders/2", "/nothing/here/3"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	var buf bytes.Buffer
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	buf.Write(rec.Body.Bytes())
	s, err := obstest.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if v := s.Value("eventmart_http_requests_total", "route", "/api/v1/orders/{id}", "method", "GET", "code", "418"); v != 2 {
		t.Errorf("orders route counted %v, want 2; routes %v", v, s.LabelValues("eventmart_http_requests_total", "route"))
	}
	if v := s.Value("eventmart_http_requests_total", "route", "unmatched", "code", "404"); v != 1 {
		t.Errorf("unmatched counted %v, want 1", v)
	}
	if len(s.LabelValues("eventmart_http_requests_total", "route")) != 2 {
		t.Errorf("routes %v", s.LabelValues("eventmart_http_requests_total", "route"))
	}
}

// Durations are logged as text, not integer nanoseconds.
func TestReplaceAttrWritesDurationsAsText(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: ReplaceAttr}))
	log.Info("parked", "retry_in", 100*time.Millisecond, "attempts", 3)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	if line["retry_in"] != "100ms" || line["attempts"] != float64(3) {
		t.Errorf("logged %s", buf.String())
	}
}
