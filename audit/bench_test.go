package audit

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// BenchmarkRecordBatch records batches of 64 events as the inbox applies a
// consumed batch — every event's handler in one transaction, then the
// commit — and batches of one event (one order in flight: a block per
// event), on SQLite (synchronous=FULL) and on PostgreSQL
// (EVENTMART_TEST_POSTGRES). An op is a batch. It reports per recorded
// event the time, the CPU time of this process (SQLite's included, the
// PostgreSQL server's not), the heap allocations, the rows the audit
// service writes (audit_log, chain_head, outbox: counted by the database,
// in the transaction), the statements it runs (the benchmark's own two
// reads of the rows written left out) and the Kafka records it publishes
// (outbox rows).
// The inbox's own processed_events row is not included. Payloads built
// are not validated against their schema, as outside tests (see
// event.ValidateBuilt).
//
//	go test -run '^$' -bench RecordBatch -benchtime 200x ./audit/
func BenchmarkRecordBatch(b *testing.B) {
	defer event.ValidateBuilt.Store(event.ValidateBuilt.Load())
	event.ValidateBuilt.Store(false)
	for _, size := range []int{64, 1} {
		b.Run(fmt.Sprintf("sqlite/batch=%d", size), func(b *testing.B) { benchmarkRecordBatch(b, openServiceOn(b, ""), size) })
		b.Run(fmt.Sprintf("postgres/batch=%d", size), func(b *testing.B) { benchmarkRecordBatch(b, openServiceOn(b, freshPostgres(b)), size) })
	}
}

func benchmarkRecordBatch(b *testing.B, s *Service, size int) {
	ctx := context.Background()
	db := s.d.DB
	var rows int64
	all := events(b, b.N*size, 200) // made beforehand: their CPU is not the audit's
	var mem0, mem1 runtime.MemStats
	runtime.ReadMemStats(&mem0)
	stats0 := db.Stats()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		envs := all[i*size : (i+1)*size]
		if err := db.InTx(ctx, func(tx *sqldb.Tx) error {
			start, err := rowsWritten(ctx, tx)
			if err != nil {
				return err
			}
			for _, e := range envs {
				if err := s.onEvent(ctx, tx, e, nil); err != nil {
					return err
				}
			}
			// Registered after the handlers' own pending writes, so it
			// counts after they are flushed.
			tx.Pending(probeKey{}, func() sqldb.Pending { return &probe{start: start, rows: &rows} })
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&mem1)
	statements := db.Stats().Sub(stats0).Statements - 2*int64(b.N)
	var published int64
	if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM outbox`).Scan(&published); err != nil {
		b.Fatal(err)
	}
	events := float64(b.N * size)
	b.ReportMetric(float64(b.Elapsed().Microseconds())/events, "µs/event")
	b.ReportMetric(float64(cpu.Microseconds())/events, "cpu-µs/event")
	b.ReportMetric(float64(rows)/events, "rows/event")
	b.ReportMetric(float64(published)/events, "kafka-records/event")
	b.ReportMetric(float64(statements)/events, "statements/event")
	b.ReportMetric(float64(mem1.Mallocs-mem0.Mallocs)/events, "allocs/event")
}

// cpuTime is the CPU time this process has used (user and system): the
// benchmark's, SQLite's included, not PostgreSQL's server.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rowsWritten returns the rows inserted, updated and deleted so far: in
// the transaction on PostgreSQL, on the (one) write connection on SQLite.
func rowsWritten(ctx context.Context, tx *sqldb.Tx) (int64, error) {
	q := `SELECT total_changes()`
	if tx.Dialect() == sqldb.Postgres {
		q = `SELECT COALESCE(SUM(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_xact_user_tables`
	}
	var n int64
	err := tx.QueryRow(ctx, q).Scan(&n)
	return n, err
}

type probeKey struct{}

// probe adds the rows a transaction wrote to *rows as it is about to
// commit.
type probe struct {
	start int64
	rows  *int64
}

func (p *probe) Flush(ctx context.Context, tx *sqldb.Tx) error {
	n, err := rowsWritten(ctx, tx)
	*p.rows += n - p.start
	return err
}

func (p *probe) Discard() {}
