package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/internal/inbox"
)

// flakySubscriber answers Subscribe with the errors in errs, one a call,
// then runs (signalling running) until ctx ends, as a consumer does.
type flakySubscriber struct {
	errs    []error
	calls   int
	running chan struct{}
}

func (f *flakySubscriber) Subscribe(ctx context.Context, group string, topics []string, h bus.Handler, opts ...bus.SubscribeOption) error {
	f.calls++
	if f.calls <= len(f.errs) {
		return f.errs[f.calls-1]
	}
	close(f.running)
	<-ctx.Done()
	return nil
}

func TestSubscribeWaitsForTopicsToBecomeVisible(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := &inbox.Consumer{Group: "g"}
	unknown := fmt.Errorf("kafka: subscribe to order-events: %w", bus.ErrUnknownTopic)

	// Unknown twice, then the consumer runs until cancelled.
	f := &flakySubscriber{errs: []error{unknown, unknown}, running: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- subscribe(ctx, f, c, log) }()
	<-f.running
	cancel()
	if err := <-done; err != nil || f.calls != 3 {
		t.Fatalf("subscribe = %v after %d calls; want nil after 3", err, f.calls)
	}

	// Any other error stops it at once.
	boom := errors.New("boom")
	f = &flakySubscriber{errs: []error{boom}, running: make(chan struct{})}
	if err := subscribe(context.Background(), f, c, log); !errors.Is(err, boom) || f.calls != 1 {
		t.Fatalf("subscribe = %v after %d calls; want boom after 1", err, f.calls)
	}
}

// A job that stops with an error marks the app failed, stops the others,
// and is what Close returns.
func TestAJobThatStopsFailsTheApp(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	a := &App{cancel: cancel, failed: make(chan struct{})}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	other := make(chan struct{})
	a.goRun(log, "leased work", func() error { <-ctx.Done(); close(other); return nil })
	a.goRun(log, "consumer", func() error { return errors.New("boom") })
	<-a.Failed()
	<-other // the other job was stopped too
	if err := a.Close(); err == nil || !strings.Contains(err.Error(), "consumer: boom") {
		t.Fatalf("Close = %v, want the consumer's error", err)
	}
}
