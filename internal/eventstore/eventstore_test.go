package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/sqldb"
	"github.com/eventmart/eventmart/internal/testenv"
)

// eachDB runs fn on a fresh, migrated SQLite database and on a fresh
// PostgreSQL database (when the test server is named).
func eachDB(t *testing.T, fn func(t *testing.T, db *sqldb.DB)) {
	t.Run("sqlite", func(t *testing.T) {
		db, err := sqldb.Open(context.Background(), "es", "", t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		migrate(t, db)
		fn(t, db)
	})
	t.Run("postgres", func(t *testing.T) {
		base := testenv.Postgres(t)
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		prefix := "t" + strings.ReplaceAll(uuid.NewString(), "-", "")[:20]
		u.Path = "/" + prefix
		db, err := sqldb.Open(context.Background(), "es", u.String(), "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			db.Close()
			conn, err := pgx.Connect(context.Background(), base)
			if err != nil {
				t.Errorf("drop test database: %v", err)
				return
			}
			defer conn.Close(context.Background())
			conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{prefix + "_es"}.Sanitize()+" WITH (FORCE)")
		})
		migrate(t, db)
		fn(t, db)
	})
}

func migrate(t *testing.T, db *sqldb.DB) {
	t.Helper()
	ms := []sqldb.Migration{{Name: "eventstore.sql", SQL: eventstore.Migration}}
	if db.Dialect == sqldb.SQLite { // as the services' (internal/app)
		ms = append(ms, sqldb.Migration{Name: "eventstore_sqlite.sql", SQL: eventstore.SQLiteMigration})
	}
	if err := db.Migrate(context.Background(), ms...); err != nil {
		t.Fatal(err)
	}
}

func ev(typ string, n int) eventstore.Event {
	return eventstore.Event{ID: uuid.NewString(), Type: typ, SchemaVersion: "v1", Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))}
}

func appendTx(ctx context.Context, db *sqldb.DB, stream string, x eventstore.Expected, evs ...eventstore.Event) (int64, error) {
	var v int64
	err := db.InTx(ctx, func(tx *sqldb.Tx) error {
		var err error
		v, err = eventstore.Append(ctx, tx, stream, x, evs...)
		return err
	})
	return v, err
}

func TestAppendExpectations(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		steps := []struct {
			name     string
			expected eventstore.Expected
			n        int
			version  int64 // after, or the actual version of a conflict
			conflict bool
		}{
			{"stream exists on an empty stream", eventstore.StreamExists, 1, 0, true},
			{"exact version 1 on an empty stream", eventstore.Exactly(1), 1, 0, true},
			{"no stream on an empty stream", eventstore.NoStream, 2, 2, false},
			{"no stream on a stream of 2", eventstore.NoStream, 1, 2, true},
			{"exact 1 on a stream of 2", eventstore.Exactly(1), 1, 2, true},
			{"exact 2 on a stream of 2", eventstore.Exactly(2), 3, 5, false},
			{"stream exists", eventstore.StreamExists, 1, 6, false},
			{"any", eventstore.Any, 1, 7, false},
		}
		for i, s := range steps {
			evs := make([]eventstore.Event, s.n)
			for j := range evs {
				evs[j] = ev("Counted", i*10+j)
			}
			v, err := appendTx(ctx, db, "counter-1", s.expected, evs...)
			var ce *eventstore.ConflictError
			switch {
			case s.conflict && !errors.Is(err, eventstore.ErrConflict):
				t.Fatalf("%s: err = %v, want a conflict", s.name, err)
			case s.conflict && (!errors.As(err, &ce) || ce.Actual != s.version || ce.Stream != "counter-1"):
				t.Fatalf("%s: conflict %+v, want actual version %d", s.name, ce, s.version)
			case !s.conflict && (err != nil || v != s.version):
				t.Fatalf("%s: version %d, %v; want %d", s.name, v, err, s.version)
			}
		}
		got, err := eventstore.ReadStream(ctx, db, "counter-1", 0, 0)
		if err != nil || len(got) != 7 {
			t.Fatalf("read %d events, %v; want 7", len(got), err)
		}
		for i, e := range got {
			if e.Version != int64(i+1) || e.Stream != "counter-1" || e.Type != "Counted" || e.Time.IsZero() || string(e.Metadata) != "{}" {
				t.Fatalf("event %d = %+v", i, e)
			}
		}
		if tail, _ := eventstore.ReadStream(ctx, db, "counter-1", 5, 1); len(tail) != 1 || tail[0].Version != 6 {
			t.Fatalf("read after 5, limit 1 = %+v", tail)
		}
		if v, _ := eventstore.StreamVersion(ctx, db, "counter-1"); v != 7 {
			t.Fatalf("stream version %d, want 7", v)
		}
	})
}

