package inbox_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/internal/inbox"
)

func TestParseFailureInjection(t *testing.T) {
	for _, bad := range []string{"ProductCreated", ":ProductCreated", "test:NoSuchEvent", "test:ProductCreated,shipping"} {
		if _, err := inbox.ParseFailureInjection(bad); err == nil {
			t.Errorf("%q parsed, want an error", bad)
		}
	}
	f, err := inbox.ParseFailureInjection("")
	if err != nil || f != nil || f.For("test") != nil {
		t.Errorf(`"" = %v, %v; want no failures`, f, err)
	}
	f, err = inbox.ParseFailureInjection(" shipping:PaymentProcessed, test:ProductCreated,")
	if err != nil {
		t.Fatal(err)
	}
	if f.For("test") == nil || f.For("shipping") == nil || f.For("catalog") != nil {
		t.Errorf("failures by service wrong: test %v, shipping %v, catalog %v", f.For("test"), f.For("shipping"), f.For("catalog"))
	}
}

// TestInjectedFailureFailsTheHandlerUntilStopped: the named handler fails
// like a broken one (retried in place, its effects not applied) until the
// injection stops.
func TestInjectedFailureFailsTheHandlerUntilStopped(t *testing.T) {
	f := newFixture(t)
	inj, err := inbox.ParseFailureInjection("test:ProductCreated,other:ProductCreated")
	if err != nil {
		t.Fatal(err)
	}
	f.c.InjectedFailures = inj.For("test")
	ctx := context.Background()
	batch := []*bus.Message{f.msg("p")}
	err = f.c.Handle(ctx, batch)
	if err == nil || !strings.Contains(err.Error(), "injected failure of test:ProductCreated") {
		t.Fatalf("Handle = %v, want the injected failure", err)
	}
	var he *inbox.HandlerError
	if !errors.As(err, &he) || f.effects("p") != 0 || f.c.Stats().Retried != 1 {
		t.Fatalf("want a handler error retried in place, without effects: %v, effects %d, %+v", err, f.effects("p"), f.c.Stats())
	}
	inj.Stop()
	if err := f.c.Handle(ctx, batch); err != nil || f.effects("p") != 1 {
		t.Fatalf("after Stop: %v, effects %d", err, f.effects("p"))
	}
}
