package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
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
	newBus := func(t *testing.T) bus.Bus { return open(t) }
	bustest.Run(t, newBus, newBus)
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

// The conformance suite checks that every call naming a missing topic
// fails with ErrUnknownTopic; on Kafka, Publish must also fail fast rather
// than wait for the topic to appear until its context ends.
func TestPublishToAMissingTopicFailsFast(t *testing.T) {
	b := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err := b.Publish(ctx, &bus.Message{Topic: "kafka-test-missing-topic", Key: []byte("k"), Value: []byte("v")})
	if !errors.Is(err, bus.ErrUnknownTopic) {
		t.Errorf("Publish = %v, want ErrUnknownTopic", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Publish to a missing topic took %v to fail", d)
	}
}

// Every codec Compression names publishes batches a reader gets back as
// they were; another name fails Open.
func TestCompression(t *testing.T) {
	testenv.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, codec := range []string{"none", "snappy", "lz4", "zstd", "gzip"} {
		t.Run(codec, func(t *testing.T) {
			b := open(t, kafka.Compression(codec))
			topic := "kafka-test-compression-" + codec + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			if _, err := b.EnsureTopics(ctx, []bus.TopicConfig{{Name: topic, Partitions: 1, Retention: time.Hour}}); err != nil {
				t.Fatal(err)
			}
			var sent []*bus.Message
			for i := range 20 {
				v := strings.Repeat(fmt.Sprintf(`{"n":%d,"text":"compressible"}`, i), 20)
				sent = append(sent, &bus.Message{Topic: topic, Key: []byte("k"), Value: []byte(v)})
			}
			if err := b.Publish(ctx, sent...); err != nil {
				t.Fatal(err)
			}
			got, err := b.Read(ctx, topic, 0, 0, 100)
			if err != nil || len(got) != len(sent) {
				t.Fatalf("Read = %d messages, %v; want %d", len(got), err, len(sent))
			}
			for i := range got {
				if string(got[i].Value) != string(sent[i].Value) {
					t.Fatalf("message %d: got %.40q…, want %.40q…", i, got[i].Value, sent[i].Value)
				}
			}
		})
	}
	if _, err := kafka.Open(ctx, testenv.Kafka(t), kafka.Compression("brotli")); err == nil || !strings.Contains(err.Error(), "brotli") {
		t.Errorf("Open with compression brotli: %v, want an error naming it", err)
	}
}
