package sqldb

import (
	"context"
	"testing"
)

// chained is a Pending whose Flush buffers rows into another pending write,
// as a block whose flush emits outbox rows buffered in turn.
type chained struct{ flushes *int }

type chainedKey struct{}

func (c chained) Flush(ctx context.Context, tx *Tx) error {
	buffer(tx, c.flushes, 7, 8)
	return nil
}

func (c chained) Discard() {}

// TestPendingWriteRegisteredByAFlushIsFlushed: a flush that buffers rows
// into a pending write registered only then still gets them written
// before the commit.
func TestPendingWriteRegisteredByAFlushIsFlushed(t *testing.T) {
	ctx := context.Background()
	db := openTestSQLite(t)
	flushes := 0
	if err := db.InTx(ctx, func(tx *Tx) error {
		tx.Pending(chainedKey{}, func() Pending { return chained{&flushes} })
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := keysIn(t, db); flushes != 1 || got != "7,8" {
		t.Fatalf("%d flushes, rows %q; want 1 flush of 7,8", flushes, got)
	}
}

// emitsRows is a Pending that cannot rewind whose Flush adds rows to a
// Rows registered only then, as the audit's block emits its archive record
// into the outbox's rows.
type emitsRows struct{ keys []any }

type emitsRowsKey struct{}
type emittedKey struct{}

func (e *emitsRows) Flush(ctx context.Context, tx *Tx) error {
	if len(e.keys) == 0 {
		return nil
	}
	rows := tx.Pending(emittedKey{}, func() Pending { return NewRows(`INSERT INTO t (k) VALUES`, 1, "") }).(*Rows)
	for _, k := range e.keys {
		rows.Add(k)
	}
	e.keys = nil
	return nil
}

func (e *emitsRows) Discard() { e.keys = nil }

// TestRollbackToASavepointKeepsWhatAFlushAtTheSavepointEmitted: setting a
// savepoint flushes a pending write that cannot rewind; the rows its flush
// buffered belong before the savepoint and survive a rollback to it, while
// rows buffered after it do not.
func TestRollbackToASavepointKeepsWhatAFlushAtTheSavepointEmitted(t *testing.T) {
	ctx := context.Background()
	db := openTestSQLite(t)
	if err := db.InTx(ctx, func(tx *Tx) error {
		tx.Pending(emitsRowsKey{}, func() Pending { return &emitsRows{} }).(*emitsRows).keys = []any{1, 2}
		sp, err := tx.Savepoint(ctx, "record")
		if err != nil {
			return err
		}
		tx.Pending(emittedKey{}, nil).(*Rows).Add(3) // after the savepoint
		if err := tx.RollbackTo(ctx, sp); err != nil {
			return err
		}
		return tx.Release(ctx, sp)
	}); err != nil {
		t.Fatal(err)
	}
	if got := keysIn(t, db); got != "1,2" {
		t.Fatalf("rows %q, want 1,2 (emitted before the savepoint; 3 was rolled back)", got)
	}
}
