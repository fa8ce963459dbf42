package outbox_test

import (
	"context"
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
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "relay", "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, sqldb.Migration{Name: "outbox.sql", SQL: outbox.Migration}); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestRunRelaysEveryRowOnceInOrder: rows committed while Run works through
// several batches (the delete of one overlapping the next) are published
// once each, in commit order per key, and deleted.
func TestRunRelaysEveryRowOnceInOrder(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := outboxDB(t)
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
// interval is an hour publishes rows as soon as their commit is notified,
// not at its next poll.
func TestRunPublishesOnNotifyWithoutWaitingForThePoll(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := outboxDB(t)
	pub := &recorder{got: make(chan struct{}, 1)}
	r := outbox.NewRelay(db, pub, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.Poll = time.Hour
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
	// Published rows may wait to be deleted (SQLite); they are not unsent.
	if n, age, err := r.Backlog(ctx); err != nil || n != 0 || age != 0 {
		t.Fatalf("Backlog = %d rows, oldest %s, %v after every row was published; want none", n, age, err)
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
