package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Concurrent commands, each in a transaction that also writes a row of its
// own (as an inbox batch does), retry their conflicts inside that
// transaction: no update is lost, and each command's other work commits
// exactly once.
func TestRetryInTxKeepsTheCallersTransaction(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if _, err := db.Exec(ctx, `CREATE TABLE done (n BIGINT PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
		const writers = 16
		var conflicts atomic.Int64
		raceOnHotStream(t, db, writers, 1, func(ctx context.Context, w int) error {
			return db.InTx(ctx, func(tx *sqldb.Tx) error {
				if _, err := tx.Exec(ctx, `INSERT INTO done (n) VALUES (?)`, w); err != nil {
					return err
				}
				hooks := 0
				err := eventstore.RetryInTx(ctx, tx, 1000, func() error {
					hooks++
					tx.OnCommit(func() {}) // a hook of a rolled-back try must be dropped
					v, err := eventstore.StreamVersion(ctx, tx, "hot")
					if err != nil {
						return err
					}
					_, err = eventstore.Append(ctx, tx, "hot", eventstore.Exactly(v), ev("Incremented", int(v)))
					if errors.Is(err, eventstore.ErrConflict) {
						conflicts.Add(1)
					}
					return err
				})
				if err == nil && tx.CommitHooks() != 1 {
					return fmt.Errorf("%d commit hooks after %d tries, want 1", tx.CommitHooks(), hooks)
				}
				return err
			})
		})
		var n int
		db.QueryRow(ctx, `SELECT COUNT(*) FROM done`).Scan(&n)
		if n != writers {
			t.Fatalf("%d commands' rows, want %d", n, writers)
		}
		t.Logf("%d conflicts retried in place", conflicts.Load())
	})
}

// A conflict that persists (an expectation that cannot hold) is returned
// after the attempts, and a try's writes are gone with it.
func TestRetryInTxGivesUp(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if _, err := appendTx(ctx, db, "s", eventstore.NoStream, ev("A", 1)); err != nil {
			t.Fatal(err)
		}
		tries := 0
		err := db.InTx(ctx, func(tx *sqldb.Tx) error {
			err := eventstore.RetryInTx(ctx, tx, 3, func() error {
				tries++
				_, err := eventstore.Append(ctx, tx, "s", eventstore.NoStream, ev("B", 2))
				return err
			})
			if !errors.Is(err, eventstore.ErrConflict) {
				return fmt.Errorf("err = %v, want a conflict", err)
			}
			return nil // the caller may go on: its transaction is usable
		})
		if err != nil {
			t.Fatal(err)
		}
		want := 3
		if db.Dialect == sqldb.SQLite {
			want = 1 // no concurrent writer on SQLite: a conflict is final
		}
		if tries != want {
			t.Fatalf("%d tries, want %d", tries, want)
		}
	})
}

func TestReadCategory(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		for i, s := range []string{"stock-b", "order-1", "stock-a", "stock-b", "stockx", "stock-a"} {
			if _, err := appendTx(ctx, db, s, eventstore.Any, ev("E", i)); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		err := eventstore.ReadCategory(ctx, db, "stock-", func(e eventstore.Event) error {
			got = append(got, fmt.Sprintf("%s@%d", e.Stream, e.Version))
			return nil
		})
		if err != nil || fmt.Sprint(got) != "[stock-a@1 stock-a@2 stock-b@1 stock-b@2]" {
			t.Fatalf("read %v, %v", got, err)
		}
		stop := errors.New("stop")
		if err := eventstore.ReadCategory(ctx, db, "stock-", func(eventstore.Event) error { return stop }); err != stop {
			t.Fatalf("fn's error: %v", err)
		}
	})
}

// A command whose stream another transaction appends to between its read
// and its append is tried again in its own transaction, on what the other
// committed: the try's writes (a row, a hook) are undone with its
// conflict, whether the conflict is found by the append's insert failing
// (Save, which does not read the version first) or by the expectation
// read (Append). PostgreSQL only: SQLite's one writer never lets the
// other transaction in.
func TestRetryInTxRetriesAConcurrentAppend(t *testing.T) {
	for _, how := range []string{"insert fails", "expectation unmet"} {
		t.Run(how, func(t *testing.T) {
			eachDB(t, func(t *testing.T, db *sqldb.DB) {
				if db.Dialect != sqldb.Postgres {
					t.Skip("no concurrent writer on SQLite")
				}
				ctx := context.Background()
				if _, err := db.Exec(ctx, `CREATE TABLE tries (try BIGINT PRIMARY KEY)`); err != nil {
					t.Fatal(err)
				}
				if _, err := appendTx(ctx, db, "s", eventstore.NoStream, ev("A", 1)); err != nil {
					t.Fatal(err)
				}
				var applied atomic.Int64
				agg := tallies(nil, &applied)
				conflicts := eventstore.RetriedConflicts()
				tries, hooks := 0, 0
				err := db.InTx(ctx, func(tx *sqldb.Tx) error {
					return eventstore.RetryInTx(ctx, tx, 3, func() error {
						tries++
						s, v, err := agg.Load(ctx, tx, "s")
						if err != nil {
							return err
						}
						if _, err := tx.Exec(ctx, `INSERT INTO tries (try) VALUES (?)`, tries); err != nil {
							return err
						}
						tx.OnCommit(func() { hooks++ })
						if tries == 1 { // the other transaction appends and commits first
							if _, err := appendTx(ctx, db, "s", eventstore.Exactly(v), ev("Other", 10)); err != nil {
								return err
							}
						}
						if how == "insert fails" {
							_, _, err = agg.Save(ctx, tx, "s", s, v, ev("Mine", 100))
						} else {
							_, err = eventstore.Append(ctx, tx, "s", eventstore.Exactly(v), ev("Mine", 100))
						}
						return err
					})
				})
				if err != nil {
					t.Fatal(err)
				}
				if tries != 2 || hooks != 1 || eventstore.RetriedConflicts()-conflicts != 1 {
					t.Fatalf("%d tries, %d hooks run, %d conflicts; want 2, 1 and 1", tries, hooks, eventstore.RetriedConflicts()-conflicts)
				}
				evs, err := eventstore.ReadStream(ctx, db, "s", 0, 0)
				if err != nil || len(evs) != 3 || evs[1].Type != "Other" || evs[2].Type != "Mine" {
					t.Fatalf("stream %v, %v; want A, Other, Mine", evs, err)
				}
				var got []int64
				rows, err := db.Query(ctx, `SELECT try FROM tries ORDER BY try`)
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				for rows.Next() {
					var n int64
					rows.Scan(&n)
					got = append(got, n)
				}
				if len(got) != 1 || got[0] != 2 {
					t.Fatalf("tries' rows %v, want only the second's", got)
				}
			})
		})
	}
}

// On PostgreSQL a try's savepoint costs no round trip: its SAVEPOINT goes
// with the append, its RELEASE with the transaction's next write (here
// none: COMMIT releases it).
func TestRetryInTxSavepointCostsNoRoundTrip(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		var applied atomic.Int64
		agg := tallies(nil, &applied)
		before := db.Stats()
		err := db.InTx(ctx, func(tx *sqldb.Tx) error {
			return eventstore.RetryInTx(ctx, tx, 3, func() error {
				s, v, err := agg.Load(ctx, tx, "cheap") // a snapshot and the events: two reads
				if err != nil {
					return err
				}
				_, _, err = agg.Save(ctx, tx, "cheap", s, v, ev("A", 1))
				return err
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		got := db.Stats().Sub(before)
		if got.RoundTrips != 3 || got.Commits != 1 {
			t.Fatalf("%+v, want 3 round trips (2 reads, the insert) and a commit", got)
		}
		if db.Dialect == sqldb.Postgres && got.Statements != 4 {
			t.Fatalf("%d statements, want 4 (the SAVEPOINT with the insert)", got.Statements)
		}
	})
}
