package inbox

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// trace gives the handler the trace context of the record's traceparent,
// so that its logs and the events it emits continue the trace; with
// Tracing on, inside a consumer span of its own, which records a failure.
func (c *Consumer) trace(next recordHandler) recordHandler {
	if !c.Tracing.On() {
		return func(ctx context.Context, tx *sqldb.Tx, r *record) error {
			return next(eventmsg.ContextWithTrace(ctx, r.Message), tx, r)
		}
	}
	return func(ctx context.Context, tx *sqldb.Tx, r *record) error {
		m, e := r.Message, r.Envelope
		ctx, span := c.Tracing.Tracer().Start(eventmsg.ContextWithTrace(ctx, m), string(e.EventType)+" process", trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(
				attribute.String("messaging.system", "eventmart"),
				attribute.String("messaging.operation.type", "process"),
				attribute.String("messaging.destination.name", m.Topic),
				attribute.String("messaging.consumer.group.name", c.Group),
				attribute.Int("messaging.destination.partition.id", int(m.Partition)),
				attribute.Int64("messaging.kafka.offset", m.Offset),
				attribute.String("messaging.message.id", e.EventID),
				attribute.String("eventmart.event_type", string(e.EventType)),
				attribute.String("eventmart.correlation_id", e.CorrelationID),
				attribute.String("eventmart.causation_id", e.CausationID),
				attribute.String("eventmart.service", c.Group),
			))
		defer span.End()
		err := next(ctx, tx, r)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "handler failed")
		}
		return err
	}
}
