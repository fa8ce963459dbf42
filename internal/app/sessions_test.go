package app

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/bus/embedded"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/auth"
)

// A topic deleted and created again starts its offsets over: the watcher,
// whose positions are then past the end, reads it from the start instead
// of waiting there for ever.
func TestSessionWatcherRereadsATopicWhoseOffsetsStartedOver(t *testing.T) {
	ctx := context.Background()
	b := userEventsLog(t)
	tokens, err := auth.NewTokens(bytes.Repeat([]byte("k"), 32), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	w := &sessionWatcher{bus: b, tokens: tokens, log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now}
	if err := w.catchUp(ctx); err != nil {
		t.Fatal(err)
	}
	for p := range w.next {
		w.next[p] = 1000 // as after a topic with more records was deleted
	}
	publishLogout(t, b, "u1", "s1")
	if err := w.poll(ctx); err != nil {
		t.Fatal(err)
	}
	if !tokens.Revocations().Revoked(auth.Identity{UserID: "u1", SessionID: "s1"}) {
		t.Error("the revocation in the started-over topic was not read")
	}
}

// unreachableFirst is a bus.Reader whose first failures calls fail, as a
// Kafka cluster does while a dead broker's partitions have no leader yet.
type unreachableFirst struct {
	bus.Reader
	failures int
}

func (u *unreachableFirst) OffsetAfter(ctx context.Context, topic string, t time.Time) ([]bus.PartitionOffsets, error) {
	if u.failures > 0 {
		u.failures--
		return nil, errors.New("unable to dial: connection refused")
	}
	return u.Reader.OffsetAfter(ctx, topic, t)
}

// A process starting while the bus is briefly unreachable keeps trying to
// catch up with the ended sessions instead of failing its start, and then
// knows the revocations already on the topic.
func TestSessionWatcherCatchUpRetriesABrieflyUnreachableBus(t *testing.T) {
	ctx := context.Background()
	b := userEventsLog(t)
	publishLogout(t, b, "u1", "s1")
	tokens, err := auth.NewTokens(bytes.Repeat([]byte("k"), 32), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	flaky := &unreachableFirst{Reader: b, failures: 2}
	w := &sessionWatcher{bus: flaky, tokens: tokens, log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now}
	if err := w.catchUpRetrying(ctx); err != nil {
		t.Fatalf("catch-up: %v", err)
	}
	if flaky.failures != 0 {
		t.Fatalf("%d failures left: the catch-up did not go through them", flaky.failures)
	}
	if !tokens.Revocations().Revoked(auth.Identity{UserID: "u1", SessionID: "s1"}) {
		t.Error("the revocation on the topic was not read after the bus came back")
	}
}

// userEventsLog is an embedded log with user-events (two partitions).
func userEventsLog(t *testing.T) *embedded.Bus {
	t.Helper()
	b, err := embedded.Open(filepath.Join(t.TempDir(), "log.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if _, err := b.EnsureTopics(context.Background(), []bus.TopicConfig{{Name: userTopic, Partitions: 2}}); err != nil {
		t.Fatal(err)
	}
	return b
}

// publishLogout publishes the SessionsRevoked of a logout of user's session.
func publishLogout(t *testing.T, b bus.Publisher, user, session string) {
	t.Helper()
	ctx := context.Background()
	e, err := event.New("user-service", event.Origin{}, &event.SessionsRevoked{UserID: user, SessionID: session, RevokedAt: time.Now(), Reason: "logout"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := eventmsg.Encode(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
}

// A revocation published on any instance reaches a running watcher by
// following the topic: it is applied as soon as it is on the log, with no
// poll in between (only the follower signals applied).
func TestSessionWatcherFollowsRevocationsAsPublished(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	b := userEventsLog(t)
	publishLogout(t, b, "u1", "s1") // before start: read by the catch-up
	tokens, err := auth.NewTokens(bytes.Repeat([]byte("k"), 32), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	w := &sessionWatcher{bus: b, tokens: tokens, log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now, applied: make(chan struct{}, 1)}
	if err := w.catchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if !tokens.Revocations().Revoked(auth.Identity{UserID: "u1", SessionID: "s1"}) {
		t.Fatal("the catch-up did not apply the revocation already on the topic")
	}
	done := make(chan error, 1)
	go func() { done <- w.run(ctx) }()
	publishLogout(t, b, "u2", "s2")
	timeout := time.After(30 * time.Second)
	for !tokens.Revocations().Revoked(auth.Identity{UserID: "u2", SessionID: "s2"}) {
		select {
		case <-w.applied:
		case <-timeout:
			t.Fatal("the revocation published while running was not applied")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run returned %v after cancel", err)
	}
}
