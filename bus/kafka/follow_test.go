package kafka_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/testenv"
)

// TestFollowEndsWhenItsTopicIsDeleted: a follower whose topic is deleted
// and created again returns ErrUnknownTopic instead of fetching the old
// topic id until its next metadata refresh, a minute later; following
// again reads the topic created anew.
func TestFollowEndsWhenItsTopicIsDeleted(t *testing.T) {
	b := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.Kafka(t)...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topic := "follow-deleted-" + event.NewID()
	ensure := func() {
		t.Helper()
		if _, err := b.EnsureTopics(ctx, []bus.TopicConfig{{Name: topic, Partitions: 2, Retention: time.Hour}}); err != nil {
			t.Fatal(err)
		}
	}
	ensure()
	defer adm.DeleteTopics(context.Background(), topic)

	since := time.Now().Add(-time.Minute)
	got := make(chan string, 16)
	follow := func() <-chan error {
		done := make(chan error, 1)
		go func() {
			done <- b.Follow(ctx, topic, since, func(ms []*bus.Message) {
				for _, m := range ms {
					got <- string(m.Value)
				}
			})
		}()
		return done
	}
	done := follow()
	if err := b.Publish(ctx, &bus.Message{Topic: topic, Key: []byte("k"), Value: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != "before" {
			t.Fatalf("followed %q, want before", v)
		}
	case err := <-done:
		t.Fatalf("Follow returned %v before its topic was deleted", err)
	case <-ctx.Done():
		t.Fatal("the message published was not followed")
	}
	if _, err := adm.DeleteTopics(ctx, topic); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, bus.ErrUnknownTopic) {
			t.Fatalf("Follow of a deleted topic returned %v, want ErrUnknownTopic", err)
		}
	case <-ctx.Done():
		t.Fatal("Follow did not return after its topic was deleted")
	}
	ensure()
	done = follow()
	// Written by another client: the bus's producer, like the follower,
	// knows the deleted topic's id until its metadata is refreshed.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != "after" {
			t.Fatalf("followed %q from the topic created anew, want after", v)
		}
	case err := <-done:
		t.Fatalf("Follow of the topic created anew returned %v", err)
	case <-ctx.Done():
		t.Fatal("the topic created anew was not followed")
	}
	cancel()
}
