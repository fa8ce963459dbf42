package sqldb

import (
	"context"
	"testing"
)

type cacheTestKey struct{}

// A transaction's Cache is one map for all its work, and a rollback to a
// savepoint empties it: what it held may have been undone.
func TestCacheLivesWithItsTransaction(t *testing.T) {
	db := openTestSQLite(t)
	ctx := context.Background()
	err := db.InTx(ctx, func(tx *Tx) error {
		Cache[string, int](tx, cacheTestKey{})["a"] = 1
		if got := Cache[string, int](tx, cacheTestKey{})["a"]; got != 1 {
			t.Errorf("read back %d, want 1", got)
		}
		sp, err := tx.Savepoint(ctx, "s")
		if err != nil {
			return err
		}
		if err := tx.RollbackTo(ctx, sp); err != nil {
			return err
		}
		if n := len(Cache[string, int](tx, cacheTestKey{})); n != 0 {
			t.Errorf("%d entries after a rollback to a savepoint, want none", n)
		}
		return tx.Release(ctx, sp)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.InTx(ctx, func(tx *Tx) error {
		if n := len(Cache[string, int](tx, cacheTestKey{})); n != 0 {
			t.Errorf("a new transaction's cache has %d entries, want none", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
