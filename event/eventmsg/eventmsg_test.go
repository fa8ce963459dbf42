package eventmsg_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
)

func TestEnvelopeMessageCarriesHeadersAndTrace(t *testing.T) {
	e, err := event.New("payment-service", event.FromRequest("corr-1", event.Metadata{}), &event.PaymentProcessed{OrderID: "o-9", PaymentID: "p"})
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)

	m, err := eventmsg.Encode(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if m.Topic != "payment-events" || string(m.Key) != "o-9" {
		t.Errorf("topic/key = %s/%s", m.Topic, m.Key)
	}
	for h, want := range map[string]string{
		"eventType": "PaymentProcessed", "eventVersion": "v1", "eventId": e.EventID, "correlationId": "corr-1",
		"causationId": "corr-1", "source": "payment-service",
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	} {
		if got := m.Header(h); got != want {
			t.Errorf("header %s = %q, want %q", h, got, want)
		}
	}
	back := trace.SpanContextFromContext(eventmsg.ContextWithTrace(context.Background(), m))
	if back.TraceID() != tid || back.SpanID() != sid {
		t.Errorf("extracted trace %s/%s", back.TraceID(), back.SpanID())
	}
	got, err := eventmsg.Decode(m)
	if err != nil {
		t.Fatal(err)
	}
	if got.EventID != e.EventID || got.Key != "o-9" {
		t.Errorf("decoded %+v", got)
	}

	plain, _ := eventmsg.Encode(context.Background(), e)
	if plain.Header("traceparent") != "" {
		t.Error("traceparent set without a span")
	}
}
