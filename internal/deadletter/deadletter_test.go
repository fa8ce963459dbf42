package deadletter_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/deadletter"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// newStore is a dead-letter queue over a fresh SQLite database holding one
// dead letter, a permanent failure.
func newStore(t *testing.T) *deadletter.Store {
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "t", "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, sqldb.Migration{Name: "1", SQL: deadletter.Migration}); err != nil {
		t.Fatal(err)
	}
	s := &deadletter.Store{DB: db, Group: "test-service"}
	m := &bus.Message{Topic: "catalog-events", Partition: 0, Offset: 7, Key: []byte("k"), Value: []byte(`{"eventType":"ProductCreated"}`),
		Headers: []bus.Header{{Key: eventmsg.HeaderEventType, Value: []byte("ProductCreated")}}}
	err = db.InTx(ctx, func(tx *sqldb.Tx) error { return s.Add(ctx, tx, m, errors.New("bad"), true, 1, time.Now()) })
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDiscard(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	dl, _ := s.List(ctx, deadletter.StatusDead, 10, 0)
	if err := s.Discard(ctx, dl[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Discard(ctx, dl[0].ID); err == nil {
		t.Error("discarded twice")
	}
	if n, _ := s.Redrive(ctx, nil); n != 0 {
		t.Error("a discarded letter was redriven")
	}
	if _, err := s.Get(ctx, 12345); err == nil {
		t.Error("unknown dead letter found")
	}
}
