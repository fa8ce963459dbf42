package inbox_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// idAt is a UUIDv7 of time t, as event.NewID makes them at t.
func idAt(t time.Time) string {
	var b [16]byte
	rand.Read(b[:])
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(t.UnixMilli()))
	copy(b[:6], ms[2:])
	b[6] = 0x70 | b[6]&0x0f
	b[8] = 0x80 | b[8]&0x3f
	return uuid.UUID(b).String()
}

// The floor of a time sorts after every UUIDv7 of an earlier millisecond
// and at or before every one of its own; Forgotten is what a prune to the
// horizon deletes: a UUIDv7 id before the horizon's floor, nothing else.
func TestForgottenIsWhatAPruneDeletes(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 891_000_000, time.UTC)
	floor := inbox.V7Floor(at)
	for range 100 {
		if id := idAt(at); id < floor {
			t.Fatalf("an id of %v (%s) sorts before its floor %s", at, id, floor)
		}
		if id := idAt(at.Add(-time.Millisecond)); id >= floor {
			t.Fatalf("an id of the millisecond before (%s) sorts at or after the floor %s", id, floor)
		}
	}
	f := newFixture(t)
	if f.c.Forgotten()(idAt(f.now.Add(-100 * 24 * time.Hour))) {
		t.Error("an event forgotten without a retention")
	}
	f.c.Retention = 30 * 24 * time.Hour
	horizon := f.now.Add(-f.c.Retention)
	for id, want := range map[string]bool{
		idAt(horizon.Add(-time.Millisecond)):    true,
		idAt(horizon.Add(-10 * 24 * time.Hour)): true,
		idAt(horizon):                           false,
		idAt(f.now):                             false,
		"00000000-0000-4000-8000-000000000000":  false, // not a UUIDv7, though it sorts first
		"":                                      false,
		"p1":                                    false,
	} {
		if got := f.c.Forgotten()(id); got != want {
			t.Errorf("Forgotten(%q) = %v, want %v", id, got, want)
		}
	}
}

// TestPruneForgetsOnlyEventsOlderThanTheRetention, on SQLite and
// PostgreSQL: the records of UUIDv7 events older than the horizon go, in
// chunks; those of younger events, and of ids of another kind, stay. An
// event forgotten is applied again if it is delivered again (what a
// replay's guard is for); one remembered is not.
func TestPruneForgetsOnlyEventsOlderThanTheRetention(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			f := newFixture(t)
			if dialect == "postgres" {
				f = newFixtureOn(t, postgresDB(t))
			}
			ctx := context.Background()
			f.c.Retention = 30 * 24 * time.Hour
			horizon := f.now.Add(-f.c.Retention)
			if got := f.c.Horizon(); !got.Equal(horizon) {
				t.Fatalf("Horizon() = %v, want %v", got, horizon)
			}
			old := f.msgWithID("old", idAt(horizon.Add(-time.Millisecond)))
			older := f.msgWithID("older", idAt(horizon.Add(-10*24*time.Hour)))
			young := f.msgWithID("young", idAt(horizon))
			v4 := f.msgWithID("v4", "00000000-0000-4000-8000-000000000000") // sorts first of all
			batch := []*bus.Message{old, older, young, v4}
			if err := f.c.Handle(ctx, batch); err != nil {
				t.Fatal(err)
			}
			// More old records than one statement deletes.
			rows := sqldb.NewRows(`INSERT INTO processed_events (event_id, event_type, processed_at) VALUES`, 3, "")
			for range inbox.PruneChunk + 7 {
				rows.Add(idAt(horizon.Add(-time.Hour)), "ProductCreated", horizon.UnixMilli())
			}
			if err := f.c.DB.InTx(ctx, func(tx *sqldb.Tx) error { return rows.Flush(ctx, tx) }); err != nil {
				t.Fatal(err)
			}
			n, err := f.c.Prune(ctx, f.c.Horizon())
			if err != nil || n != int64(inbox.PruneChunk+7+2) {
				t.Fatalf("Prune = %d, %v; want %d", n, err, inbox.PruneChunk+7+2)
			}
			var left int
			if err := f.c.DB.QueryRow(ctx, `SELECT COUNT(*) FROM processed_events`).Scan(&left); err != nil || left != 2 {
				t.Fatalf("%d records left (%v), want 2: the young event's and the v4 id's", left, err)
			}
			for _, m := range batch {
				var n int
				id := m.Header(eventmsg.HeaderEventID)
				if err := f.c.DB.QueryRow(ctx, `SELECT COUNT(*) FROM processed_events WHERE event_id = ?`, id).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if forgotten := f.c.Forgotten()(id); forgotten != (n == 0) {
					t.Errorf("event %s: Forgotten %v, its record left %v", id, forgotten, n == 1)
				}
			}
			if err := f.c.Handle(ctx, []*bus.Message{old, older, young, v4}); err != nil {
				t.Fatal(err)
			}
			for p, want := range map[string]int{"old": 2, "older": 2, "young": 1, "v4": 1} {
				if got := f.effects(p); got != want {
					t.Errorf("%s applied %d times, want %d", p, got, want)
				}
			}
			if n, err := f.c.Prune(ctx, f.c.Horizon()); err != nil || n != 2 {
				t.Errorf("second Prune = %d, %v; want the 2 records the redelivery wrote again", n, err)
			}
		})
	}
}

func TestNoRetentionNoHorizon(t *testing.T) {
	f := newFixture(t)
	if h := f.c.Horizon(); !h.IsZero() {
		t.Errorf("Horizon() with no retention = %v, want zero", h)
	}
	f.c.Retention, f.c.OwnDeduplication = time.Hour, true
	if h := f.c.Horizon(); !h.IsZero() {
		t.Errorf("Horizon() of handlers that deduplicate themselves = %v, want zero", h)
	}
	// RunPrune returns at once: nothing to prune.
	if err := f.c.RunPrune(context.Background()); err != nil {
		t.Fatal(err)
	}
}
