package eventmsg_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/eventmart/eventmart/bus"
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

// paymentProcessed is the record of a PaymentProcessed of order orderID,
// at partition 3, offset 42.
func paymentProcessed(t *testing.T, orderID string) *bus.Message {
	t.Helper()
	e, err := event.New("payment-service", event.FromRequest("corr-1", event.Metadata{}), &event.PaymentProcessed{OrderID: orderID, PaymentID: "p"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := eventmsg.Encode(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	m.Partition, m.Offset = 3, 42
	return m
}

// A message with a memo (one the bus shares between readers) is decoded
// once, every reader getting the same envelope, also when they decode it
// at the same time; a copy of it, changed or not, and a message without a
// memo are decoded for each call.
func TestDecodeSharedDecodesAMessageWithAMemoOnce(t *testing.T) {
	encode := func(orderID string) *bus.Message { return paymentProcessed(t, orderID) }
	m := encode("o-1")
	bus.NewMemo(m)
	got := make([]*event.Envelope, 8)
	var wg sync.WaitGroup
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := eventmsg.DecodeShared(m)
			if err != nil {
				t.Error(err)
			}
			got[i] = e
		}()
	}
	wg.Wait()
	for _, e := range got {
		if e != got[0] {
			t.Fatal("readers of one message with a memo got different envelopes")
		}
	}
	if got[0].Key != "o-1" || got[0].Offset != 42 || got[0].EventType != "PaymentProcessed" {
		t.Fatalf("shared envelope = %+v", got[0])
	}

	other := encode("o-2")
	cp := *m
	cp.Key, cp.Value = other.Key, other.Value // a copy keeps the memo pointer, not its use
	e, err := eventmsg.DecodeShared(&cp)
	if err != nil || e == got[0] || e.Key != "o-2" {
		t.Fatalf("DecodeShared of a changed copy = %+v, %v; want its own envelope for o-2", e, err)
	}
	plain := encode("o-3")
	a, _ := eventmsg.DecodeShared(plain)
	b, _ := eventmsg.DecodeShared(plain)
	if a == nil || a == b {
		t.Fatal("a message without a memo was not decoded for each call")
	}
	bad := &bus.Message{Value: []byte("not json")}
	bus.NewMemo(bad)
	if _, err := eventmsg.DecodeShared(bad); err == nil {
		t.Fatal("an undecodable message with a memo decoded")
	}
	if _, err := eventmsg.DecodeShared(bad); err == nil {
		t.Fatal("an undecodable message with a memo decoded the second time")
	}
}

// DecodeRecord shares the payload too: decoded once for every reader of a
// message with a memo, even concurrently, and for each reader otherwise;
// a payload that does not decode fails every reader.
func TestDecodeRecordSharesThePayloadOfAMessageWithAMemo(t *testing.T) {
	encode := func(orderID string) *bus.Message { return paymentProcessed(t, orderID) }
	m := encode("o-1")
	bus.NewMemo(m)
	got := make([]event.Payload, 8)
	var wg sync.WaitGroup
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := eventmsg.DecodeRecord(m)
			if err != nil {
				t.Error(err)
				return
			}
			if got[i], err = r.Payload(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, p := range got {
		if p != got[0] {
			t.Fatal("readers of one message with a memo got different payloads")
		}
	}
	if pp, ok := got[0].(*event.PaymentProcessed); !ok || pp.OrderID != "o-1" {
		t.Fatalf("shared payload = %#v", got[0])
	}
	if e, _ := eventmsg.DecodeShared(m); e == nil || e != mustRecord(t, m).Envelope {
		t.Fatal("DecodeShared and DecodeRecord gave different envelopes of one message")
	}

	plain := encode("o-2")
	a, err := mustRecord(t, plain).Payload()
	if err != nil {
		t.Fatal(err)
	}
	b, err := mustRecord(t, plain).Payload()
	if err != nil {
		t.Fatal(err)
	}
	if a == b || a.(*event.PaymentProcessed).OrderID != "o-2" {
		t.Fatal("the payload of a message without a memo was not decoded for each reader")
	}

	bad := encode("o-3") // its data breaks the schema: orderId must be a string
	bad.Value = []byte(strings.Replace(string(bad.Value), `"orderId":"o-3"`, `"orderId":3`, 1))
	bus.NewMemo(bad)
	for i := range 2 {
		if _, err := mustRecord(t, bad).Payload(); !errors.Is(err, event.ErrInvalidPayload) {
			t.Fatalf("reader %d: payload of a bad record = %v, want ErrInvalidPayload", i, err)
		}
	}
}

func mustRecord(t *testing.T, m *bus.Message) *eventmsg.Record {
	t.Helper()
	r, err := eventmsg.DecodeRecord(m)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
