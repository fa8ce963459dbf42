package sqldb_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/eventmart/eventmart/internal/sqldb"
)

// readBack is a Pending that reads t when flushed: registered after the
// Rows, it must see what they inserted.
type readBack struct{ n *int }

func (r readBack) Flush(ctx context.Context, tx *sqldb.Tx) error {
	return tx.QueryRow(ctx, `SELECT COUNT(*) FROM t`).Scan(r.n)
}

func (readBack) Discard() {}

// The pending rows of several tables flushed before a commit reach the
// server in one round trip on PostgreSQL (with a savepoint's queued
// RELEASE), and a read while flushing sees them; a failing insert among
// them fails the transaction with its own error, and nothing commits.
func TestPendingRowsAreFlushedInOneRoundTrip(t *testing.T) {
	savepointDialects(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if _, err := db.Exec(ctx, `CREATE TABLE u (k BIGINT PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
		var seen int
		flush := func(tx *sqldb.Tx, tk, uk int64, read bool) error {
			sp, err := tx.LazySavepoint(ctx, "s")
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO t (k) VALUES (?)`, tk); err != nil {
				return err
			}
			if err := tx.Release(ctx, sp); err != nil {
				return err
			}
			tx.Pending("t", func() sqldb.Pending { return sqldb.NewRows(`INSERT INTO t (k) VALUES`, 1, "") }).(*sqldb.Rows).Add(tk + 1)
			tx.Pending("u", func() sqldb.Pending { return sqldb.NewRows(`INSERT INTO u (k) VALUES`, 1, "") }).(*sqldb.Rows).Add(uk)
			if read {
				tx.Pending("read", func() sqldb.Pending { return readBack{&seen} })
			}
			return nil
		}
		before := db.Stats()
		if err := db.InTx(ctx, func(tx *sqldb.Tx) error { return flush(tx, 1, 1, false) }); err != nil {
			t.Fatal(err)
		}
		// SAVEPOINT, the insert, RELEASE, both tables' rows: on PostgreSQL
		// the SAVEPOINT goes with the insert, the rows with the COMMIT
		// (uncounted), and the RELEASE not at all (COMMIT releases).
		want := sqldb.Stats{Statements: 5, RoundTrips: 5, Commits: 1}
		if db.Dialect == sqldb.Postgres {
			want = sqldb.Stats{Statements: 4, RoundTrips: 2, Commits: 1}
		}
		if got := db.Stats().Sub(before); got != want {
			t.Errorf("%+v, want %+v", got, want)
		}

		if err := db.InTx(ctx, func(tx *sqldb.Tx) error { return flush(tx, 10, 10, true) }); err != nil {
			t.Fatal(err)
		}
		if seen != 4 {
			t.Errorf("a read while flushing saw %d rows of t, want 4", seen)
		}

		// u's 1 again: the transaction fails, with the insert's error.
		err := db.InTx(ctx, func(tx *sqldb.Tx) error { return flush(tx, 20, 1, false) })
		if !sqldb.IsUniqueViolation(err) || !strings.Contains(err.Error(), "INSERT INTO u (k) VALUES") {
			t.Fatalf("a duplicate pending row: %v", err)
		}
		var n int
		if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM t WHERE k >= 20`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("%d rows of the failed transaction, %v", n, err)
		}

		// On PostgreSQL a statement's failure aborts the transaction: work
		// that ignores it and returns nil gets the COMMIT's refusal.
		if db.Dialect == sqldb.Postgres {
			err := db.InTx(ctx, func(tx *sqldb.Tx) error {
				if _, err := tx.Exec(ctx, `INSERT INTO t (k) VALUES (30)`); err != nil {
					return err
				}
				tx.Exec(ctx, `INSERT INTO u (k) VALUES (1)`) //nolint:errcheck // the failure under test
				return nil
			})
			if !errors.Is(err, pgx.ErrTxCommitRollback) {
				t.Fatalf("work ignoring a failed statement: %v, want the COMMIT rolled back", err)
			}
			if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM t WHERE k >= 20`).Scan(&n); err != nil || n != 0 {
				t.Fatalf("%d rows of the failed transaction, %v", n, err)
			}
		}
	})
}
