package sqldb

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkRowsFlushPostgres is BenchmarkRowsFlush on PostgreSQL, n cycling
// through 1…32 (batches at 64 orders in flight are small), on one
// connection. When the server runs on this machine it also reports the CPU
// its backend spent per transaction (server-µs/op), which includes parsing
// and planning each statement text prepared: one per row count with the
// exact statement, one per table with unnest (see Rows.unnest).
func BenchmarkRowsFlushPostgres(b *testing.B) {
	ctx := context.Background()
	db := openTestPostgres(b)
	db.w.SetMaxOpenConns(1) // one backend, whose CPU is read below
	var tables []*Rows
	for i := range 4 {
		if _, err := db.Exec(ctx, fmt.Sprintf(`CREATE TABLE r%d (k BIGINT PRIMARY KEY, a TEXT, b TEXT, c BIGINT, d BYTEA)`, i)); err != nil {
			b.Fatal(err)
		}
		tables = append(tables, NewRows(fmt.Sprintf(`INSERT INTO r%d (k, a, b, c, d) VALUES`, i), 5, ""))
	}
	var pid int
	if err := db.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		b.Fatal(err)
	}
	cpu0 := processCPU(pid)
	flushBatches(b, db, tables, 32)
	if cpu0 >= 0 {
		if cpu := processCPU(pid); cpu >= 0 {
			b.ReportMetric(float64(cpu-cpu0)*1e6/100/float64(b.N), "server-µs/op") // clock ticks of 1/100 s
		}
	}
}

// processCPU returns the user and system CPU of process pid in clock
// ticks, or -1 if /proc does not tell (another machine's server).
func processCPU(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from the third on
	if len(f) < 13 {
		return -1
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return u + st
}
