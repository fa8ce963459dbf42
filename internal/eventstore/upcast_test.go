package eventstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// The code at v2: "Added" was {"n": N} at v1 and is {"amount": N, "unit":
// "piece"} since.
type addedV2 struct {
	Amount int    `json:"amount"`
	Unit   string `json:"unit"`
}

var addedV1toV2 = eventstore.Upcaster{Type: "Added", From: "v1", To: "v2", Up: func(data json.RawMessage) (json.RawMessage, error) {
	var v1 struct{ N int }
	if err := json.Unmarshal(data, &v1); err != nil {
		return nil, err
	}
	return json.Marshal(addedV2{Amount: v1.N, Unit: "piece"})
}}

type total struct{ Amount, Events int }

// A v1 event stored before the code moved to v2 is read at v2 by Load (with
// and without a snapshot), ReadAll and ReadCategory; events written since
// are stored at v2; the stored v1 rows are left as they are.
func TestUpcastOnRead(t *testing.T) {
	eachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		// Written by the release at v1.
		if _, err := appendTx(ctx, db, "tally-a", eventstore.NoStream, ev("Added", 3), ev("Added", 4)); err != nil {
			t.Fatal(err)
		}
		// The release at v2.
		catalog := eventstore.NewCatalog("v1", addedV1toV2)
		if err := catalog.Check(); err != nil {
			t.Fatal(err)
		}
		if v := catalog.Version("Added"); v != "v2" {
			t.Fatalf("Added at %s, want v2", v)
		}
		recs, err := eventstore.EncodeFor(catalog, []addedV2{{Amount: 5, Unit: "piece"}}, func(addedV2) string { return "Added" }, nil, time.Now())
		if err != nil || recs[0].SchemaVersion != "v2" {
			t.Fatalf("encode at v2: %+v, %v", recs, err)
		}
		if _, err := appendTx(ctx, db, "tally-a", eventstore.Exactly(2), recs...); err != nil {
			t.Fatal(err)
		}
		apply := func(s total, e eventstore.Event) (total, error) {
			a, err := eventstore.DecodeFrom[addedV2](catalog, e)
			if err != nil {
				return s, err
			}
			if a.Unit != "piece" {
				return s, fmt.Errorf("event %d not upcast: %+v", e.Version, a)
			}
			return total{s.Amount + a.Amount, s.Events + 1}, nil
		}
		for _, every := range []int64{0, 2} {
			agg := eventstore.Aggregate[total]{Apply: apply, SchemaVersion: 1, SnapshotEvery: every}
			if every > 0 {
				// A snapshot at version 2 taken by the v2 code: the load
				// reads the v2 event after it.
				err := db.InTx(ctx, func(tx *sqldb.Tx) error {
					return eventstore.SaveSnapshot(ctx, tx, "tally-a", 2, 1, total{7, 2})
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			if s, v, err := agg.Load(ctx, db, "tally-a"); err != nil || v != 3 || s != (total{12, 3}) {
				t.Fatalf("load (snapshot every %d) = %+v at %d, %v; want {12 3} at 3", every, s, v, err)
			}
		}

		// readAll waits for the events to settle: on PostgreSQL ReadAll
		// holds back what is newer than any transaction in flight on the
		// server, other tests' included.
		evs := readAll(t, db, eventstore.Cursor{}, 100, 3)
		if len(evs) != 3 {
			t.Fatalf("read all: %d events, want 3", len(evs))
		}
		var s total
		for _, e := range evs {
			if s, err = apply(s, e); err != nil {
				t.Fatal(err)
			}
		}
		if s != (total{12, 3}) {
			t.Fatalf("read all folded to %+v, want {12 3}", s)
		}
		if evs[0].SchemaVersion != "v1" || evs[2].SchemaVersion != "v2" {
			t.Fatalf("stored versions %s, %s; want v1 kept, v2 written", evs[0].SchemaVersion, evs[2].SchemaVersion)
		}

		s = total{}
		if err := eventstore.ReadCategory(ctx, db, "tally-", func(e eventstore.Event) (err error) {
			s, err = apply(s, e)
			return err
		}); err != nil || s != (total{12, 3}) {
			t.Fatalf("rebuild from the category folded to %+v, %v; want {12 3}", s, err)
		}

		// A version no chain leads from (written by a later release) is refused.
		newer := ev("Added", 1)
		newer.SchemaVersion = "v3"
		if _, err := appendTx(ctx, db, "tally-b", eventstore.NoStream, newer); err != nil {
			t.Fatal(err)
		}
		if _, _, err := (eventstore.Aggregate[total]{Apply: apply, SchemaVersion: 1}).Load(ctx, db, "tally-b"); err == nil ||
			!strings.Contains(err.Error(), "schema v3, want v2: no upcaster") {
			t.Fatalf("load of a v3 event by the v2 code: %v", err)
		}
	})
}

// A chain runs every step from the stored version, per type: other types
// stay at the base version.
func TestCatalogChain(t *testing.T) {
	v2toV3 := eventstore.Upcaster{Type: "Added", From: "v2", To: "v3", Up: func(data json.RawMessage) (json.RawMessage, error) {
		return json.RawMessage(strings.Replace(string(data), `"piece"`, `"unit"`, 1)), nil
	}}
	c := eventstore.NewCatalog("v1", v2toV3, addedV1toV2) // declared in any order
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	if c.Version("Added") != "v3" || c.Version("Removed") != "v1" {
		t.Fatalf("versions %s, %s; want v3, v1", c.Version("Added"), c.Version("Removed"))
	}
	e, err := c.Upcast(ev("Added", 9))
	if err != nil || e.SchemaVersion != "v3" || string(e.Data) != `{"amount":9,"unit":"unit"}` {
		t.Fatalf("upcast from v1 = %s %s, %v", e.SchemaVersion, e.Data, err)
	}
	removed := ev("Removed", 1)
	if e, err := c.Upcast(removed); err != nil || e.SchemaVersion != "v1" || &e.Data[0] != &removed.Data[0] {
		t.Fatalf("a current event was not left as it is: %s %s, %v", e.SchemaVersion, e.Data, err)
	}

	bad := []struct {
		name  string
		chain []eventstore.Upcaster
		want  string
	}{
		{"twice", []eventstore.Upcaster{addedV1toV2, addedV1toV2}, "two upcasters"},
		{"no function", []eventstore.Upcaster{{Type: "Added", From: "v1", To: "v2"}}, "incomplete"},
		{"gap", []eventstore.Upcaster{addedV1toV2, {Type: "Added", From: "v3", To: "v4", Up: addedV1toV2.Up}}, "no version leads to v3"},
		{"loop", []eventstore.Upcaster{addedV1toV2, {Type: "Added", From: "v2", To: "v1", Up: addedV1toV2.Up}}, "loop"},
	}
	for _, b := range bad {
		if err := eventstore.NewCatalog("v1", b.chain...).Check(); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: check = %v, want %q", b.name, err, b.want)
		}
	}
}

// Decoding an event at its current version costs what Decode costs: the
// catalog adds no allocation.
func TestCatalogAddsNoAllocation(t *testing.T) {
	c := eventstore.NewCatalog("v1", addedV1toV2)
	e := ev("Removed", 1)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := c.Upcast(e); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("upcast of a current event: %v allocations, want 0", n)
	}
}
