package sqldb

import (
	"context"
	"testing"
)

// BenchmarkLoneTransaction: one caller's transaction of five statements on
// SQLite with a context that can end, as a consumer's or a request's: the
// per-transaction cost with one event in flight (fsync included).
func BenchmarkLoneTransaction(b *testing.B) {
	db, err := Open(context.Background(), "bench", "", b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(context.Background(), `CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)`); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ReportAllocs()
	k := 0
	for b.Loop() {
		if err := db.InTx(ctx, func(tx *Tx) error {
			for range 5 {
				k++
				if _, err := tx.Exec(ctx, `INSERT INTO t (k, v) VALUES (?, ?)`, k, "value"); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}
