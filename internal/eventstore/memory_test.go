package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// tally is a state with a map Apply writes in place, as inventory's stock.
type tally struct {
	Sum  int            `json:"sum"`
	Seen map[string]int `json:"seen"` // events by type
}

// tallies returns an aggregate of tallies snapshotted every 2 events,
// remembering in mem (nil: none), counting the events it applies.
func tallies(mem *eventstore.Memory[tally], applied *atomic.Int64) eventstore.Aggregate[tally] {
	return eventstore.Aggregate[tally]{
		SchemaVersion: 1, SnapshotEvery: 2, Memory: mem,
		Apply: func(s tally, e eventstore.Event) (tally, error) {
			applied.Add(1)
			var p struct{ N int }
			if err := json.Unmarshal(e.Data, &p); err != nil {
				return s, err
			}
			if s.Seen == nil {
				s.Seen = map[string]int{}
			}
			s.Seen[e.Type]++
			s.Sum += p.N
			return s, nil
		},
		Clone: func(s tally) tally { s.Seen = maps.Clone(s.Seen); return s },
	}
}

// add loads stream through a and saves events of n = 1, 2, … to it in one
// transaction, which fails (rolls back) with fail when it is not nil.
func add(ctx context.Context, db *sqldb.DB, a eventstore.Aggregate[tally], stream string, events int, fail error) (tally, int64, error) {
	var s tally
	var v int64
	err := db.InTx(ctx, func(tx *sqldb.Tx) error {
		var err error
		if s, v, err = a.Load(ctx, tx, stream); err != nil {
			return err
		}
		evs := make([]eventstore.Event, events)
		for i := range evs {
			evs[i] = ev("Added", i+1)
		}
		if s, v, err = a.Save(ctx, tx, stream, s, v, evs...); err != nil {
			return err
		}
		return fail
	})
	return s, v, err
}

