package sqldb_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/eventmart/eventmart/internal/sqldb"
	"github.com/eventmart/eventmart/internal/testenv"
)

// TestUnavailableTellsALostDatabaseFromARefusedStatement, on a real
// PostgreSQL: a statement the server refuses is not unavailability; a
// connection the server terminates in the middle of a transaction is, and
// so is a server that does not answer at all.
func TestUnavailableTellsALostDatabaseFromARefusedStatement(t *testing.T) {
	ctx := context.Background()
	url := testenv.FreshPostgres(t, "unavailable")
	db, err := sqldb.Open(ctx, "unavailable", url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	if _, err := db.Exec(ctx, `SELECT * FROM no_such_table`); err == nil || sqldb.Unavailable(err) {
		t.Errorf("a missing table: Unavailable(%v) = true, want an error that is not unavailability", err)
	}
	if sqldb.Unavailable(nil) {
		t.Error("Unavailable(nil) = true")
	}

	admin, err := pgx.Connect(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	err = db.InTx(ctx, func(tx *sqldb.Tx) error {
		var pid int
		if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			return err
		}
		var gone bool // pg_terminate_backend with a timeout waits until the backend has exited
		if err := admin.QueryRow(ctx, `SELECT pg_terminate_backend($1, 10000)`, pid).Scan(&gone); err != nil || !gone {
			t.Fatalf("terminate backend %d: %v, %v", pid, gone, err)
		}
		_, err := tx.Exec(ctx, `SELECT 1`)
		return err
	})
	if err == nil || !sqldb.Unavailable(err) {
		t.Errorf("a transaction whose connection was terminated: Unavailable(%v) = false, want true", err)
	}
	// The pool replaces the connection lost: the database is back.
	if _, err := db.Exec(ctx, `SELECT 1`); err != nil {
		t.Errorf("after the termination: %v", err)
	}

	if _, err := sqldb.Open(ctx, "unavailable", "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=5", ""); err == nil || !sqldb.Unavailable(err) {
		t.Errorf("no server: Unavailable(%v) = false, want true", err)
	}
}
