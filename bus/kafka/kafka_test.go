package kafka_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/bus/bustest"
	"github.com/eventmart/eventmart/bus/kafka"
	"github.com/eventmart/eventmart/internal/testenv"
)

// open returns a bus on the test cluster, closed when t ends.
func open(t testing.TB, opts ...kafka.Option) *kafka.Bus {
	t.Helper()
	brokers := testenv.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := kafka.Open(ctx, brokers, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil && !errors.Is(err, bus.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func TestConformance(t *testing.T) {
	testenv.Kafka(t) // skip before starting the subtests
	// A bus per test, as services each hold their own: it exercises Open
	// and Close, and tests share only the broker.
	bustest.Run(t, func(t *testing.T) bus.Bus { return open(t) })
}

func TestParseURL(t *testing.T) {
	good := map[string][]string{
		"kafka://127.0.0.1:9092":                   {"127.0.0.1:9092"},
		"kafka://a:1,b.example:9093":               {"a:1", "b.example:9093"},
		"kafka://[::1]:9092,broker-2:19092":        {"[::1]:9092", "broker-2:19092"},
		"kafka://k1.internal:9092,k2:9092,k3:9092": {"k1.internal:9092", "k2:9092", "k3:9092"},
	}
	for u, want := range good {
		got, err := kafka.ParseURL(u)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParseURL(%q) = %q, %v; want %q", u, got, err, want)
		}
	}
	for _, u := range []string{
		"",
		"kafka://",
		"127.0.0.1:9092",        // no scheme
		"http://127.0.0.1:9092", // wrong scheme
		"kafka://127.0.0.1",     // no port
		"kafka://127.0.0.1:",    // empty port
		"kafka://:9092",         // no host
		"kafka://h:0",           // port out of range
		"kafka://h:65536",       // port out of range
		"kafka://h:port",        // port not a number
		"kafka://a:1,",          // empty broker
		"kafka://a:1,,b:2",      // empty broker
		"kafka://a:1/path",      // not a broker list
	} {
		if got, err := kafka.ParseURL(u); err == nil {
			t.Errorf("ParseURL(%q) = %q, want an error", u, got)
		}
	}
}

func TestClosedBusFails(t *testing.T) {
	b := open(t)
	ctx := context.Background()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	checks := map[string]error{
		"Close":     b.Close(),
		"Publish":   b.Publish(ctx, &bus.Message{Topic: "t", Value: []byte("v")}),
		"Subscribe": b.Subscribe(ctx, "g", []string{"t"}, func(context.Context, []*bus.Message) error { return nil }),
	}
	_, checks["Read"] = b.Read(ctx, "t", 0, 0, 1)
	_, checks["Offsets"] = b.Offsets(ctx, "t")
	_, checks["EnsureTopics"] = b.EnsureTopics(ctx, []bus.TopicConfig{{Name: "t", Partitions: 1}})
	_, checks["Topics"] = b.Topics(ctx)
	for op, err := range checks {
		if !errors.Is(err, bus.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", op, err)
		}
	}
}

// The conformance suite checks Publish and Offsets; the other calls that
// name a topic fail the same way, and Publish fails fast.
func TestUnknownTopicEverywhere(t *testing.T) {
	b := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const missing = "kafka-test-missing-topic"
	start := time.Now()
	err := b.Publish(ctx, &bus.Message{Topic: missing, Key: []byte("k"), Value: []byte("v")})
	if !errors.Is(err, bus.ErrUnknownTopic) {
		t.Errorf("Publish = %v, want ErrUnknownTopic", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Publish to a missing topic took %v to fail", d)
	}
	err = b.Subscribe(ctx, "g", []string{missing}, func(context.Context, []*bus.Message) error { return nil })
	if !errors.Is(err, bus.ErrUnknownTopic) {
		t.Errorf("Subscribe = %v, want ErrUnknownTopic", err)
	}
	if _, err := b.Read(ctx, missing, 0, 0, 10); !errors.Is(err, bus.ErrUnknownTopic) {
		t.Errorf("Read = %v, want ErrUnknownTopic", err)
	}
	if _, err := b.OffsetAfter(ctx, missing, time.Now()); !errors.Is(err, bus.ErrUnknownTopic) {
		t.Errorf("OffsetAfter = %v, want ErrUnknownTopic", err)
	}
}
