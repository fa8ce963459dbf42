package inbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/internal/deadletter"
	"github.com/eventmart/eventmart/internal/inbox"
)

// runRetries runs f's RunRetries with poll until the test ends, on the
// real clock.
func runRetries(t *testing.T, f *fixture, poll time.Duration) {
	f.c.Now = nil
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.c.RunRetries(ctx, poll) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunRetries = %v", err)
		}
	})
}

// eventually fails the test if cond does not hold within 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRunRetriesSleepsUntilDueOrWoken: with an hour between polls,
// RunRetries takes up a parked event when it falls due and a redriven one
// at once (the redrive wakes it), and sleeps while
// nothing is due; an event redriven without waking it (through
// another instance) is taken up at the next poll. On SQLite and
// PostgreSQL.
func TestRunRetriesSleepsUntilDueOrWoken(t *testing.T) {
	for _, dbName := range []string{"sqlite", "postgres"} {
		t.Run(dbName, func(t *testing.T) {
			newF := func() *fixture {
				if dbName == "postgres" {
					return newFixtureOn(t, postgresDB(t))
				}
				return newFixture(t)
			}
			f := newF()
			ctx := context.Background()
			const delay = 300 * time.Millisecond
			f.c.RetryDelays = []time.Duration{delay}
			before := f.c.DB.Stats().Reads
			runRetries(t, f, time.Hour)
			eventually(t, "the first look at the queue", func() bool { return f.c.DB.Stats().Reads > before })

			// Parked after its in-place retries: retried when due.
			flaky := f.msg("p-flaky")
			f.mu.Lock()
			f.fail["p-flaky"] = errors.New("warehouse API timeout")
			f.mu.Unlock()
			// Taken before the call that parks it: its due time counts from
			// a moment after this, however long the call then takes.
			var parked time.Time
			for i := 1; i <= inbox.DefaultInPlaceRetries; i++ {
				if i == inbox.DefaultInPlaceRetries {
					parked = time.Now()
				}
				f.c.Handle(ctx, []*bus.Message{flaky})
			}
			if s := f.c.Stats(); s.Parked != 1 {
				t.Fatalf("stats %+v, want the record parked", s)
			}
			f.mu.Lock()
			delete(f.fail, "p-flaky")
			f.mu.Unlock()
			eventually(t, "the parked event retried", func() bool { return f.effects("p-flaky") == 1 })
			if waited := time.Since(parked); waited < delay-50*time.Millisecond {
				t.Errorf("retried after %s, before its delay of %s", waited, delay)
			}

			// Dead-lettered, fixed and redriven: retried at once.
			bad := f.msg("p-bad")
			f.mu.Lock()
			f.fail["p-bad"] = inbox.Permanent(errors.New("sku is empty"))
			f.mu.Unlock()
			if err := f.c.Handle(ctx, []*bus.Message{bad}); err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			delete(f.fail, "p-bad")
			f.mu.Unlock()
			if n, err := f.c.DeadLetters().Redrive(ctx, nil); err != nil || n != 1 {
				t.Fatalf("Redrive = %d, %v", n, err)
			}
			eventually(t, "the redriven event retried", func() bool { return f.effects("p-bad") == 1 })

			// Redriven elsewhere (no wake here): the next poll finds it.
			g := newF()
			g.c.Group = "other-service"
			runRetries(t, g, 200*time.Millisecond)
			g.mu.Lock()
			g.fail["p-elsewhere"] = inbox.Permanent(errors.New("sku is empty"))
			g.mu.Unlock()
			if err := g.c.Handle(ctx, []*bus.Message{g.msg("p-elsewhere")}); err != nil {
				t.Fatal(err)
			}
			g.mu.Lock()
			delete(g.fail, "p-elsewhere")
			g.mu.Unlock()
			elsewhere := &deadletter.Store{DB: g.c.DB, Group: g.c.Group}
			if n, err := elsewhere.Redrive(ctx, nil); err != nil || n != 1 {
				t.Fatalf("Redrive elsewhere = %d, %v", n, err)
			}
			eventually(t, "the event redriven elsewhere retried at the next poll", func() bool { return g.effects("p-elsewhere") == 1 })
		})
	}
}
