package obs

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event/eventmsg"
)

// Publisher wraps pub, the bus an outbox relay of service publishes to: it
// counts published events by topic, type and outcome and times each call;
// with tracing on, every message gets a producer span, a child of the trace
// context stored with it in the outbox, and carries that span's context on
// to its consumers.
func (m *Metrics) Publisher(pub bus.Publisher, tr *Tracing, service string) bus.Publisher {
	return &publisher{pub: pub, m: m, tr: tr, service: service}
}

type publisher struct {
	pub     bus.Publisher
	m       *Metrics
	tr      *Tracing
	service string
}

func (p *publisher) Publish(ctx context.Context, msgs ...*bus.Message) error {
	start := time.Now()
	var spans []trace.Span
	if p.tr.On() {
		spans = make([]trace.Span, len(msgs))
		for i, msg := range msgs {
			sctx, span := p.tr.Tracer().Start(eventmsg.ContextWithTrace(ctx, msg), msg.Topic+" publish",
				trace.WithSpanKind(trace.SpanKindProducer),
				trace.WithAttributes(
					attribute.String("messaging.system", "eventmart"),
					attribute.String("messaging.operation.type", "publish"),
					attribute.String("messaging.destination.name", msg.Topic),
					attribute.String("messaging.message.id", msg.Header(eventmsg.HeaderEventID)),
					attribute.String("eventmart.event_type", msg.Header(eventmsg.HeaderEventType)),
					attribute.String("eventmart.correlation_id", msg.Header(eventmsg.HeaderCorrelationID)),
					attribute.String("eventmart.service", p.service),
				))
			eventmsg.SetTrace(sctx, msg)
			spans[i] = span
		}
	}
	err := p.pub.Publish(ctx, msgs...)
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	p.m.publishTime.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	for i, msg := range msgs {
		c := p.m.publishedOf(msg)
		if err != nil {
			c.err.Inc()
		} else {
			c.ok.Inc()
		}
		if spans != nil {
			if err != nil {
				spans[i].RecordError(err)
				spans[i].SetStatus(codes.Error, "publish failed")
			} else {
				spans[i].SetAttributes(attribute.Int("messaging.destination.partition.id", int(msg.Partition)),
					attribute.Int64("messaging.kafka.offset", msg.Offset))
			}
			spans[i].End()
		}
	}
	return err
}
