package kafka_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/bus/kafka"
)

// A static member (InstanceID) that stops and comes back with the same id
// gets its partitions back at once, well within the session timeout it
// would otherwise have to wait out, and reads on from its group's offsets.
func TestStaticMemberRejoins(t *testing.T) {
	admin := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic := fmt.Sprintf("kafka-test-static-%d", time.Now().UnixNano())
	if _, err := admin.EnsureTopics(ctx, []bus.TopicConfig{{Name: topic, Partitions: 4, Retention: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	publish := func(from, to int) {
		var msgs []*bus.Message
		for i := from; i < to; i++ {
			msgs = append(msgs, &bus.Message{Topic: topic, Key: []byte(fmt.Sprint("k", i)), Value: []byte(fmt.Sprint(i))})
		}
		if err := admin.Publish(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	consume := func(until func() bool) time.Duration {
		t.Helper()
		b := open(t, kafka.InstanceID("static-1"), kafka.SessionTimeout(30*time.Second))
		sctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			done <- b.Subscribe(sctx, "static-group-"+topic, []string{topic}, func(_ context.Context, msgs []*bus.Message) error {
				mu.Lock()
				defer mu.Unlock()
				for _, m := range msgs {
					seen[string(m.Value)]++
				}
				return nil
			})
		}()
		for !until() {
			if time.Since(start) > 60*time.Second {
				t.Fatal("timed out consuming")
			}
			time.Sleep(20 * time.Millisecond)
		}
		took := time.Since(start)
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return took
	}
	has := func(from, to int) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for i := from; i < to; i++ {
				if seen[fmt.Sprint(i)] == 0 {
					return false
				}
			}
			return true
		}
	}
	publish(0, 20)
	consume(has(0, 20))
	publish(20, 40)
	if took := consume(has(20, 40)); took > 15*time.Second {
		t.Errorf("the restarted static member took %s to get its partitions back (session timeout 30s)", took)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < 40; i++ {
		if seen[fmt.Sprint(i)] != 1 {
			t.Errorf("message %d handled %d times", i, seen[fmt.Sprint(i)])
		}
	}
}
