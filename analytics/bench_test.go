package analytics

import (
	"syscall"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/internal/stream"
)

// BenchmarkProcessor runs the events of orders through the processor as
// the consumer group hands them over — a batch per partition, the
// batches of a round committed together — on SQLite (PostgreSQL with
// EVENTMART_TEST_SERVICES_DB=postgres), with the standard rules. A round
// holds the placing of 100 orders and the shipping or cancelling of the
// 100 placed in the round before. One op is one event: ns/op and
// allocs/op are per event, with events/s, the process's CPU µs per event
// (user and system: on a busy machine ns/op also counts waiting) and
// statements/event besides (docs/benchmarks.md).
func BenchmarkProcessor(b *testing.B) {
	const perRound = 100 // orders
	p := flowProcessor(b)
	next := map[stream.Partition]int64{}
	t0 := time.Now().Add(-24 * time.Hour)
	var rounds [][]*bus.Message
	for n, r := 0, 0; n < b.N; r++ {
		t := t0.Add(time.Duration(r) * time.Second)
		round := orderFlow(b, r*perRound, perRound, placed, t, next)
		if r > 0 {
			round = append(round, orderFlow(b, (r-1)*perRound, perRound, ended, t.Add(500*time.Millisecond), next)...)
		}
		round = round[:min(len(round), b.N-n)]
		n += len(round)
		rounds = append(rounds, round)
	}
	before, cpu0 := p.db.Stats(), cpuTime(b)
	b.ReportAllocs()
	b.ResetTimer()
	for _, round := range rounds {
		commitTogether(b, p, round)
	}
	b.StopTimer()
	cpu, st := cpuTime(b)-cpu0, p.db.Stats().Sub(before)
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/event")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(st.Statements)/float64(b.N), "statements/event")
	b.ReportMetric(float64(st.Commits)/float64(b.N), "commits/event")
}

// cpuTime returns the CPU time the process used so far (user and system).
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
