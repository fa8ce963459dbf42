package eventstore_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Rebuild rewrites a projection from the fold of every stream of its
// prefix, deletes rows without a stream, leaves other prefixes alone and
// counts the events read.
func TestRebuildRewritesTheProjectionFromItsStreams(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if _, err := db.Exec(ctx, `CREATE TABLE totals (id TEXT PRIMARY KEY, total BIGINT NOT NULL, last BIGINT NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		for _, a := range []struct {
			stream string
			n      []int
		}{{"sum-a", []int{2, 3}}, {"sum-b", []int{7}}, {"other-x", []int{100}}} {
			for _, n := range a.n {
				if _, err := appendTx(ctx, db, a.stream, eventstore.Any, ev("Added", n)); err != nil {
					t.Fatal(err)
				}
			}
		}
		// A damaged row, and a row of no stream.
		if _, err := db.Exec(ctx, `INSERT INTO totals VALUES ('a', 99, 0), ('z', 1, 0)`); err != nil {
			t.Fatal(err)
		}
		sum := eventstore.Aggregate[int64]{Apply: func(s int64, e eventstore.Event) (int64, error) {
			var d struct{ N int64 }
			err := json.Unmarshal(e.Data, &d)
			return s + d.N, err
		}}
		n, err := eventstore.Rebuild(ctx, db, "totals", "sum-", sum, func(ctx context.Context, tx *sqldb.Tx, id string, s int64, last time.Time) error {
			_, err := tx.Exec(ctx, `INSERT INTO totals VALUES (?, ?, ?)`, id, s, last.UnixMicro())
			return err
		})
		if err != nil || n != 3 {
			t.Fatalf("rebuild: %d events, %v; want 3", n, err)
		}
		got := map[string]int64{}
		rows, err := sqldb.List(ctx, db, `SELECT id, total, last FROM totals ORDER BY id`, nil, func(r sqldb.Scanner) (struct {
			id          string
			total, last int64
		}, error) {
			var row struct {
				id          string
				total, last int64
			}
			err := r.Scan(&row.id, &row.total, &row.last)
			return row, err
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.last == 0 {
				t.Errorf("row %s without its last event's time", r.id)
			}
			got[r.id] = r.total
		}
		if len(got) != 2 || got["a"] != 5 || got["b"] != 7 {
			t.Errorf("rebuilt %v, want a: 5, b: 7", got)
		}
	})
}
