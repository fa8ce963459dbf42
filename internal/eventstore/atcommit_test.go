package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// summing is a test aggregate appending at commit: the sum of its events'
// n, and the n of each in order.
func summing() eventstore.Aggregate[counter] {
	return eventstore.Aggregate[counter]{
		SchemaVersion: 1, AppendAtCommit: true,
		Apply: func(s counter, e eventstore.Event) (counter, error) {
			var p struct{ N int }
			if err := json.Unmarshal(e.Data, &p); err != nil {
				return s, err
			}
			return counter{Sum: s.Sum + p.N, Events: s.Events + 1}, nil
		},
	}
}

// TestAppendsAtCommit: a transaction's saves with AppendAtCommit reach the
// store in one statement as it commits, in the order saved; reads through
// the transaction see them meanwhile; a save at a version its own appends
// passed conflicts at once; Append to such a stream is refused.
func TestAppendsAtCommit(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		agg := summing()
		statements := func(agg eventstore.Aggregate[counter], streams ...string) int64 {
			before := db.Stats()
			if err := db.InTx(ctx, func(tx *sqldb.Tx) error {
				for _, s := range streams {
					if _, _, err := agg.Save(ctx, tx, s, counter{}, 0, ev("Added", 1)); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			return db.Stats().Sub(before).Statements
		}
		immediate := agg
		immediate.AppendAtCommit = false
		if at, now := statements(agg, "s1", "s2", "s3"), statements(immediate, "s4", "s5", "s6"); at != now-2 {
			t.Errorf("three saves: %d statements at commit, %d at once; want two fewer at commit", at, now)
		}

		err := db.InTx(ctx, func(tx *sqldb.Tx) error {
			s, v, err := agg.Save(ctx, tx, "a", counter{}, 0, ev("Added", 1), ev("Added", 2))
			if err != nil {
				return err
			}
			if _, _, err := agg.Save(ctx, tx, "b", counter{}, 0, ev("Added", 10)); err != nil {
				return err
			}
			if _, _, err := agg.Save(ctx, tx, "a", s, v, ev("Added", 4)); err != nil {
				return err
			}
			if s, v, err := agg.Load(ctx, tx, "a"); err != nil || v != 3 || s.Sum != 7 {
				t.Errorf("Load in the transaction: %+v at %d, %v; want sum 7 at 3", s, v, err)
			}
			many, err := agg.LoadMany(ctx, tx, []string{"a", "b", "c"})
			if err != nil || many["a"].Version != 3 || many["a"].State.Sum != 7 || many["b"].Version != 1 || many["c"].Version != 0 {
				t.Errorf("LoadMany in the transaction: %+v, %v", many, err)
			}
			if evs, err := eventstore.ReadStream(ctx, tx, "a", 1, 1); err != nil || len(evs) != 1 || evs[0].Version != 2 {
				t.Errorf("ReadStream(a, after 1, limit 1) in the transaction: %+v, %v; want version 2", evs, err)
			}
			if v, err := eventstore.StreamVersion(ctx, tx, "a"); err != nil || v != 3 {
				t.Errorf("StreamVersion(a) in the transaction: %d, %v; want 3", v, err)
			}
			if _, _, err := agg.Save(ctx, tx, "a", counter{}, 2, ev("Added", 8)); !errors.Is(err, eventstore.ErrConflict) {
				t.Errorf("a save at a version the transaction's appends passed: %v, want a conflict", err)
			}
			if _, err := eventstore.Append(ctx, tx, "a", eventstore.Any, ev("Added", 8)); err == nil {
				t.Error("Append to a stream appended to at commit was taken")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		evs, err := eventstore.ReadStream(ctx, db, "a", 0, 0)
		if err != nil || len(evs) != 3 {
			t.Fatalf("after the commit: %+v, %v", evs, err)
		}
		for i, e := range evs {
			if e.Version != int64(i+1) || i > 0 && e.Position <= evs[i-1].Position {
				t.Errorf("event %d: version %d, position %d after %d: want versions in the store's order", i, e.Version, e.Position, evs[max(i-1, 0)].Position)
			}
		}
	})
}

// TestAppendsAtCommitRollBackToASavepoint: a rollback to a savepoint drops
// the events saved after it, keeps those before, and reads see as much.
func TestAppendsAtCommitRollBackToASavepoint(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		agg := summing()
		err := db.InTx(ctx, func(tx *sqldb.Tx) error {
			s, v, err := agg.Save(ctx, tx, "a", counter{}, 0, ev("Added", 1))
			if err != nil {
				return err
			}
			sp, err := tx.Savepoint(ctx, "record")
			if err != nil {
				return err
			}
			if _, _, err := agg.Save(ctx, tx, "a", s, v, ev("Added", 2)); err != nil {
				return err
			}
			if err := tx.RollbackTo(ctx, sp); err != nil {
				return err
			}
			if err := tx.Release(ctx, sp); err != nil {
				return err
			}
			s, v, err = agg.Load(ctx, tx, "a")
			if err != nil || v != 1 || s.Sum != 1 {
				t.Errorf("Load after the rollback: %+v at %d, %v; want sum 1 at 1", s, v, err)
			}
			_, _, err = agg.Save(ctx, tx, "a", s, v, ev("Added", 4))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if s, v, err := agg.Load(ctx, db, "a"); err != nil || v != 2 || s.Sum != 5 {
			t.Fatalf("after the commit: %+v at %d, %v; want sum 5 (1 + 4) at 2", s, v, err)
		}
	})
}

// TestAppendsAtCommitConflictRunsTheTransactionAgain: a stream that moved
// on since the transaction read it fails the commit with a conflict, and
// InTx runs the transaction again, which reads the stream anew.
func TestAppendsAtCommitConflictRunsTheTransactionAgain(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		agg := summing()
		if _, err := appendTx(ctx, db, "c", eventstore.NoStream, ev("Added", 1)); err != nil {
			t.Fatal(err)
		}
		tries, before := 0, db.Stats()
		err := db.InTx(ctx, func(tx *sqldb.Tx) error {
			tries++
			s, v, err := agg.Load(ctx, tx, "c")
			if err != nil {
				return err
			}
			if tries == 1 {
				s, v = counter{}, 0 // as read before another writer's append committed
			}
			_, _, err = agg.Save(ctx, tx, "c", s, v, ev("Added", 2))
			return err
		})
		if err != nil || tries != 2 {
			t.Fatalf("InTx: %v after %d tries; want success on the second", err, tries)
		}
		if n := db.Stats().Sub(before).RunAgain; n != 1 {
			t.Errorf("Stats.RunAgain counted %d, want the one transaction run again", n)
		}
		if s, v, err := agg.Load(ctx, db, "c"); err != nil || v != 2 || s.Sum != 3 {
			t.Fatalf("after the commit: %+v at %d, %v; want sum 3 at 2", s, v, err)
		}
	})
}

// TestConcurrentSavesAtCommit: writers racing on one stream, each deciding
// on the version it read, lose no update: a conflict at commit runs the
// loser's transaction again (on PostgreSQL; SQLite's writes are serial).
func TestConcurrentSavesAtCommit(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sqldb.DB) {
		agg := summing()
		raceOnHotStream(t, db, 8, 5, func(ctx context.Context, _ int) error {
			return eventstore.Retry(ctx, db, 1000, func(tx *sqldb.Tx) error {
				s, v, err := agg.Load(ctx, tx, "hot")
				if err != nil {
					return err
				}
				_, _, err = agg.Save(ctx, tx, "hot", s, v, ev("Added", int(v)))
				return err
			})
		})
	})
}
