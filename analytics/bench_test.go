package analytics

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/sqldb"
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

// BenchmarkIdlePass runs the idle pass (processor.declareIdle) over every
// partition of the service's topics, as the service reads them, with the
// order events of orderFlow arriving on 3 partitions of 3 of them: the
// others stay quiet, as the partitions of topics with few events do under
// load.
//
// under-load: one op is a round of 8 orders' events (the placing of 8, the
// shipping or cancelling of the 8 before) committed together, then an idle
// pass 90 ms after the round's first event, as the 100 ms clock runs one
// while records arrive; idle-cpu-µs/pass and idle-commits/pass are the
// pass's share.
//
// nothing-to-declare: one op is an idle pass that finds nothing to change
// (every partition already declared idle up to that time).
func BenchmarkIdlePass(b *testing.B) {
	const perRound = 8 // orders
	topics := Topics()
	var parts []stream.Partition
	for _, t := range event.Topics {
		if slices.Contains(topics, string(t.Name)) {
			for n := range t.Partitions {
				parts = append(parts, stream.Partition{Topic: string(t.Name), Number: n})
			}
		}
	}
	ctx := context.Background()
	ends := func(next map[stream.Partition]int64) map[stream.Partition]int64 {
		m := make(map[stream.Partition]int64, len(parts))
		for _, part := range parts {
			m[part] = next[part]
		}
		return m
	}
	t0 := time.Now().Add(-24 * time.Hour)
	// rounds returns n rounds' messages, the ends of the partitions after
	// each, and the time of the idle pass after each.
	rounds := func(b *testing.B, n int) (msgs [][]*bus.Message, after []map[stream.Partition]int64, at []time.Time) {
		next := map[stream.Partition]int64{}
		for r := range n {
			t := t0.Add(time.Duration(r) * 100 * time.Millisecond)
			round := orderFlow(b, r*perRound, perRound, placed, t, next)
			if r > 0 {
				round = append(round, orderFlow(b, (r-1)*perRound, perRound, ended, t.Add(time.Duration(len(round))*time.Millisecond), next)...)
			}
			msgs, after, at = append(msgs, round), append(after, ends(next)), append(at, t.Add(90*time.Millisecond))
		}
		return msgs, after, at
	}
	b.Run("under-load", func(b *testing.B) {
		p := flowProcessorOver(b, topics, parts)
		msgs, after, at := rounds(b, b.N)
		var idleCPU time.Duration
		before, cpu0 := p.db.Stats(), cpuTime(b)
		var idleStats sqldb.Stats
		b.ReportAllocs()
		b.ResetTimer()
		for r := range b.N {
			commitTogether(b, p, msgs[r])
			c, st := cpuTime(b), p.db.Stats()
			if err := p.declareIdle(ctx, after[r], at[r]); err != nil {
				b.Fatal(err)
			}
			idleCPU += cpuTime(b) - c
			d := p.db.Stats().Sub(st)
			idleStats.Statements += d.Statements
			idleStats.Commits += d.Commits
		}
		b.StopTimer()
		cpu, st := cpuTime(b)-cpu0, p.db.Stats().Sub(before)
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
		b.ReportMetric(float64(idleCPU.Microseconds())/float64(b.N), "idle-cpu-µs/pass")
		b.ReportMetric(float64(idleStats.Commits)/float64(b.N), "idle-commits/pass")
		b.ReportMetric(float64(st.Statements)/float64(b.N), "statements/op")
		b.ReportMetric(float64(st.Commits)/float64(b.N), "commits/op")
	})
	b.Run("nothing-to-declare", func(b *testing.B) {
		p := flowProcessorOver(b, topics, parts)
		msgs, after, ats := rounds(b, 10)
		for _, round := range msgs {
			commitTogether(b, p, round)
		}
		e, at := after[len(after)-1], ats[len(ats)-1]
		if err := p.declareIdle(ctx, e, at); err != nil {
			b.Fatal(err)
		}
		before, cpu0 := p.db.Stats(), cpuTime(b)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if err := p.declareIdle(ctx, e, at); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		cpu, st := cpuTime(b)-cpu0, p.db.Stats().Sub(before)
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
		b.ReportMetric(float64(st.Commits)/float64(b.N), "commits/op")
	})
}