func TestAppendIsIdempotentByEventID(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		first := []eventstore.Event{ev("A", 1), ev("B", 2)}
		if v, err := appendTx(ctx, db, "s", eventstore.NoStream, first...); err != nil || v != 2 {
			t.Fatalf("append: %d, %v", v, err)
		}
		// The same command redelivered: same ids, same (now stale) expectation.
		if v, err := appendTx(ctx, db, "s", eventstore.NoStream, first...); err != nil || v != 2 {
			t.Fatalf("repeated append: %d, %v; want a no-op at version 2", v, err)
		}
		// An id stored in another stream is a conflict, not a silent no-op.
		if _, err := appendTx(ctx, db, "other", eventstore.Any, first[0]); !errors.Is(err, eventstore.ErrConflict) {
			t.Fatalf("id of another stream: %v, want a conflict", err)
		}
		if evs, _ := eventstore.ReadStream(ctx, db, "s", 0, 0); len(evs) != 2 {
			t.Fatalf("%d events stored, want 2", len(evs))
		}
	})
}

func TestAppendRefusesBadInput(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		for name, c := range map[string]struct {
			stream string
			evs    []eventstore.Event
		}{
			"no stream id":  {"", []eventstore.Event{ev("A", 1)}},
			"no events":     {"s", nil},
			"no event id":   {"s", []eventstore.Event{{Type: "A", SchemaVersion: "v1", Data: json.RawMessage(`{}`)}}},
			"no data":       {"s", []eventstore.Event{{ID: "x", Type: "A", SchemaVersion: "v1"}}},
			"too many":      {"s", make([]eventstore.Event, eventstore.MaxAppend+1)},
			"no event type": {"s", []eventstore.Event{{ID: "y", SchemaVersion: "v1", Data: json.RawMessage(`{}`)}}},
		} {
			if _, err := appendTx(ctx, db, c.stream, eventstore.Any, c.evs...); err == nil || errors.Is(err, eventstore.ErrConflict) {
				t.Errorf("%s: err = %v, want a validation error", name, err)
			}
		}
	})
}

// Concurrent writers of one hot stream lose no update: each re-reads and
// retries on a conflict.
func TestConcurrentAppendsRetryOnConflict(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sqldb.DB) {
		raceOnHotStream(t, db, 16, 5, func(ctx context.Context, _ int) error {
			return eventstore.Retry(ctx, db, 1000, func(tx *sqldb.Tx) error {
				v, err := eventstore.StreamVersion(ctx, tx, "hot")
				if err != nil {
					return err
				}
				_, err = eventstore.Append(ctx, tx, "hot", eventstore.Exactly(v), ev("Incremented", int(v)))
				return err
			})
		})
	})
}

// raceOnHotStream has writers (numbered from 0) each run each commands on
// stream "hot" at once; a command appends one event whose n is the
// version it read. Then it checks that no update was lost: the stream
// holds every command's event, each decided on the version before it.
func raceOnHotStream(t *testing.T, db *sqldb.DB, writers, each int, command func(ctx context.Context, writer int) error) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for range each {
				errs <- command(ctx, w)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	evs, err := eventstore.ReadStream(ctx, db, "hot", 0, 0)
	if err != nil || len(evs) != writers*each {
		t.Fatalf("%d events, %v; want %d", len(evs), err, writers*each)
	}
	for i, e := range evs {
		var p struct{ N int }
		json.Unmarshal(e.Data, &p)
		if p.N != i {
			t.Fatalf("event %d decided on version %d: a lost update", i+1, p.N)
		}
	}
}

// counter is a test aggregate: the sum of its events' n.
type counter struct {
	Sum    int `json:"sum"`
	Events int `json:"events"`
}

func TestAggregateSnapshots(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		applied := 0
		agg := eventstore.Aggregate[counter]{
			SchemaVersion: 1, SnapshotEvery: 10,
			Apply: func(s counter, e eventstore.Event) (counter, error) {
				applied++
				var p struct{ N int }
				if err := json.Unmarshal(e.Data, &p); err != nil {
					return s, err
				}
				return counter{Sum: s.Sum + p.N, Events: s.Events + 1}, nil
			},
		}
		want := 0
		for i := 1; i <= 25; i++ { // saves of 1 event; snapshots at 10 and 20
			err := db.InTx(ctx, func(tx *sqldb.Tx) error {
				s, v, err := agg.Load(ctx, tx, "c")
				if err != nil {
					return err
				}
				_, _, err = agg.Save(ctx, tx, "c", s, v, ev("Added", i))
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			want += i
		}
		applied = 0
		s, v, err := agg.Load(ctx, db, "c")
		if err != nil || v != 25 || s.Sum != want || s.Events != 25 {
			t.Fatalf("load = %+v at %d, %v; want sum %d at 25", s, v, err, want)
		}
		if applied != 5 {
			t.Fatalf("load applied %d events, want 5 after the snapshot at 20", applied)
		}
		// A new shape of the state: the old snapshot is stale and ignored.
		agg.SchemaVersion = 2
		applied = 0
		if s, v, err := agg.Load(ctx, db, "c"); err != nil || v != 25 || s.Sum != want || applied != 25 {
			t.Fatalf("load with a stale snapshot = %+v at %d (%d applied), %v; want all 25 applied", s, v, applied, err)
		}
		// An aggregate that never snapshots reads none, even one stored.
		agg.SchemaVersion, agg.SnapshotEvery = 1, 0
		applied = 0
		if s, v, err := agg.Load(ctx, db, "c"); err != nil || v != 25 || s.Sum != want || applied != 25 {
			t.Fatalf("load without snapshots = %+v at %d (%d applied), %v; want all 25 applied", s, v, applied, err)
		}
	})
}

