package lease_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmart/eventmart/internal/lease"
	"github.com/eventmart/eventmart/internal/sqldb"
	"github.com/eventmart/eventmart/internal/testenv"
)

// instance is one process's view: its own pool on the shared database.
type instance struct {
	db      *sqldb.DB
	running atomic.Bool // fn is running
	cancel  context.CancelFunc
	done    chan error
}

func start(t *testing.T, base string, holders *atomic.Int32, maxHolders *atomic.Int32) *instance {
	t.Helper()
	db, err := sqldb.Open(context.Background(), "lease", base, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{db: db, cancel: cancel, done: make(chan error, 1)}
	l := &lease.Lease{DB: db, Name: "test work", Log: slog.New(slog.DiscardHandler), Retry: 20 * time.Millisecond, Check: 50 * time.Millisecond}
	go func() {
		in.done <- l.Run(ctx, func(ctx context.Context) error {
			n := holders.Add(1)
			for {
				m := maxHolders.Load()
				if n <= m || maxHolders.CompareAndSwap(m, n) {
					break
				}
			}
			in.running.Store(true)
			<-ctx.Done()
			in.running.Store(false)
			holders.Add(-1)
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-in.done })
	return in
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// One of two instances works; when it stops, or its session is killed
// under it, the other takes over, and never do both work at once (beyond
// the holder noticing a killed session).
func TestOneHolderAndTakeover(t *testing.T) {
	url := testenv.Postgres(t)
	b := make([]byte, 4)
	rand.Read(b)
	base := strings.Replace(url, "/postgres?", "/l"+hex.EncodeToString(b)+"?", 1)
	var holders, maxHolders atomic.Int32
	a := start(t, base, &holders, &maxHolders)
	waitFor(t, "a to hold the lease", a.running.Load)
	c := start(t, base, &holders, &maxHolders)
	time.Sleep(300 * time.Millisecond) // give c many chances to (wrongly) take it: 15 retries
	if c.running.Load() || maxHolders.Load() != 1 {
		t.Fatalf("second instance works too (max holders %d)", maxHolders.Load())
	}

	// a stops: c takes over quickly.
	t0 := time.Now()
	a.cancel()
	if err := <-a.done; err != nil {
		t.Fatal(err)
	}
	a.done <- nil // for the cleanup
	waitFor(t, "c to take over", c.running.Load)
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("takeover took %s", d)
	}

	// c's session dies (as when its process is killed, or the server
	// restarts): c notices and stops, a third instance takes over.
	d := start(t, base, &holders, &maxHolders)
	if _, err := d.db.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid() AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c to notice its lost session", func() bool { return !c.running.Load() })
	waitFor(t, "d to take over", d.running.Load)
	if maxHolders.Load() > 2 {
		t.Errorf("%d holders at once", maxHolders.Load())
	}
}

// On SQLite the lease is always held: fn runs at once.
func TestSQLiteAlwaysHeld(t *testing.T) {
	db, err := sqldb.Open(context.Background(), "lease", "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ran := false
	l := &lease.Lease{DB: db, Name: "x", Log: slog.New(slog.DiscardHandler)}
	if err := l.Run(context.Background(), func(context.Context) error { ran = true; return nil }); err != nil || !ran {
		t.Fatalf("ran %v, err %v", ran, err)
	}
}
