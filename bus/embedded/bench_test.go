package embedded_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/bus/embedded"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
)

// envelopeOf1KiB returns a realistic ~1 KiB OrderCreated envelope.
func envelopeOf1KiB(b *testing.B) *bus.Message {
	p := &event.OrderCreated{OrderID: event.NewID(), Customer: event.Customer{UserID: event.NewID(), Email: event.Plain("someone@example.com"), Name: event.Plain("Some One")},
		Currency: "EUR", ShippingAddress: event.PlainAddress(event.Address{Name: "Some One", Line1: "1 Main Street", City: "Springfield", PostalCode: "12345", Country: "DE"})}
	for i := 0; len(p.Lines) < 6; i++ {
		p.Lines = append(p.Lines, event.OrderLine{ProductID: event.NewID(), SKU: "SKU-" + strconv.Itoa(i), Name: "A product with a name", Quantity: 2, UnitPriceCents: 1999})
	}
	e, err := event.New("order-service", event.FromRequest(event.NewID(), event.Metadata{UserID: p.Customer.UserID}), p)
	if err != nil {
		b.Fatal(err)
	}
	m, err := eventmsg.Encode(context.Background(), e)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

func benchBus(b *testing.B) *embedded.Bus {
	bb, err := embedded.Open(filepath.Join(b.TempDir(), "log.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bb.Close() })
	if _, err := bb.EnsureTopics(context.Background(), []bus.TopicConfig{{Name: "order-events", Partitions: 20}}); err != nil {
		b.Fatal(err)
	}
	return bb
}

func copies(proto *bus.Message, n, seq int) []*bus.Message {
	out := make([]*bus.Message, n)
	for i := range out {
		m := *proto
		m.Key = []byte("order-" + strconv.Itoa((seq+i)%1000))
		out[i] = &m
	}
	return out
}

// BenchmarkPublish measures acknowledged (fsynced) publishes of 1 KiB
// envelopes from 8 concurrent publishers, per batch size.
func BenchmarkPublish(b *testing.B) {
	for _, batch := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			bb := benchBus(b)
			proto := envelopeOf1KiB(b)
			b.SetBytes(int64(len(proto.Value)))
			b.SetParallelism(4) // 8 publishers on 2 cores
			var seq atomic.Int64
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				var pending []*bus.Message
				flush := func() {
					if err := bb.Publish(context.Background(), pending...); err != nil {
						b.Error(err)
					}
					pending = pending[:0]
				}
				for pb.Next() {
					pending = append(pending, copies(proto, 1, int(seq.Add(1)))...)
					if len(pending) == batch {
						flush()
					}
				}
				if len(pending) > 0 {
					flush()
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkConsume measures a consumer group reading b.N pre-published
// 1 KiB envelopes from 20 partitions, committing after every batch.
func BenchmarkConsume(b *testing.B) {
	bb := benchBus(b)
	proto := envelopeOf1KiB(b)
	for i := 0; i < b.N; i += 1000 {
		if err := bb.Publish(context.Background(), copies(proto, min(1000, b.N-i), i)...); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(proto.Value)))
	b.ResetTimer()
	start := time.Now()
	var got atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- bb.Subscribe(ctx, "bench", []string{"order-events"}, func(_ context.Context, batch []*bus.Message) error {
			if got.Add(int64(len(batch))) >= int64(b.N) {
				cancel()
			}
			return nil
		})
	}()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkRead measures Read of 50 1 KiB envelopes at a time, served
// from the partition's in-memory tail (the latest records, where consumers
// keeping up read) or from SQLite (records older than the tail), per record.
func BenchmarkRead(b *testing.B) {
	bb := benchBus(b)
	proto := envelopeOf1KiB(b)
	var msgs []*bus.Message
	for i := range 2000 {
		m := copies(proto, 1, i)[0]
		m.Key = []byte("same-partition")
		msgs = append(msgs, m)
	}
	if err := bb.Publish(context.Background(), msgs...); err != nil {
		b.Fatal(err)
	}
	const batch = 50 // within the tail: 256 KiB holds about 100 of these envelopes with their headers
	end := msgs[len(msgs)-1].Offset + 1
	p := msgs[0].Partition
	for _, c := range []struct {
		name string
		from int64
	}{{"tail", end - batch}, {"sqlite", 0}} {
		b.Run(c.name, func(b *testing.B) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			b.ResetTimer()
			for range b.N {
				got, err := bb.Read(context.Background(), "order-events", p, c.from, batch)
				if err != nil || len(got) != batch {
					b.Fatalf("Read = %d messages, %v", len(got), err)
				}
			}
			b.StopTimer()
			runtime.ReadMemStats(&after)
			records := float64(b.N * batch)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/records, "ns/record")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/records, "allocs/record")
		})
	}
}