// ReadAll after every append returns every event exactly once, in an order
// all readers share.
func TestReadAllReturnsEveryEventOnce(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		var ids []string
		for i := 0; i < 30; i++ {
			e := ev("E", i)
			ids = append(ids, e.ID)
			if _, err := appendTx(ctx, db, fmt.Sprintf("s-%d", i%4), eventstore.Any, e); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		for _, e := range readAll(t, db, eventstore.Cursor{}, 7, len(ids)) {
			got = append(got, e.ID)
		}
		if strings.Join(got, ",") != strings.Join(ids, ",") {
			t.Fatalf("read all = %v\nwant %v", got, ids)
		}
		if _, _, err := eventstore.ReadAll(ctx, db, eventstore.Cursor{}, 0); err == nil {
			t.Fatal("limit 0 accepted")
		}
	})
}

// The PostgreSQL gap: a transaction takes a lower position but commits
// after one that took a higher position. A reader by position alone would
// read the higher one and pass the lower one for good; ReadAll waits for
// it.
func TestReadAllNeverSkipsALateCommit(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sqldb.DB) {
		if db.Dialect != sqldb.Postgres {
			t.Skip("SQLite writes are serial: no transaction commits out of position order")
		}
		ctx := context.Background()
		slowAppended, fastDone, release := make(chan struct{}), make(chan error, 1), make(chan struct{})
		slowDone := make(chan error, 1)
		slow, fast := ev("Slow", 1), ev("Fast", 2)
		go func() {
			slowDone <- db.InTx(ctx, func(tx *sqldb.Tx) error {
				if _, err := eventstore.Append(ctx, tx, "slow", eventstore.Any, slow); err != nil {
					return err
				}
				close(slowAppended)
				<-release // commit only after the other transaction committed
				return nil
			})
		}()
		<-slowAppended
		go func() { _, err := appendTx(ctx, db, "fast", eventstore.Any, fast); fastDone <- err }()
		if err := <-fastDone; err != nil {
			t.Fatal(err)
		}
		// The gap is real: the higher position is visible, the lower one not yet.
		var maxVisible int64
		db.QueryRow(ctx, `SELECT MAX(position) FROM es_events`).Scan(&maxVisible)
		var n int
		db.QueryRow(ctx, `SELECT COUNT(*) FROM es_events`).Scan(&n)
		if n != 1 || maxVisible < 2 {
			t.Fatalf("expected one visible event at position ≥ 2 with a gap below it, got %d events, max position %d", n, maxVisible)
		}
		evs, c, err := eventstore.ReadAll(ctx, db, eventstore.Cursor{}, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 0 {
			t.Fatalf("read %s while an older transaction was in flight", evs[0].Type)
		}
		close(release)
		if err := <-slowDone; err != nil {
			t.Fatal(err)
		}
		evs = readAll(t, db, c, 100, 2)
		if len(evs) != 2 || evs[0].ID != slow.ID || evs[1].ID != fast.ID {
			t.Fatalf("after both committed: %+v; want Slow then Fast", evs)
		}
	})
}

// readAll reads from c in pages of limit until it has want events. The
// fence is the oldest transaction in flight on the whole PostgreSQL server,
// so other tests' transactions may hold events back for a moment: it polls
// (for up to 30 s) rather than taking one empty read as the end.
func readAll(t *testing.T, db *sqldb.DB, c eventstore.Cursor, limit, want int) []eventstore.Event {
	t.Helper()
	var got []eventstore.Event
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < want && time.Now().Before(deadline) {
		evs, next, err := eventstore.ReadAll(context.Background(), db, c, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 && next != c {
			t.Fatalf("an empty read moved the cursor %v → %v", c, next)
		}
		if len(evs) == 0 {
			time.Sleep(10 * time.Millisecond) // polling: nothing settled yet
		}
		got, c = append(got, evs...), next
	}
	if evs, _, _ := eventstore.ReadAll(context.Background(), db, c, limit); len(evs) > 0 {
		t.Fatalf("read %d events beyond the %d written", len(evs), want)
	}
	return got
}
