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
