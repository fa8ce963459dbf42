//go:build unix

// Unix only for getrusage, the client's CPU time.

package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/internal/testenv"
)

// The benchmarks compare the bus with franz-go used directly, on the same
// broker, records and producer settings: what the abstraction costs.
//
//	EVENTMART_TEST_KAFKA=127.0.0.1:19092 go test ./bus/kafka -run '^$' -bench . -benchtime=20000x -count=3
//
// b.N is the number of records. Values are 1 KiB envelope-like JSON, keyed
// over benchKeys entity ids, with the six envelope headers. BenchmarkConsume
// includes joining and leaving the group, about 50 ms: at 20000 records
// that is nearly all of it, as the records arrive in one or two fetches;
// use -benchtime=1000000x for throughput. On a small machine shared with
// the broker, throughput swings from run to run: compare medians of several
// runs in separate processes, alternating which goes first, and the
// client's cpu-ns/record.
const (
	benchPartitions = 12
	benchKeys       = 1000
	benchValueSize  = 1024
	benchBatch      = 100 // records per Publish / ProduceSync call
	benchPublishers = 4   // concurrent publishing goroutines
	benchPool       = 2000
)

// BenchmarkPublish publishes b.N records in batches of benchBatch from
// benchPublishers goroutines, each batch waiting for its acknowledgement.
// Each batch's messages (or records) are made in the timed loop, from a
// pool of payloads, as an application makes them: pre-making all b.N would
// measure the garbage collector scanning them.
func BenchmarkPublish(b *testing.B) {
	bb := benchBus(b)
	b.Run("bus", func(b *testing.B) {
		topic := benchTopic(b, bb)
		pool := benchMessages(topic, benchPool)
		runtime.GC() // of the set-up's garbage, not to be collected on the clock
		b.ResetTimer()
		start, cpu := time.Now(), cpuTime()
		publishConcurrently(b, b.N, func(ctx context.Context, i, j int) error {
			msgs := make([]*bus.Message, j-i)
			for k := range msgs {
				m := *pool[(i+k)%len(pool)]
				msgs[k] = &m
			}
			return bb.Publish(ctx, msgs...)
		})
		reportThroughput(b, b.N, time.Since(start), cpuTime()-cpu)
	})
	b.Run("franz-go-raw", func(b *testing.B) {
		topic := benchTopic(b, bb)
		pool := toRecords(benchMessages(topic, benchPool))
		cl := benchClient(b, bb, producerOpts()...)
		runtime.GC() // of the set-up's garbage, not to be collected on the clock
		b.ResetTimer()
		start, cpu := time.Now(), cpuTime()
		publishConcurrently(b, b.N, func(ctx context.Context, i, j int) error {
			recs := make([]*kgo.Record, j-i)
			for k := range recs {
				p := pool[(i+k)%len(pool)]
				recs[k] = &kgo.Record{Topic: p.Topic, Key: p.Key, Value: p.Value, Headers: p.Headers}
			}
			return cl.ProduceSync(ctx, recs...).FirstErr()
		})
		reportThroughput(b, b.N, time.Since(start), cpuTime()-cpu)
	})
}

// BenchmarkConsume consumes b.N pre-produced records as a new consumer
// group until it has seen them all; the time includes joining the group.
func BenchmarkConsume(b *testing.B) {
	bb := benchBus(b)
	b.Run("bus", func(b *testing.B) {
		topic := benchTopic(b, bb)
		produce(b, bb, topic, b.N)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var seen atomic.Int64
		runtime.GC() // of the set-up's garbage, not to be collected on the clock
		b.ResetTimer()
		start, cpu := time.Now(), cpuTime()
		err := bb.Subscribe(ctx, "bench-"+topic, []string{topic}, func(_ context.Context, batch []*bus.Message) error {
			if seen.Add(int64(len(batch))) >= int64(b.N) {
				cancel()
			}
			return nil
		})
		d, cpu := time.Since(start), cpuTime()-cpu // includes leaving the group, as the raw client's Close below
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		reportThroughput(b, b.N, d, cpu)
	})
	b.Run("franz-go-raw", func(b *testing.B) {
		topic := benchTopic(b, bb)
		produce(b, bb, topic, b.N)
		runtime.GC() // of the set-up's garbage, not to be collected on the clock
		b.ResetTimer()
		start, cpu := time.Now(), cpuTime()
		cl, err := kgo.NewClient(slices.Concat(bb.base, []kgo.Opt{
			kgo.ConsumerGroup("bench-" + topic),
			kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		})...)
		if err != nil {
			b.Fatal(err)
		}
		for seen := 0; seen < b.N; {
			fs := cl.PollFetches(context.Background())
			if errs := fs.Errors(); len(errs) > 0 {
				b.Fatal(errs[0].Err)
			}
			seen += fs.NumRecords()
		}
		cl.Close()
		d, cpu := time.Since(start), cpuTime()-cpu
		b.StopTimer()
		reportThroughput(b, b.N, d, cpu)
	})
}

