package sqldb_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/internal/sqldb"
	"github.com/eventmart/eventmart/internal/testenv"
)

// TestListenRetriesAfterASecondOnceItListened: a listening connection cut
// twice is listened to again after a second both times — the pause grows
// only while LISTEN keeps failing, not across healthy listens.
func TestListenRetriesAfterASecondOnceItListened(t *testing.T) {
	url := testenv.Postgres(t)
	b := make([]byte, 4)
	rand.Read(b)
	db, err := sqldb.Open(context.Background(), "listen", strings.Replace(url, "/postgres?", "/t"+hex.EncodeToString(b)+"?", 1), "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	listening := make(chan struct{}, 4)
	lost := make(chan time.Duration, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		db.Listen(ctx, "eventmart_listen_test", sqldb.Listener{
			Listening: func() { listening <- struct{}{} },
			Lost:      func(_ error, retryIn time.Duration) { lost <- retryIn },
		})
	}()
	for cut := 1; cut <= 2; cut++ {
		select {
		case <-listening:
		case <-time.After(30 * time.Second):
			t.Fatalf("cut %d: not listening after 30s", cut)
		}
		var n int
		if err := db.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN eventmart_listen_test'`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("cut %d: terminated %d listening backends (%v), want 1", cut, n, err)
		}
		select {
		case pause := <-lost:
			if pause != time.Second {
				t.Errorf("cut %d: listens again after %s, want 1s", cut, pause)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("cut %d: the loss was not reported", cut)
		}
	}
	cancel()
	<-done
}
