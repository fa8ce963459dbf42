package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- db.InTx(ctx, func(tx *sqldb.Tx) error {
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
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		evs, err := eventstore.ReadStream(ctx, db, "hot", 0, 0)
		if err != nil || len(evs) != writers {
			t.Fatalf("%d events, %v; want %d", len(evs), err, writers)
		}
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
