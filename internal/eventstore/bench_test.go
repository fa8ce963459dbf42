package eventstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// onSQLite runs a benchmark on a fresh, migrated SQLite database.
func onSQLite(b *testing.B, fn func(b *testing.B, db *sqldb.DB)) {
	b.Run("sqlite", func(b *testing.B) {
		db, err := sqldb.Open(context.Background(), "es", "", b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		if err := db.Migrate(context.Background(), sqldb.Migration{Name: "eventstore.sql", SQL: eventstore.Migration}); err != nil {
			b.Fatal(err)
		}
		fn(b, db)
	})
}

// Appends of one event in a transaction each, to one stream and spread
// over 1,000 streams.
func BenchmarkAppend(b *testing.B) {
	for _, streams := range []int{1, 1000} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			onSQLite(b, func(b *testing.B, db *sqldb.DB) {
				ctx := context.Background()
				versions := make([]int64, streams)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					s := i % streams
					err := db.InTx(ctx, func(tx *sqldb.Tx) error {
						v, err := eventstore.Append(ctx, tx, fmt.Sprintf("stream-%d", s), eventstore.Exactly(versions[s]), ev("Added", i))
						versions[s] = v
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			})
		})
	}
}

// Loading a 1,000-event stream, without a snapshot and with one at 1,000.
func BenchmarkLoad1000(b *testing.B) {
	for _, every := range []int64{0, 100} {
		b.Run(fmt.Sprintf("snapshotEvery=%d", every), func(b *testing.B) {
			onSQLite(b, func(b *testing.B, db *sqldb.DB) {
				ctx := context.Background()
				agg := eventstore.Aggregate[counter]{SchemaVersion: 1, SnapshotEvery: every,
					Apply: func(s counter, e eventstore.Event) (counter, error) {
						var p struct{ N int }
						if err := json.Unmarshal(e.Data, &p); err != nil {
							return s, err
						}
						return counter{Sum: s.Sum + p.N, Events: s.Events + 1}, nil
					}}
				var s counter
				var v int64
				for i := 0; i < 1000; i += 10 {
					evs := make([]eventstore.Event, 10)
					for j := range evs {
						evs[j] = ev("Added", i+j)
					}
					err := db.InTx(ctx, func(tx *sqldb.Tx) (err error) {
						s, v, err = agg.Save(ctx, tx, "long", s, v, evs...)
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if s, v, err := agg.Load(ctx, db, "long"); err != nil || v != 1000 || s.Events != 1000 {
						b.Fatalf("load: %+v at %d, %v", s, v, err)
					}
				}
			})
		})
	}
}
