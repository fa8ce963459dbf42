package inbox_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/bus/embedded"
	"github.com/eventmart/eventmart/internal/inbox"
)

// ConsumedUntil stands at the first record the group has not committed,
// on whichever partition it lags most, and at now once it has read all.
func TestConsumedUntilFollowsTheCommittedOffsets(t *testing.T) {
	ctx := context.Background()
	b, err := embedded.Open(filepath.Join(t.TempDir(), "eventlog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.EnsureTopics(ctx, []bus.TopicConfig{{Name: "t", Partitions: 2}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(time.Hour) // later than every record, to tell the two apart
	clock := func() time.Time { return now }
	until := func() time.Time {
		t.Helper()
		u, err := inbox.ConsumedUntil(ctx, b, "g", []string{"t"}, clock)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	if u := until(); !u.Equal(now) {
		t.Fatalf("empty topic: %v, want now", u)
	}
	publish := func(key string) *bus.Message {
		t.Helper()
		m := &bus.Message{Topic: "t", Key: []byte(key), Value: []byte(key)}
		if err := b.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	first := publish("a")
	var other *bus.Message // a later record on the other partition
	for i := 0; other == nil; i++ {
		if m := publish(string(rune('b' + i))); m.Partition != first.Partition {
			other = m
		}
	}
	if u := until(); !u.Equal(first.Timestamp) {
		t.Fatalf("nothing consumed: %v, want the first record's %v", u, first.Timestamp)
	}

	// The group reads everything: the watermark is now.
	subCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- b.Subscribe(subCtx, "g", []string{"t"}, func(context.Context, []*bus.Message) error { return nil })
	}()
	waitUntil(t, "the group to commit everything", func() bool { return until().Equal(now) })
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A record the group has not read holds it back to that record.
	late := publish(string(other.Key))
	if u := until(); !u.Equal(late.Timestamp) {
		t.Fatalf("one record unread: %v, want its %v", u, late.Timestamp)
	}
}

// waitUntil polls cond until it holds, for up to 10 seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
