package sqldb

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkRowsFlush: a transaction inserting n rows of five columns into
// each of four tables (a service's processed events, outbox, saga log and
// projection), n cycling through 1…200 as batch sizes do: 800 row counts
// to prepare, more than the 512 statements a database keeps, on SQLite.
func BenchmarkRowsFlush(b *testing.B) {
	ctx := context.Background()
	db, err := Open(ctx, "bench", "", b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var tables []*Rows
	for i := range 4 {
		if _, err := db.Exec(ctx, fmt.Sprintf(`CREATE TABLE r%d (k INTEGER PRIMARY KEY, a TEXT, b TEXT, c INTEGER, d BLOB)`, i)); err != nil {
			b.Fatal(err)
		}
		tables = append(tables, NewRows(fmt.Sprintf(`INSERT INTO r%d (k, a, b, c, d) VALUES`, i), 5, ""))
	}
	flushBatches(b, db, tables, 200)
}

// flushBatches runs b's loop: a transaction per op flushing n rows of
// five columns into each of tables, n cycling through 1…most.
func flushBatches(b *testing.B, db *DB, tables []*Rows, most int) {
	ctx := context.Background()
	k, batch := 0, 0
	b.ReportAllocs()
	for b.Loop() {
		batch++
		n := batch%most + 1
		err := db.InTx(ctx, func(tx *Tx) error {
			for _, rows := range tables {
				for range n {
					k++
					rows.Add(k, "topic", "key", k, []byte(`{"eventId":"e"}`))
				}
				if err := rows.Flush(ctx, tx); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(k)/float64(b.N), "rows/op")
}
