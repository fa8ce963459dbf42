package sqldb_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/eventmart/eventmart/internal/sqldb"
	"github.com/eventmart/eventmart/internal/testenv"
)

// savepointDialects runs test on an empty database of each dialect with a
// table t (k BIGINT PRIMARY KEY); PostgreSQL is skipped without a server.
func savepointDialects(t *testing.T, test func(t *testing.T, db *sqldb.DB)) {
	ctx := context.Background()
	t.Run("sqlite", func(t *testing.T) {
		db, err := sqldb.Open(ctx, "sp", "", t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(ctx, `CREATE TABLE t (k BIGINT PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
		test(t, db)
	})
	t.Run("postgres", func(t *testing.T) {
		url := testenv.Postgres(t)
		b := make([]byte, 4)
		rand.Read(b)
		prefix := "t" + hex.EncodeToString(b)
		db, err := sqldb.Open(ctx, "sp", strings.Replace(url, "/postgres?", "/"+prefix+"?", 1), "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			db.Close()
			if conn, err := pgx.Connect(ctx, url); err == nil {
				conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{prefix + "_sp"}.Sanitize()+" WITH (FORCE)")
				conn.Close(ctx)
			}
		})
		if _, err := db.Exec(ctx, `CREATE TABLE t (k BIGINT PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
		test(t, db)
	})
}

func count(ctx context.Context, t *testing.T, tx *sqldb.Tx) int {
	t.Helper()
	var n int
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM t`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A lazy savepoint rolls back what was written after it, a failed insert
// among it, as a savepoint does; on PostgreSQL its SAVEPOINT and RELEASE
// cost no round trip of their own — they go with the next write, or not at
// all when nothing was written behind it — and a failed read under a lazy
// savepoint is recovered from by the enclosing savepoint.
func TestLazySavepoint(t *testing.T) {
	savepointDialects(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		pg := db.Dialect == sqldb.Postgres
		trips := func(before sqldb.Stats, statements, roundTrips int64) {
			t.Helper()
			if !pg {
				return
			}
			if got := db.Stats().Sub(before); got.Statements != statements || got.RoundTrips != roundTrips {
				t.Errorf("%d statements in %d round trips, want %d in %d", got.Statements, got.RoundTrips, statements, roundTrips)
			}
		}
		err := db.InTx(ctx, func(tx *sqldb.Tx) error {
			// Nothing written behind it: a read, and no savepoint statement.
			before := db.Stats()
			sp, err := tx.LazySavepoint(ctx, "a")
			if err != nil {
				return err
			}
			count(ctx, t, tx)
			if err := tx.Release(ctx, sp); err != nil {
				return err
			}
			trips(before, 1, 1)

			// A write: SAVEPOINT with it; rolled back to; released with the
			// next write.
			before = db.Stats()
			if sp, err = tx.LazySavepoint(ctx, "b"); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO t (k) VALUES (1)`); err != nil {
				return err
			}
			trips(before, 2, 1)
			if err := tx.RollbackTo(ctx, sp); err != nil {
				return err
			}
			if err := tx.Release(ctx, sp); err != nil {
				return err
			}
			if n := count(ctx, t, tx); n != 0 {
				t.Errorf("%d rows after the rollback, want 0", n)
			}
			before = db.Stats()
			if _, err := tx.Exec(ctx, `INSERT INTO t (k) VALUES (2)`); err != nil {
				return err
			}
			trips(before, 2, 1) // RELEASE and the insert

			// A write that fails (as a conflicting append): the savepoint
			// was set before it, and the transaction goes on.
			if sp, err = tx.LazySavepoint(ctx, "c"); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO t (k) VALUES (2)`); !sqldb.IsUniqueViolation(err) {
				t.Errorf("duplicate insert: %v, want a unique violation", err)
			}
			if err := tx.RollbackTo(ctx, sp); err != nil {
				return err
			}
			if err := tx.Release(ctx, sp); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO t (k) VALUES (3)`); err != nil {
				return err
			}

			// Nested in a savepoint set at once: a rollback to the outer
			// one drops the inner one's queued RELEASE; a failed read
			// under a lazy savepoint is recovered from by the outer one.
			outer, err := tx.Savepoint(ctx, "outer_sp")
			if err != nil {
				return err
			}
			inner, err := tx.LazySavepoint(ctx, "inner_sp")
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO t (k) VALUES (4)`); err != nil {
				return err
			}
			if err := tx.Release(ctx, inner); err != nil {
				return err
			}
			if _, err := tx.LazySavepoint(ctx, "inner_sp"); err != nil {
				return err
			}
			var x int
			if err := tx.QueryRow(ctx, `SELECT 1 / (k - k) FROM t WHERE k = 4`).Scan(&x); err == nil {
				t.Error("a division by zero succeeded")
			}
			if err := tx.RollbackTo(ctx, outer); err != nil {
				return err
			}
			if err := tx.Release(ctx, outer); err != nil {
				return err
			}
			if n := count(ctx, t, tx); n != 2 {
				t.Errorf("%d rows after the rollback to outer, want 2", n)
			}

			// Queued at the end: COMMIT releases it.
			if _, err := tx.LazySavepoint(ctx, "d"); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO t (k) VALUES (5)`)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		rows, err := sqldb.List(ctx, db, `SELECT k FROM t ORDER BY k`, nil, sqldb.ScanOne[int64])
		if err != nil || len(rows) != 3 || rows[0] != 2 || rows[1] != 3 || rows[2] != 5 {
			t.Fatalf("rows %v, %v; want [2 3 5]", rows, err)
		}
	})
}

// A query that is not a SELECT may write: the queued SAVEPOINT is sent
// before it, so a rollback to the savepoint undoes it.
func TestLazySavepointIsSetBeforeAWritingQuery(t *testing.T) {
	savepointDialects(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		err := db.InTx(ctx, func(tx *sqldb.Tx) error {
			sp, err := tx.LazySavepoint(ctx, "w")
			if err != nil {
				return err
			}
			var k int64
			if err := tx.QueryRow(ctx, `INSERT INTO t (k) VALUES (7) RETURNING k`).Scan(&k); err != nil || k != 7 {
				t.Errorf("INSERT … RETURNING: %d, %v", k, err)
			}
			if err := tx.RollbackTo(ctx, sp); err != nil {
				return err
			}
			return tx.Release(ctx, sp)
		})
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM t`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("%d rows, %v; want none", n, err)
		}
	})
}