func TestMemory(t *testing.T) {
	errFail := errors.New("fail")
	cases := []struct {
		name string
		run  func(t *testing.T, ctx context.Context, db *sqldb.DB, mem *eventstore.Memory[tally], a eventstore.Aggregate[tally], applied *atomic.Int64)
	}{
		{"remembers on commit", func(t *testing.T, ctx context.Context, db *sqldb.DB, mem *eventstore.Memory[tally], a eventstore.Aggregate[tally], applied *atomic.Int64) {
			if _, _, err := add(ctx, db, a, "s", 3, nil); err != nil {
				t.Fatal(err)
			}
			if v, ok := mem.Version("s"); !ok || v != 3 {
				t.Fatalf("remembered at %d (%v), want 3", v, ok)
			}
			// A load, and a load within a transaction that saves nothing,
			// apply no event: nothing was appended since.
			applied.Store(0)
			if s, v, err := a.Load(ctx, db, "s"); err != nil || v != 3 || s.Sum != 6 || s.Seen["Added"] != 3 || applied.Load() != 0 {
				t.Fatalf("load = %+v at %d (%d applied), %v; want sum 6 at 3, none applied", s, v, applied.Load(), err)
			}
		}},
		{"a rollback remembers nothing", func(t *testing.T, ctx context.Context, db *sqldb.DB, mem *eventstore.Memory[tally], a eventstore.Aggregate[tally], applied *atomic.Int64) {
			if _, _, err := add(ctx, db, a, "s", 3, errFail); !errors.Is(err, errFail) {
				t.Fatalf("add = %v, want the failure", err)
			}
			if v, ok := mem.Version("s"); ok {
				t.Fatalf("remembered at %d after a rollback", v)
			}
			// Rolled back after a commit: the committed pair stays.
			if _, _, err := add(ctx, db, a, "s", 1, nil); err != nil {
				t.Fatal(err)
			}
			if _, _, err := add(ctx, db, a, "s", 2, errFail); !errors.Is(err, errFail) {
				t.Fatalf("add = %v, want the failure", err)
			}
			if v, ok := mem.Version("s"); !ok || v != 1 {
				t.Fatalf("remembered at %d (%v), want 1", v, ok)
			}
			if s, v, err := a.Load(ctx, db, "s"); err != nil || v != 1 || s.Sum != 1 || s.Seen["Added"] != 1 {
				t.Fatalf("load = %+v at %d, %v; want sum 1 at 1: the rolled-back save changed the remembered state", s, v, err)
			}
		}},
		{"a rollback to a savepoint remembers nothing of the transaction before it", func(t *testing.T, ctx context.Context, db *sqldb.DB, mem *eventstore.Memory[tally], a eventstore.Aggregate[tally], applied *atomic.Int64) {
			if db.Dialect != sqldb.Postgres {
				t.Skip("SQLite runs RetryInTx without savepoints")
			}
			// The transaction loads u, then tries a command: the first try
			// saves s and conflicts (as on another stream); the second
			// saves t instead.
			if _, _, err := add(ctx, db, a, "u", 1, nil); err != nil {
				t.Fatal(err)
			}
			mem.Forget("u")
			tries := 0
			err := db.InTx(ctx, func(tx *sqldb.Tx) error {
				if _, _, err := a.Load(ctx, tx, "u"); err != nil {
					return err
				}
				return eventstore.RetryInTx(ctx, tx, 2, func() error {
					tries++
					stream := map[int]string{1: "s", 2: "t"}[tries]
					s, v, err := a.Load(ctx, tx, stream)
					if err != nil {
						return err
					}
					if _, _, err := a.Save(ctx, tx, stream, s, v, ev("Added", 5)); err != nil {
						return err
					}
					if tries == 1 {
						return &eventstore.ConflictError{Stream: "other", Expected: eventstore.Any, Actual: -1}
					}
					return nil
				})
			})
			if err != nil || tries != 2 {
				t.Fatalf("tries %d, %v", tries, err)
			}
			if v, ok := mem.Version("s"); ok {
				t.Fatalf("s remembered at %d, saved only in the work rolled back", v)
			}
			if v, ok := mem.Version("t"); !ok || v != 1 {
				t.Fatalf("t remembered at %d (%v), want 1", v, ok)
			}
			// Nor what the transaction loaded before the savepoint: the
			// work undone may have changed its state in place.
			if v, ok := mem.Version("u"); ok {
				t.Fatalf("u remembered at %d, loaded before a rollback to a savepoint", v)
			}
		}},
		{"reads the events appended after it, not the snapshot", func(t *testing.T, ctx context.Context, db *sqldb.DB, mem *eventstore.Memory[tally], a eventstore.Aggregate[tally], applied *atomic.Int64) {
			if _, _, err := add(ctx, db, a, "s", 3, nil); err != nil {
				t.Fatal(err)
			}
			// Another instance (its own memory) appends 2 events.
			other := tallies(eventstore.NewMemory[tally](0), applied)
			if _, _, err := add(ctx, db, other, "s", 2, nil); err != nil {
				t.Fatal(err)
			}
			// A snapshot this memory must not read (the other's save took
			// a good one at 4).
			if _, err := db.Exec(ctx, `UPDATE es_snapshots SET data = 'garbage' WHERE stream_id = 's'`); err != nil {
				t.Fatal(err)
			}
			applied.Store(0)
			err := db.InTx(ctx, func(tx *sqldb.Tx) error {
				s, v, err := a.Load(ctx, tx, "s")
				if err != nil || v != 5 || s.Sum != 9 || s.Seen["Added"] != 5 || applied.Load() != 2 {
					t.Fatalf("load = %+v at %d (%d applied), %v; want sum 9 at 5, 2 applied", s, v, applied.Load(), err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if v, _ := mem.Version("s"); v != 5 {
				t.Fatalf("remembered at %d after a load at 5", v)
			}
			if _, _, err := tallies(nil, applied).Load(ctx, db, "s"); err == nil {
				t.Fatal("a load without memory read the garbage snapshot without failing")
			}
		}},
		{"a conflict forgets", func(t *testing.T, ctx context.Context, db *sqldb.DB, mem *eventstore.Memory[tally], a eventstore.Aggregate[tally], applied *atomic.Int64) {
			if _, _, err := add(ctx, db, a, "s", 1, nil); err != nil {
				t.Fatal(err)
			}
			if _, _, err := add(ctx, db, tallies(nil, applied), "s", 1, nil); err != nil {
				t.Fatal(err)
			}
			err := db.InTx(ctx, func(tx *sqldb.Tx) error {
				_, _, err := a.Save(ctx, tx, "s", tally{Sum: 1}, 1, ev("Added", 1))
				return err
			})
			if !errors.Is(err, eventstore.ErrConflict) {
				t.Fatalf("save at a stale version = %v, want a conflict", err)
			}
			if v, ok := mem.Version("s"); ok {
				t.Fatalf("remembered at %d after a conflict", v)
			}
			// A transaction that loads the stream, then conflicts on it
			// (behind a savepoint on PostgreSQL) and still commits.
			err = db.InTx(ctx, func(tx *sqldb.Tx) error {
				if _, v, err := a.Load(ctx, tx, "s"); err != nil || v != 2 {
					t.Fatalf("load at %d, %v; want 2", v, err)
				}
				err := eventstore.RetryInTx(ctx, tx, 1, func() error {
					_, _, err := a.Save(ctx, tx, "s", tally{Sum: 1}, 1, ev("Added", 1))
					return err
				})
				if !errors.Is(err, eventstore.ErrConflict) {
					return err
				}
				return nil
			})
			if _, ok := mem.Version("s"); err != nil || ok {
				t.Fatalf("remembered (%v) after a committed transaction whose save conflicted, %v", ok, err)
			}
		}},
		{"a state handed out is a copy", func(t *testing.T, ctx context.Context, db *sqldb.DB, mem *eventstore.Memory[tally], a eventstore.Aggregate[tally], applied *atomic.Int64) {
			if _, _, err := add(ctx, db, a, "s", 1, nil); err != nil {
				t.Fatal(err)
			}
			s, _, err := a.Load(ctx, db, "s")
			if err != nil {
				t.Fatal(err)
			}
			s.Seen["Added"] = 99
			if s, _, err := a.Load(ctx, db, "s"); err != nil || s.Seen["Added"] != 1 {
				t.Fatalf("load = %+v, %v: changing a loaded state changed the remembered one", s, err)
			}
		}},
		{"concurrent commands through one memory", func(t *testing.T, ctx context.Context, db *sqldb.DB, mem *eventstore.Memory[tally], a eventstore.Aggregate[tally], applied *atomic.Int64) {
			const writers, each = 8, 10
			errs := make(chan error, writers)
			for w := range writers {
				go func() {
					var err error
					for i := 0; i < each && err == nil; i++ {
						err = eventstore.Retry(ctx, db, 1000, func(tx *sqldb.Tx) error {
							s, v, err := a.Load(ctx, tx, "s")
							if err != nil {
								return err
							}
							_, _, err = a.Save(ctx, tx, "s", s, v, ev("Added", w+1))
							return err
						})
					}
					errs <- err
				}()
			}
			for range writers {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			want := each * writers * (writers + 1) / 2
			s, v, err := a.Load(ctx, db, "s")
			if err != nil || v != writers*each || s.Sum != want || s.Seen["Added"] != writers*each {
				t.Fatalf("load = %+v at %d, %v; want sum %d at %d", s, v, err, want, writers*each)
			}
			if s, v, err := tallies(nil, applied).Load(ctx, db, "s"); err != nil || v != writers*each || s.Sum != want {
				t.Fatalf("load without memory = %+v at %d, %v", s, v, err)
			}
		}},
		{"bounded, least recently used forgotten first", func(t *testing.T, ctx context.Context, db *sqldb.DB, mem *eventstore.Memory[tally], a eventstore.Aggregate[tally], applied *atomic.Int64) {
			small := eventstore.NewMemory[tally](2)
			a.Memory = small
			for _, s := range []string{"a", "b"} {
				if _, _, err := add(ctx, db, a, s, 1, nil); err != nil {
					t.Fatal(err)
				}
			}
			if _, _, err := a.Load(ctx, db, "a"); err != nil { // a used after b
				t.Fatal(err)
			}
			if _, _, err := add(ctx, db, a, "c", 1, nil); err != nil {
				t.Fatal(err)
			}
			_, hasA := small.Version("a")
			_, hasB := small.Version("b")
			_, hasC := small.Version("c")
			if small.Len() != 2 || !hasA || hasB || !hasC {
				t.Fatalf("remembers %d streams (a %v, b %v, c %v), want a and c", small.Len(), hasA, hasB, hasC)
			}
			if eventstore.NewMemory[tally](0) == nil || eventstore.DefaultMemoryStreams <= 0 {
				t.Fatal("no default size")
			}
		}},
		{"LoadMany reads after the remembered versions", func(t *testing.T, ctx context.Context, db *sqldb.DB, mem *eventstore.Memory[tally], a eventstore.Aggregate[tally], applied *atomic.Int64) {
			a.SnapshotEvery = 0
			for _, s := range []string{"a", "b"} {
				if _, _, err := add(ctx, db, a, s, 2, nil); err != nil {
					t.Fatal(err)
				}
			}
			// c is appended by another instance only; b gains one more.
			other := tallies(nil, applied)
			other.SnapshotEvery = 0
			if _, _, err := add(ctx, db, other, "b", 1, nil); err != nil {
				t.Fatal(err)
			}
			if _, _, err := add(ctx, db, other, "c", 3, nil); err != nil {
				t.Fatal(err)
			}
			loadManyAgrees(t, ctx, db, mem, a, applied, map[string]eventstore.Loaded[tally]{"a": {State: tally{Sum: 3}, Version: 2},
				"b": {State: tally{Sum: 4}, Version: 3}, "c": {State: tally{Sum: 6}, Version: 3}, "d": {}},
				4) // b's third, c's three
		}},
		{"LoadMany of a snapshotting aggregate reads the remembered streams after their versions", func(t *testing.T, ctx context.Context, db *sqldb.DB, mem *eventstore.Memory[tally], a eventstore.Aggregate[tally], applied *atomic.Int64) {
			for _, s := range []string{"a", "b"} {
				if _, _, err := add(ctx, db, a, s, 2, nil); err != nil {
					t.Fatal(err)
				}
			}
			// Another instance moves b on by three events (and snapshots
			// it at 5) and appends c, which this memory never saw.
			other := tallies(nil, applied)
			if _, _, err := add(ctx, db, other, "b", 3, nil); err != nil {
				t.Fatal(err)
			}
			if _, _, err := add(ctx, db, other, "c", 1, nil); err != nil {
				t.Fatal(err)
			}
			loadManyAgrees(t, ctx, db, mem, a, applied, map[string]eventstore.Loaded[tally]{"a": {State: tally{Sum: 3}, Version: 2},
				"b": {State: tally{Sum: 9}, Version: 5}, "c": {State: tally{Sum: 1}, Version: 1}, "d": {}},
				4) // b's three after its remembered version, c's one
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			eachDB(t, func(t *testing.T, db *sqldb.DB) {
				var applied atomic.Int64
				mem := eventstore.NewMemory[tally](0)
				c.run(t, context.Background(), db, mem, tallies(mem, &applied), &applied)
			})
		})
	}
}

// loadManyAgrees loads want's streams with a.LoadMany in one transaction
// and checks each against want (a stream without events: its zero), that
// applying them took wantApplied events, and that mem then remembers each
// stream that has events at its version, and no other.
func loadManyAgrees(t *testing.T, ctx context.Context, db *sqldb.DB, mem *eventstore.Memory[tally], a eventstore.Aggregate[tally],
	applied *atomic.Int64, want map[string]eventstore.Loaded[tally], wantApplied int64) {
	t.Helper()
	streams := slices.Sorted(maps.Keys(want))
	applied.Store(0)
	var got map[string]eventstore.Loaded[tally]
	err := db.InTx(ctx, func(tx *sqldb.Tx) (err error) {
		got, err = a.LoadMany(ctx, tx, streams)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range streams {
		w := want[s]
		if g := got[s]; g.Version != w.Version || g.State.Sum != w.State.Sum || g.State.Seen["Added"] != int(w.Version) {
			t.Errorf("%s = %+v, want %+v", s, g, w)
		}
		v, ok := mem.Version(s)
		if w.Version == 0 && ok {
			t.Errorf("%s, without an event, remembered", s)
		} else if w.Version != 0 && v != w.Version {
			t.Errorf("%s remembered at %d, want %d", s, v, w.Version)
		}
	}
	if applied.Load() != wantApplied {
		t.Errorf("applied %d events, want %d", applied.Load(), wantApplied)
	}
}
