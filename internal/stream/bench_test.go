package stream_test

import (
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/eventmart/eventmart/internal/stream"
)

// benchRecords are n records of 1,000 keys on 4 partitions, 1 ms apart,
// each with a small order-like payload.
func benchRecords(n int) []stream.Record {
	parts := []stream.Partition{{Topic: "order-events", Number: 0}, {Topic: "order-events", Number: 1},
		{Topic: "order-events", Number: 2}, {Topic: "order-events", Number: 3}}
	recs := make([]stream.Record, n)
	for i := range recs {
		recs[i] = stream.Record{Partition: parts[i%4], Offset: int64(i / 4), Key: fmt.Sprintf("product-%d", i%1000),
			Time: t0.Add(time.Duration(i) * time.Millisecond), EventType: "OrderCreated",
			Payload: json.RawMessage(fmt.Sprintf(`{"orderId":"o-%d","totalCents":%d,"currency":"EUR"}`, i, 100+i%5000))}
	}
	return recs
}

// benchmarkTumbling runs a keyed one-minute tumbling count/sum over
// batches of 500 records; value reads the summed number.
func benchmarkTumbling(b *testing.B, value func(*stream.Record) int64) {
	recs := benchRecords(b.N)
	op, err := stream.NewAggregate(stream.Aggregation[stream.CountSum]{Name: "orders-per-minute",
		Windows: stream.TumblingWindows(time.Minute, 5*time.Second), Aggregator: stream.CountSumAggregator{Value: value}})
	if err != nil {
		b.Fatal(err)
	}
	e, err := stream.New([]stream.Partition{recs[0].Partition, {Topic: "order-events", Number: 1},
		{Topic: "order-events", Number: 2}, {Topic: "order-events", Number: 3}}, op)
	if err != nil {
		b.Fatal(err)
	}
	var store stream.MemoryStore
	results := 0
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for len(recs) > 0 {
		n := min(500, len(recs))
		out, err := e.Process(recs[:n])
		if err != nil {
			b.Fatal(err)
		}
		results += len(out.Results)
		store.Apply(out.Changes) // what a caller would write with its offsets
		recs = recs[n:]
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	// On a shared machine wall time overstates the cost; events per second
	// of this process's CPU time (all threads, GC included) is the per-core figure.
	b.ReportMetric(float64(b.N)/(cpuTime(b)-cpu0).Seconds(), "events/cpu-s")
	if b.N > 120_000 && results == 0 {
		b.Fatal("no window closed")
	}
}

// BenchmarkTumblingCountSum sums a number the caller already has (here the
// offset): the engine's own cost.
func BenchmarkTumblingCountSum(b *testing.B) {
	benchmarkTumbling(b, func(r *stream.Record) int64 { return r.Offset })
}

// BenchmarkTumblingCountSumJSON decodes totalCents from each payload with
// encoding/json, as an analytics aggregation would.
func BenchmarkTumblingCountSumJSON(b *testing.B) {
	benchmarkTumbling(b, func(r *stream.Record) int64 {
		var p struct {
			TotalCents int64 `json:"totalCents"`
		}
		if json.Unmarshal(r.Payload, &p) != nil {
			return 0
		}
		return p.TotalCents
	})
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
