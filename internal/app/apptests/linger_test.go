package apptests

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/eventmart/eventmart/analytics"
	"github.com/eventmart/eventmart/audit"
	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/bus/embedded"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/webhook"
)

// subscriptions is the real embedded log, noting the linger each group
// subscribes with.
type subscriptions struct {
	bus.Bus
	mu     sync.Mutex
	linger map[string]time.Duration
	seen   chan struct{} // closed and replaced on every subscription
}

func (s *subscriptions) Subscribe(ctx context.Context, group string, topics []string, h bus.Handler, opts ...bus.SubscribeOption) error {
	s.mu.Lock()
	s.linger[group] = bus.NewSubscribeConfig(opts...).Linger
	close(s.seen)
	s.seen = make(chan struct{})
	s.mu.Unlock()
	return s.Bus.Subscribe(ctx, group, topics, h, opts...)
}

// The groups no saga step waits on linger as their settings say (default
// or set); the saga's groups, and cart's, hand batches over at once.
func TestOffPathGroupsLingerAsSetSagaGroupsDoNot(t *testing.T) {
	log, err := embedded.Open(filepath.Join(t.TempDir(), "eventlog.db"))
	if err != nil {
		t.Fatal(err)
	}
	b := &subscriptions{Bus: log, linger: map[string]time.Duration{}, seen: make(chan struct{})}
	apptest.Start(t, append(all(), audit.Def(), webhook.Def(), analytics.Def()), apptest.OnBus(b),
		apptest.Settings(map[string]string{"EVENTMART_WEBHOOK_LINGER": "7ms", "EVENTMART_CATALOG_LINGER": "0s"}))
	want := map[string]time.Duration{
		"audit-service": 100 * time.Millisecond, "analytics-service": 100 * time.Millisecond,
		"notification-service": 100 * time.Millisecond, "webhook-service": 7 * time.Millisecond, "catalog-service": 0,
		"order-service": 0, "inventory-service": 0, "payment-service": 0, "shipping-service": 0, "cart-service": 0,
	}
	deadline := time.After(time.Minute)
	for {
		b.mu.Lock()
		missing := ""
		for g := range want {
			if _, ok := b.linger[g]; !ok {
				missing = g
			}
		}
		seen := b.seen
		b.mu.Unlock()
		if missing == "" {
			break
		}
		select {
		case <-seen:
		case <-deadline:
			t.Fatalf("group %s did not subscribe within a minute", missing)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for g, d := range want {
		if got := b.linger[g]; got != d {
			t.Errorf("group %s subscribed with linger %v, want %v", g, got, d)
		}
	}
}
