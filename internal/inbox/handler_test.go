package inbox_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/sqldb"
)

func TestOnTypesTheHandler(t *testing.T) {
	var got *event.PaymentProcessed
	h := inbox.On(func(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p *event.PaymentProcessed) error {
		got = p
		return nil
	})
	if h.Type != "PaymentProcessed" {
		t.Fatalf("Type = %q, want PaymentProcessed", h.Type)
	}
	want := &event.PaymentProcessed{OrderID: "o-1"}
	if err := h.Func(context.Background(), nil, &event.Envelope{}, want); err != nil || got != want {
		t.Fatalf("Func = %v, handler got %p, want %p", err, got, want)
	}
	// A payload of another type is an error, not a panic.
	if err := h.Func(context.Background(), nil, &event.Envelope{}, &event.PaymentFailed{}); err == nil {
		t.Fatal("Func accepted a PaymentFailed")
	}
}

// lookalike claims an event type of the catalog without being its payload.
type lookalike struct{}

func (*lookalike) EventType() event.Type { return "PaymentProcessed" }

func TestByType(t *testing.T) {
	noop := func(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p event.Payload) error { return nil }
	processed := inbox.On(func(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p *event.PaymentProcessed) error {
		return nil
	})
	failed := inbox.On(func(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p *event.PaymentFailed) error { return nil })

	m, err := inbox.ByType([]inbox.Handler{processed, failed, {Type: "PaymentRefunded", Func: noop}})
	if err != nil || len(m) != 3 || m["PaymentProcessed"] == nil || m["PaymentFailed"] == nil || m["PaymentRefunded"] == nil {
		t.Fatalf("ByType = %v, %v; want the three types", m, err)
	}
	if m, err := inbox.ByType(nil); err != nil || len(m) != 0 {
		t.Fatalf("ByType(nil) = %v, %v", m, err)
	}
	for name, c := range map[string]struct {
		hs   []inbox.Handler
		want string
	}{
		"twice":     {[]inbox.Handler{processed, failed, processed}, "PaymentProcessed handled twice"},
		"unknown":   {[]inbox.Handler{{Type: "PaymentProcesed", Func: noop}}, `"PaymentProcesed"`},
		"nil":       {[]inbox.Handler{{Type: "PaymentFailed"}}, "PaymentFailed is nil"},
		"lookalike": {[]inbox.Handler{inbox.On(func(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p *lookalike) error { return nil })}, "the catalog decodes *event.PaymentProcessed"},
	} {
		m, err := inbox.ByType(c.hs)
		if err == nil || m != nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: ByType = %v, %v; want an error saying %q", name, m, err, c.want)
		}
		if name == "unknown" && !errors.Is(err, event.ErrUnknownType) {
			t.Errorf("unknown: %v is not ErrUnknownType", err)
		}
	}
}
