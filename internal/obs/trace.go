package obs

import (
	"context"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/eventmart/eventmart/internal/settings"
)

// TracerName is the instrumentation scope of Eventmart's spans.
const TracerName = "github.com/eventmart/eventmart"

// Tracing is an app's tracer. The zero value and NewTracing(nil) are off:
// no spans are started, so tracing costs next to nothing, while trace
// context that arrives (traceparent headers) is still passed on.
type Tracing struct {
	tracer trace.Tracer
	on     bool
}

// NewTracing returns tracing through tp; nil is off.
func NewTracing(tp trace.TracerProvider) *Tracing {
	if tp == nil {
		return &Tracing{tracer: noop.NewTracerProvider().Tracer(TracerName)}
	}
	if _, isNoop := tp.(noop.TracerProvider); isNoop {
		return &Tracing{tracer: tp.Tracer(TracerName)}
	}
	return &Tracing{tracer: tp.Tracer(TracerName), on: true}
}

// On reports whether spans are recorded.
func (t *Tracing) On() bool { return t != nil && t.on }

// Tracer returns the tracer (a no-op one when off).
func (t *Tracing) Tracer() trace.Tracer {
	if t == nil || t.tracer == nil {
		return noop.NewTracerProvider().Tracer(TracerName)
	}
	return t.tracer
}

// OTLPEndpoint returns the OTLP/HTTP traces URL configured by
// EVENTMART_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT (base URLs, to
// which /v1/traces is appended) or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the
// full URL), or "" when none is: tracing is off.
func OTLPEndpoint(getenv func(string) string) string {
	if v := getenv(settings.OTELTracesEndpoint.Name); v != "" {
		return v
	}
	for _, k := range []string{settings.OTLPEndpoint.Name, settings.OTELEndpoint.Name} {
		if v := getenv(k); v != "" {
			return strings.TrimRight(v, "/") + "/v1/traces"
		}
	}
	return ""
}

// SetupOTLP returns a tracer provider exporting spans over OTLP/HTTP to the
// endpoint OTLPEndpoint finds, as service (OTEL_SERVICE_NAME wins), and a
// shutdown that flushes it; (nil, no-op, nil) when no endpoint is set.
// Sampling follows OTEL_TRACES_SAMPLER (default: parent-based, always on)
// and batching OTEL_BSP_* as the OpenTelemetry SDK reads them.
func SetupOTLP(ctx context.Context, getenv func(string) string, service string) (trace.TracerProvider, func(context.Context) error, error) {
	url := OTLPEndpoint(getenv)
	if url == "" {
		return nil, func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(url))
	if err != nil {
		return nil, nil, fmt.Errorf("obs: OTLP exporter for %s: %w", url, err)
	}
	if v := getenv(settings.OTELServiceName.Name); v != "" {
		service = v
	}
	res := resource.NewSchemaless(attribute.String("service.name", service))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return tp, tp.Shutdown, nil
}
