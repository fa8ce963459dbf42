package inbox_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/internal/obs"
)

// BenchmarkHandle applies batches of 50 new events on SQLite: the cost of
// the inbox per record (decode, the processed-events row, the handler
// chain) on the consumer's hot path.
func BenchmarkHandle(b *testing.B) {
	b.Run("bare", func(b *testing.B) { benchmarkHandle(b, newFixture(b)) })
	b.Run("metrics", func(b *testing.B) {
		f := newFixture(b)
		f.c.Metrics = obs.New(prometheus.NewRegistry()).Consumer(f.c.Group, f.c.Topics())
		benchmarkHandle(b, f)
	})
}

func benchmarkHandle(b *testing.B, f *fixture) {
	ctx := context.Background()
	const size = 50
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		batch := make([]*bus.Message, size)
		for j := range batch {
			batch[j] = f.msg(fmt.Sprintf("p-%d-%d", i, j))
		}
		b.StartTimer()
		if err := f.c.Handle(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/record")
}
