package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/sqldb"
	"github.com/eventmart/eventmart/internal/testenv"
)

// recorder is a bus.Publisher that keeps what it was given, and can fail
// the next calls on demand.
type recorder struct {
	mu    sync.Mutex
	msgs  []*bus.Message
	fails int
	got   chan struct{} // signalled after every successful call
}

func (p *recorder) Publish(ctx context.Context, msgs ...*bus.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fails > 0 {
		p.fails--
		return fmt.Errorf("broker unavailable")
	}
	p.msgs = append(p.msgs, msgs...)
	select {
	case p.got <- struct{}{}:
	default:
	}
	return nil
}

func (p *recorder) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.msgs)
}

// outboxDB opens a SQLite database with the outbox table, closed when
// the test ends.
func outboxDB(t *testing.T) *sqldb.DB {
	t.Helper()
	return openOutboxDB(t, "", t.TempDir())
}

// postgresOutboxDB is outboxDB on PostgreSQL, a database of the test's
// own (skipped without a server, see testenv).
func postgresOutboxDB(t *testing.T) *sqldb.DB {
	t.Helper()
	return openOutboxDB(t, testenv.FreshPostgres(t, "relay"), "")
}

func openOutboxDB(t *testing.T, dsn, dir string) *sqldb.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "relay", dsn, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, sqldb.Migration{Name: "outbox.sql", SQL: outbox.Migration}); err != nil {
		t.Fatal(err)
	}
	return db
}

// onEachDB runs test on SQLite and on PostgreSQL.
func onEachDB(t *testing.T, test func(t *testing.T, db *sqldb.DB)) {
	t.Run("sqlite", func(t *testing.T) { test(t, outboxDB(t)) })
	t.Run("postgres", func(t *testing.T) { test(t, postgresOutboxDB(t)) })
}

// TestRunRelaysEveryRowOnceInOrder: rows committed while Run works through
// several batches (the delete of one overlapping the next) are published
// once each, in commit order per key, and deleted.
func TestRunRelaysEveryRowOnceInOrder(t *testing.T) { onEachDB(t, testRunRelaysEveryRowOnceInOrder) }

func testRunRelaysEveryRowOnceInOrder(t *testing.T, db *sqldb.DB) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := &recorder{fails: 2, got: make(chan struct{}, 1)}
	r := outbox.NewRelay(db, pub, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()

	const keys, perKey = 10, 350 // 3,500 rows: several batches of 1,000
	for i := 0; i < perKey; i++ {
		if err := db.InTx(ctx, func(tx *sqldb.Tx) error {
			for k := 0; k < keys; k++ {
				if err := outbox.Emit(ctx, tx, "test-service", event.Origin{}, &event.InventoryAdjusted{ProductID: fmt.Sprint("p", k), Delta: int64(i)}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		r.Notify()
	}
	for pub.count() < keys*perKey {
		<-pub.got
		r.Notify() // the relay may be waiting for its poll after a failed publish
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	seen := map[string]bool{}
	next := map[string]int64{}
	for _, m := range pub.msgs {
		e, err := eventmsg.Decode(m)
		if err != nil {
			t.Fatal(err)
		}
		if seen[e.EventID] {
			t.Fatalf("event %s published twice", e.EventID)
		}
		seen[e.EventID] = true
		p, err := e.Payload()
		if err != nil {
			t.Fatal(err)
		}
		a := p.(*event.InventoryAdjusted)
		if a.Delta != next[a.ProductID] {
			t.Fatalf("%s: event %d published after %d", a.ProductID, a.Delta, next[a.ProductID]-1)
		}
		next[a.ProductID]++
	}
	if len(seen) != keys*perKey {
		t.Fatalf("%d events published, want %d", len(seen), keys*perKey)
	}
	var left int
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM outbox`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("%d published rows left in the outbox after Run returned", left)
	}
}

// TestRunPublishesOnNotifyWithoutWaitingForThePoll: a relay whose poll
// intervals are an hour publishes rows as soon as their commit is
// notified, not at its next poll.
func TestRunPublishesOnNotifyWithoutWaitingForThePoll(t *testing.T) {
	onEachDB(t, testRunPublishesOnNotifyWithoutWaitingForThePoll)
}

func testRunPublishesOnNotifyWithoutWaitingForThePoll(t *testing.T, db *sqldb.DB) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := &recorder{got: make(chan struct{}, 1)}
	r := outbox.NewRelay(db, pub, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.Poll, r.SafetyPoll = time.Hour, time.Hour
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for i := range 3 {
		if err := db.InTx(ctx, func(tx *sqldb.Tx) error {
			return outbox.Emit(ctx, tx, "test-service", event.Origin{}, &event.InventoryAdjusted{ProductID: "p", Delta: int64(i)})
		}); err != nil {
			t.Fatal(err)
		}
		r.Notify()
		select {
		case <-pub.got:
		case <-time.After(30 * time.Second):
			t.Fatalf("row %d not published after Notify (the poll is an hour away)", i)
		}
		if n := pub.count(); n != i+1 {
			t.Fatalf("%d events published after %d commits", n, i+1)
		}
	}
	// Published rows may wait to be deleted; they are not unsent. The
	// relay marks a row published when Publish has returned, a moment
	// after the recorder signalled: wait for that, not for a deletion.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		n, age, err := r.Backlog(ctx)
		if err == nil && n == 0 && age == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Backlog = %d rows, oldest %s, %v 30s after every row was published; want none", n, age, err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var left int
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM outbox`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d published rows left in the outbox after Run returned (%v)", left, err)
	}
}

// TestPostgresCommitsWakeTheRelay: on PostgreSQL a commit that adds rows
// wakes the relay by itself (LISTEN/NOTIFY), as the commits of the
// service's other instances do, whose Notify does not reach this relay:
// rows committed with no Notify are published, the polls an hour away.
// After its listening connection is cut the relay listens again.
func TestPostgresCommitsWakeTheRelay(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := postgresOutboxDB(t)
	pub := &recorder{got: make(chan struct{}, 1)}
	r := outbox.NewRelay(db, pub, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.Poll, r.SafetyPoll = time.Hour, time.Hour
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	emitted := 0
	emit := func() {
		t.Helper()
		if err := db.InTx(ctx, func(tx *sqldb.Tx) error {
			return outbox.Emit(ctx, tx, "other-instance", event.Origin{}, &event.InventoryAdjusted{ProductID: "p", Delta: int64(emitted)})
		}); err != nil {
			t.Fatal(err)
		}
		emitted++
		for pub.count() < emitted {
			select {
			case <-pub.got:
			case <-time.After(30 * time.Second):
				t.Fatalf("row %d, committed without Notify, not published (the polls are an hour away)", emitted)
			}
		}
	}
	// listener returns the pid of the relay's listening backend, once
	// there is one other than not.
	listener := func(not int) int {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			var pid int
			err := db.QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = ? AND pid <> ?`, "LISTEN "+outbox.Channel, not).Scan(&pid)
			if err == nil {
				return pid
			}
			if !errors.Is(err, sql.ErrNoRows) {
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatal("the relay is not listening after 30s")
			}
			time.Sleep(20 * time.Millisecond) // polling pg_stat_activity
		}
	}
	pid := listener(0)
	emit()
	emit()
	var ok bool
	if err := db.QueryRow(ctx, `SELECT pg_terminate_backend(?)`, pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate the listening backend %d: %v, %v", pid, ok, err)
	}
	listener(pid)
	emit()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := pub.count(); n != emitted {
		t.Fatalf("%d events published for %d rows", n, emitted)
	}
}
