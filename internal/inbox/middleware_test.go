package inbox_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/internal/obs"
)

// TestMiddlewareOrder: tracing and metrics wrap panic recovery — a
// panicking handler ends its record's span with the error, and is timed,
// like any handler. (TestInjectedFailureFailsTheHandlerUntilStopped: an
// injected failure is a *HandlerError, so injection runs inside recovery.)
func TestMiddlewareOrder(t *testing.T) {
	f := newFixture(t)
	rec := tracetest.NewSpanRecorder()
	f.c.Tracing = obs.NewTracing(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	reg := prometheus.NewRegistry()
	f.c.Metrics = obs.New(reg).Consumer(f.c.Group, f.c.Topics())
	f.panics["p-panic"] = true
	ctx := context.Background()
	f.c.Handle(ctx, []*bus.Message{f.msg("p-panic")})
	f.c.Handle(ctx, []*bus.Message{f.msg("p-ok")})

	var failed, ok int
	for _, sp := range rec.Ended() {
		if sp.Name() != "ProductCreated process" {
			t.Errorf("span %q", sp.Name())
			continue
		}
		if sp.Status().Code == codes.Error {
			failed++
			recorded := false
			for _, ev := range sp.Events() {
				for _, a := range ev.Attributes {
					recorded = recorded || a.Key == "exception.message" && strings.Contains(a.Value.AsString(), "panic: handler bug")
				}
			}
			if !recorded {
				t.Errorf("failed span's events %+v, want the panic recorded", sp.Events())
			}
		} else {
			ok++
		}
	}
	// The panicking record: tried in the optimistic transaction, then
	// alone behind a savepoint. The good one: once.
	if failed != 2 || ok != 1 {
		t.Errorf("%d failed spans and %d good ones, want 2 and 1", failed, ok)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var timed uint64
	for _, mf := range mfs {
		if mf.GetName() == "eventmart_handler_duration_seconds" {
			for _, m := range mf.GetMetric() {
				timed += m.GetHistogram().GetSampleCount()
			}
		}
	}
	if timed != 3 {
		t.Errorf("%d handler runs timed, want 3", timed)
	}
}
