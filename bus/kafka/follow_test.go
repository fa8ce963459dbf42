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

// TestFollowTakesUpAddedPartitions: a partition added to the topic while
// it is followed is followed from its start, once the follower looks for
// new partitions (every minute), so a message published to it before that
// is not missed.
func TestFollowTakesUpAddedPartitions(t *testing.T) {
	t.Parallel()
	b := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	topic := "follow-grown-" + event.NewID()
	grow := func(n int32) {
		t.Helper()
		if _, err := b.EnsureTopics(ctx, []bus.TopicConfig{{Name: topic, Partitions: n, Retention: time.Hour}}); err != nil {
			t.Fatal(err)
		}
	}
	grow(1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.Kafka(t)...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	defer kadm.NewClient(cl).DeleteTopics(context.Background(), topic)

	got := make(chan *bus.Message, 16)
	done := make(chan error, 1)
	go func() {
		done <- b.Follow(ctx, topic, time.Now(), func(ms []*bus.Message) {
			for _, m := range ms {
				got <- m
			}
		})
	}()
	receive := func(want string) *bus.Message {
		t.Helper()
		select {
		case m := <-got:
			if string(m.Value) != want {
				t.Fatalf("followed %q, want %q", m.Value, want)
			}
			return m
		case err := <-done:
			t.Fatalf("Follow returned %v while waiting for %s", err, want)
		case <-ctx.Done():
			t.Fatalf("%s was not followed", want)
		}
		return nil
	}
	if err := b.Publish(ctx, &bus.Message{Topic: topic, Key: []byte("k"), Value: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	receive("first") // the follower has started
	grow(2)
	// Written by a client that has not produced to the topic yet, so
	// learns of the new partition (the bus's producer may still cache one).
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 1, Value: []byte("in the new partition")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if m := receive("in the new partition"); m.Partition != 1 {
		t.Fatalf("followed it from partition %d, want 1", m.Partition)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Follow returned %v after cancel, want nil", err)
	}
}
