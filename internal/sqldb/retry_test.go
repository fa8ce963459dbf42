package sqldb

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestInTxRetriesLostDeadlocksOnly(t *testing.T) {
	deadlock := fmt.Errorf("inventory: read stock: %w", &pgconn.PgError{Code: "40P01"})
	if !isRetryable(deadlock) || !isRetryable(&pgconn.PgError{Code: "40001"}) {
		t.Error("deadlock or serialization failure not retryable")
	}
	if isRetryable(&pgconn.PgError{Code: "23505"}) || isRetryable(errors.New("x")) || isRetryable(nil) {
		t.Error("other errors retryable")
	}
	db, err := openSQLite(t.TempDir() + "/r.db")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	calls := 0
	err = db.InTx(context.Background(), func(*Tx) error {
		calls++
		if calls < 3 {
			return deadlock
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("InTx = %v after %d calls, want success on the third", err, calls)
	}
	calls = 0
	db.InTx(context.Background(), func(*Tx) error { calls++; return deadlock })
	if calls != 5 {
		t.Errorf("a deadlock that never clears ran %d times, want 5", calls)
	}
}
