package obs

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

var traceContext = propagation.TraceContext{}

type routeKey struct{}

// route is where the innermost ServeMux that matched a request records
// its pattern, for the request's metrics and span name.
type route struct{ pattern string }

// Routed wraps mux so that the pattern it matched (r.Pattern, e.g. "GET
// /api/v1/orders/{id}") names the request in Middleware's metrics and span.
// With nested muxes the innermost match wins. mux is a ServeMux, or a
// handler serving r itself with one (httpx.Unmatched): the ServeMux sets
// r.Pattern on the request it is given.
func Routed(mux http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r) // sets r.Pattern on r itself
		SetRoute(r.Context(), r.Pattern)
	})
}

// SetRoute names the request of ctx by route (a pattern, never a raw
// path: it is a metric label) unless a more specific handler already did.
func SetRoute(ctx context.Context, pattern string) {
	if rt, ok := ctx.Value(routeKey{}).(*route); ok && rt != nil && rt.pattern == "" && pattern != "" && pattern != "/" {
		rt.pattern = pattern
	}
}

// WithoutRoute returns ctx in which SetRoute does nothing: for a request
// served within another one (an in-process call), which must not name the
// outer request's route.
func WithoutRoute(ctx context.Context) context.Context {
	return context.WithValue(ctx, routeKey{}, (*route)(nil))
}

// InjectHTTP puts ctx's trace context on an outgoing request's header.
func InjectHTTP(ctx context.Context, h http.Header) {
	traceContext.Inject(ctx, propagation.HeaderCarrier(h))
}

// Transport returns an http.RoundTripper that sends the trace context of
// each request's context along (traceparent), over base.
func Transport(base http.RoundTripper) http.RoundTripper {
	return roundTripper{base}
}

type roundTripper struct{ base http.RoundTripper }

func (t roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	if trace.SpanContextFromContext(r.Context()).IsValid() {
		r = r.Clone(r.Context())
		InjectHTTP(r.Context(), r.Header)
	}
	return t.base.RoundTrip(r)
}

type httpKey struct {
	route, method string
	code          int
}

type httpChildren struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

func (m *Metrics) httpOf(route, method string, code int) *httpChildren {
	k := httpKey{route, method, code}
	if c, ok := m.httpChildren.Load(k); ok {
		return c.(*httpChildren)
	}
	c := &httpChildren{requests: m.httpRequests.WithLabelValues(route, method, strconv.Itoa(code)), duration: m.httpDuration.WithLabelValues(route, method)}
	m.httpChildren.Store(k, c)
	return c
}

// routeLabel turns a ServeMux pattern into the route label: its path
// ("/api/v1/orders/{id}"); "unmatched" when no specific route matched.
func routeLabel(pattern string) string {
	if pattern == "" {
		return "unmatched"
	}
	if _, path, ok := strings.Cut(pattern, " "); ok {
		return path
	}
	return pattern
}

func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// Middleware wraps h (the whole gateway) with, per request, a server span
// (when tracing is on; a caller's traceparent is its parent, and is passed
// on even when tracing is off) and the HTTP metrics, labelled by the route
// pattern Routed recorded.
func (m *Metrics) Middleware(tr *Tracing, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rt := &route{}
		ctx := context.WithValue(r.Context(), routeKey{}, rt)
		if r.Header.Get("traceparent") != "" {
			ctx = traceContext.Extract(ctx, propagation.HeaderCarrier(r.Header))
		}
		var span trace.Span
		if tr.On() {
			ctx, span = tr.Tracer().Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path)))
		}
		m.httpInFlight.Inc()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			m.httpInFlight.Dec()
			routeName, method := routeLabel(rt.pattern), methodLabel(r.Method)
			c := m.httpOf(routeName, method, sw.status)
			c.requests.Inc()
			c.duration.Observe(time.Since(start).Seconds())
			if span != nil {
				span.SetName(method + " " + routeName)
				span.SetAttributes(attribute.String("http.route", routeName), attribute.Int("http.response.status_code", sw.status))
				if sw.status >= 500 {
					span.SetStatus(codes.Error, http.StatusText(sw.status))
				}
				span.End()
			}
		}()
		h.ServeHTTP(sw, r.WithContext(ctx))
	})
}

// statusWriter records the status code; it passes Flush on (server-sent
// events) and unwraps for http.ResponseController.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
