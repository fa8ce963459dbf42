package sqldb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// rows is a Pending that inserts its keys into t with one statement.
type rows struct {
	keys    []int
	flushes *int
}

func (r *rows) Flush(ctx context.Context, tx *Tx) error {
	if len(r.keys) == 0 {
		return nil
	}
	*r.flushes++
	args := make([]any, len(r.keys))
	for i, k := range r.keys {
		args[i] = k
	}
	r.keys = r.keys[:0]
	_, err := tx.Exec(ctx, `INSERT INTO t (k) VALUES `+strings.TrimSuffix(strings.Repeat("(?),", len(args)), ","), args...)
	return err
}

func (r *rows) Discard() { r.keys = r.keys[:0] }

type rowsKey struct{}

func buffer(tx *Tx, flushes *int, keys ...int) {
	r := tx.Pending(rowsKey{}, func() Pending { return &rows{flushes: flushes} }).(*rows)
	r.keys = append(r.keys, keys...)
}

func keysIn(t *testing.T, db *DB) string {
	t.Helper()
	var got []string
	rs, err := db.Query(context.Background(), `SELECT k FROM t ORDER BY k`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		var k int
		rs.Scan(&k)
		got = append(got, fmt.Sprint(k))
	}
	return strings.Join(got, ",")
}

// TestPendingWritesAreFlushedOnceBeforeCommit: rows buffered over a
// transaction's work reach the table in one statement when it commits, and
// not at all when the work fails — alone or inside a group commit, where
// each caller's buffer is its own.
func TestPendingWritesAreFlushedOnceBeforeCommit(t *testing.T) {
	ctx := context.Background()
	db := openTestSQLite(t)
	flushes := 0
	if err := db.InTx(ctx, func(tx *Tx) error {
		buffer(tx, &flushes, 1, 2)
		buffer(tx, &flushes, 3)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if flushes != 1 || keysIn(t, db) != "1,2,3" {
		t.Fatalf("after a commit: %d flushes, rows %s; want 1 flush of 1,2,3", flushes, keysIn(t, db))
	}
	boom := errors.New("boom")
	if err := db.InTx(ctx, func(tx *Tx) error {
		buffer(tx, &flushes, 4)
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("InTx = %v, want boom", err)
	}
	if err := db.InTx(ctx, func(tx *Tx) error {
		buffer(tx, &flushes, 1) // a duplicate key: the flush fails, and so does the transaction
		_, err := tx.Exec(ctx, `INSERT INTO t (k) VALUES (5)`)
		return err
	}); !IsUniqueViolation(err) {
		t.Fatalf("a failing flush: InTx = %v, want a unique violation", err)
	}
	if got := keysIn(t, db); got != "1,2,3" {
		t.Fatalf("after failed work and a failed flush: rows %s, want 1,2,3", got)
	}

	// Group commit: callers queued behind a held leader share one
	// transaction; each flushes its own buffer, and a failing one alone is
	// rolled back.
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := db.InTx(ctx, func(tx *Tx) error { <-release; return nil }); err != nil {
			t.Error(err)
		}
	}()
	led(db)
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			errs[i] = db.InTx(ctx, func(tx *Tx) error {
				buffer(tx, &n, 10+i)
				if i == 2 {
					return boom
				}
				return nil
			})
		}()
	}
	queued(db, len(errs))
	close(release)
	wg.Wait()
	for i, err := range errs {
		if (i == 2) != errors.Is(err, boom) {
			t.Errorf("grouped caller %d: %v", i, err)
		}
	}
	if got := keysIn(t, db); got != "1,2,3,10,11,13" {
		t.Fatalf("after a group commit: rows %s, want 1,2,3,10,11,13", got)
	}
}

// TestRollbackToASavepointRewindsPendingRows: Rows buffered before a
// savepoint survive a rollback to it, those after it do not; a Pending
// that cannot rewind is flushed when the savepoint is set and discarded
// on the rollback; the rows reach the table in one statement per flush.
func TestRollbackToASavepointRewindsPendingRows(t *testing.T) {
	ctx := context.Background()
	db := openTestSQLite(t)
	flushes := 0
	before := db.Stats()
	if err := db.InTx(ctx, func(tx *Tx) error {
		rows := tx.Pending("rows", func() Pending { return NewRows(`INSERT INTO t (k) VALUES`, 1, "") }).(*Rows)
		rows.Add(1)
		rows.Add(2)
		buffer(tx, &flushes, 20) // not a Rewinder: flushed at the savepoint
		sp, err := tx.Savepoint(ctx, "s")
		if err != nil {
			return err
		}
		rows.Add(3)
		buffer(tx, &flushes, 30)
		tx.OnCommit(func() { t.Error("a hook registered after the savepoint ran") })
		if err := tx.RollbackTo(ctx, sp); err != nil {
			return err
		}
		if err := tx.Release(ctx, sp); err != nil {
			return err
		}
		rows.Add(4)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := keysIn(t, db); got != "1,2,4,20" {
		t.Fatalf("rows %s, want 1,2,4,20", got)
	}
	// The flush of 20, SAVEPOINT, ROLLBACK TO, RELEASE, one insert of 1,2,4.
	if got := db.Stats().Sub(before); got.Statements != 5 || got.Commits != 1 {
		t.Errorf("%+v, want 5 statements and 1 commit", got)
	}
}