func reportThroughput(b *testing.B, n int, d time.Duration, cpu time.Duration) {
	b.ReportMetric(float64(n)/d.Seconds(), "records/s")
	b.ReportMetric(float64(n)*benchValueSize/1e6/d.Seconds(), "MB/s")
	// On a small machine the broker competes for the CPU, so throughput
	// swings between runs; the client's CPU time per record is the
	// steadier measure of what the bus adds.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/record")
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// publishConcurrently calls publish for consecutive batches [i, j) of n
// records from benchPublishers goroutines.
func publishConcurrently(b *testing.B, n int, publish func(ctx context.Context, i, j int) error) {
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, benchPublishers)
	for range benchPublishers {
		wg.Go(func() {
			for {
				i := int(next.Add(benchBatch)) - benchBatch
				if i >= n {
					return
				}
				if err := publish(ctx, i, min(i+benchBatch, n)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// produce writes n benchmark records to topic, outside the timer.
func produce(b *testing.B, bb *Bus, topic string, n int) {
	b.Helper()
	msgs := benchMessages(topic, n)
	for i := 0; i < n; i += 1000 {
		if err := bb.Publish(context.Background(), msgs[i:min(i+1000, n)]...); err != nil {
			b.Fatal(err)
		}
	}
}

func benchBus(b *testing.B) *Bus {
	brokers := testenv.Kafka(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bb, err := Open(ctx, brokers)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bb.Close() })
	// Warm the broker's JIT up, producing and fetching, so that the first
	// benchmark does not pay for it.
	topic := benchTopic(b, bb)
	produce(b, bb, topic, 50_000)
	cl, err := kgo.NewClient(slices.Concat(bb.base, []kgo.Opt{kgo.ConsumeTopics(topic)})...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	for seen := 0; seen < 50_000; {
		fs := cl.PollFetches(ctx)
		if errs := fs.Errors(); len(errs) > 0 {
			b.Fatal(errs[0].Err)
		}
		seen += fs.NumRecords()
	}
	return bb
}

// benchClient is a franz-go client with the bus's base options and opts.
func benchClient(b *testing.B, bb *Bus, opts ...kgo.Opt) *kgo.Client {
	cl, err := kgo.NewClient(slices.Concat(bb.base, opts)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	return cl
}

// benchTopic creates a fresh topic with benchPartitions partitions.
func benchTopic(b *testing.B, bb *Bus) string {
	b.Helper()
	r := make([]byte, 4)
	rand.Read(r)
	name := "bench-" + strings.ToLower(strings.ReplaceAll(b.Name(), "/", "-")) + "-" + hex.EncodeToString(r)
	if _, err := bb.EnsureTopics(context.Background(), []bus.TopicConfig{{Name: name, Partitions: benchPartitions, Retention: time.Hour}}); err != nil {
		b.Fatal(err)
	}
	// Delete the topic, so that runs do not fill the broker's disk (or
	// slow later runs writing back its pages). Purge it from the bus's
	// client first: a producer that still tracks a deleted topic keeps
	// re-requesting its metadata, which delays loading new topics.
	b.Cleanup(func() {
		bb.cl.PurgeTopicsFromClient(name)
		bb.adm.DeleteTopics(context.Background(), name)
	})
	return name
}

// benchMessages returns n messages shaped like Eventmart's: an OrderCreated
// envelope of benchValueSize bytes keyed by order id, with the envelope
// headers. There are benchPool distinct payloads, shared by the messages;
// a batch of benchBatch has distinct ones, so compression is realistic.
func benchMessages(topic string, n int) []*bus.Message {
	pool := benchPayloads()
	out := make([]*bus.Message, n)
	for i := range out {
		m := *pool[i%len(pool)]
		m.Topic, m.Key = topic, []byte(fmt.Sprintf("order-%04d", i%benchKeys))
		out[i] = &m
	}
	return out
}

var benchPayloads = sync.OnceValue(func() []*bus.Message {
	rng := mrand.New(mrand.NewPCG(1, 2))
	id := func() string {
		return fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", rng.Uint32(), rng.Uint32()&0xffff, rng.Uint32()&0xfff, rng.Uint32()&0xfff, rng.Uint64()&0xffffffffffff)
	}
	out := make([]*bus.Message, benchPool)
	ts := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for i := range out {
		eventID, corr := id(), id()
		var sb strings.Builder
		fmt.Fprintf(&sb, `{"eventId":%q,"eventType":"OrderCreated","eventVersion":"v1","timestamp":%q,"source":"order-service","correlationId":%q,"causationId":%q,"data":{"orderId":"order-%04d","customerId":%q,"currency":"EUR","items":[`,
			eventID, ts.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), corr, corr, i%benchKeys, id())
		for j := 0; sb.Len() < benchValueSize-300; j++ {
			if j > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"sku":"SKU-%06d","quantity":%d,"unitPrice":"%d.%02d"}`, rng.IntN(1_000_000), 1+rng.IntN(5), 1+rng.IntN(300), rng.IntN(100))
		}
		fmt.Fprintf(&sb, `],"shippingAddress":{"street":"%d Market Street","city":"Springfield","postalCode":"%05d","country":"DE"}},"metadata":{"userId":%q,"sessionId":%q},"pad":"`,
			1+rng.IntN(999), rng.IntN(100000), id(), id())
		v := []byte(sb.String())
		for len(v) < benchValueSize-2 {
			v = append(v, 'x')
		}
		v = append(v[:benchValueSize-2], '"', '}')
		out[i] = &bus.Message{
			Value: v,
			// The envelope headers of event/eventmsg, spelled out: a driver
			// does not import the event catalog.
			Headers: []bus.Header{
				{Key: "eventType", Value: []byte("OrderCreated")},
				{Key: "eventVersion", Value: []byte("v1")},
				{Key: "eventId", Value: []byte(eventID)},
				{Key: "correlationId", Value: []byte(corr)},
				{Key: "causationId", Value: []byte(corr)},
				{Key: "source", Value: []byte("order-service")},
			},
		}
	}
	return out
})

// BenchmarkToMessages measures converting a fetched batch for a handler,
// the consumer's only per-record work beyond franz-go's; no broker needed.
func BenchmarkToMessages(b *testing.B) {
	recs := toRecords(benchMessages("t", 500))
	b.ReportAllocs()
	for b.Loop() {
		toMessages(recs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
}
