package outbox_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// TestEmitOneReturnsTheEventItAdded: the event EmitOne returns carries the
// origin it was given and is the one the relay then publishes.
func TestEmitOneReturnsTheEventItAdded(t *testing.T) { onEachDB(t, testEmitOneReturnsTheEventItAdded) }

func testEmitOneReturnsTheEventItAdded(t *testing.T, db *sqldb.DB) {
	ctx := context.Background()
	o := event.Origin{CorrelationID: "corr-1", CausationID: "cause-1"}
	var e *event.Envelope
	err := db.InTx(ctx, func(tx *sqldb.Tx) error {
		var err error
		e, err = outbox.EmitOne(ctx, tx, "test-service", o, &event.InventoryAdjusted{ProductID: "p1", Delta: 3})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if e.EventID == "" || e.CorrelationID != o.CorrelationID || e.CausationID != o.CausationID || e.Source != "test-service" {
		t.Fatalf("EmitOne returned %+v, want a new event with origin %+v from test-service", e, o)
	}
	pub := &recorder{got: make(chan struct{}, 1)}
	n, err := outbox.NewRelay(db, pub, slog.New(slog.NewTextHandler(io.Discard, nil))).RelayOnce(ctx)
	if err != nil || n != 1 {
		t.Fatalf("relayed %d, %v; want 1", n, err)
	}
	var id string
	for _, h := range pub.msgs[0].Headers {
		if h.Key == "eventId" {
			id = string(h.Value)
		}
	}
	if id != e.EventID {
		t.Fatalf("published event id %q, EmitOne returned %q", id, e.EventID)
	}
}
