package inventory

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"testing"
	"time"

	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// stockMigrations are the event store's and the service's migrations.
func stockMigrations(t *testing.T) []sqldb.Migration {
	t.Helper()
	sub, _ := fs.Sub(migrations, "migrations")
	own, err := sqldb.ReadMigrations(sub, "")
	if err != nil {
		t.Fatal(err)
	}
	return append([]sqldb.Migration{{Name: "es.sql", SQL: eventstore.Migration}}, own...)
}

// stockDB is a fresh SQLite database of the service.
func stockDB(t *testing.T) *sqldb.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "inventory", "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, stockMigrations(t)...); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestStockEventsCatalog(t *testing.T) {
	if err := stockEvents.Check(); err != nil {
		t.Fatal(err)
	}
}

// A StockAdjusted stored at v1 is read by the code at v2 — the load, the
// history and the rebuild of the stock table — through the catalog's
// upcaster. Here v1 is a past shape, {"change": N}, of today's payload
// ({"delta": N}), declared as the code at v2 would declare it.
func TestStockEventsUpcastOnRead(t *testing.T) {
	ctx := context.Background()
	db := stockDB(t)
	s := &store{db: db} // without memory: the load reads the stored events
	v1 := []eventstore.Event{
		{ID: "e1", Type: StockRegistered, SchemaVersion: "v1", Data: json.RawMessage(`{}`)},
		{ID: "e2", Type: StockAdjusted, SchemaVersion: "v1", Data: json.RawMessage(`{"change":40,"reason":"set"}`)},
	}
	if err := db.InTx(ctx, func(tx *sqldb.Tx) error {
		_, err := eventstore.Append(ctx, tx, stockStream("MUG"), eventstore.NoStream, v1...)
		return err
	}); err != nil {
		t.Fatal(err)
	}

	saved := stockEvents
	t.Cleanup(func() { stockEvents = saved })
	stockEvents = eventstore.NewCatalog("v1", eventstore.Upcaster{Type: StockAdjusted, From: "v1", To: "v2",
		Up: func(data json.RawMessage) (json.RawMessage, error) {
			var old struct {
				Change int64
				Reason string
			}
			if err := json.Unmarshal(data, &old); err != nil {
				return nil, err
			}
			return json.Marshal(StockEvent{Delta: old.Change, Reason: old.Reason})
		}})
	if err := stockEvents.Check(); err != nil {
		t.Fatal(err)
	}

	// The load, and a command decided on it, written at v2.
	err := db.InTx(ctx, func(tx *sqldb.Tx) error {
		st, err := s.loadStock(ctx, tx, "MUG")
		if err != nil {
			return err
		}
		if st.Version != 2 || st.State.OnHand != 40 || st.State.Level != 1 {
			return fmt.Errorf("loaded %+v at %d; want 40 on hand, level 1, at 2", st.State, st.Version)
		}
		evs, err := decide(st.State, StockCommand{Kind: SetOnHand, OnHand: 45, Reason: "set"})
		if err != nil {
			return err
		}
		return s.saveStock(ctx, tx, st, nil, time.Now(), evs...)
	})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := eventstore.ReadStream(ctx, db, stockStream("MUG"), 0, 0)
	if err != nil || len(stored) != 3 || stored[1].SchemaVersion != "v1" || stored[2].SchemaVersion != "v2" || string(stored[2].Data) != `{"delta":5,"reason":"set"}` {
		t.Fatalf("stored %+v, %v; want the v1 event kept and the new one at v2", stored, err)
	}

	// The history, through the same chain.
	moves, err := history(ctx, db, "MUG", time.Time{}, time.Time{}, 10, 0)
	if err != nil || len(moves) != 3 || moves[1].Delta != 40 || moves[1].OnHand != 40 || moves[2].Delta != 5 || moves[2].OnHand != 45 {
		t.Fatalf("history %+v, %v", moves, err)
	}

	// The rebuild of the projection, through ReadCategory and the chain.
	if _, err := db.Exec(ctx, `UPDATE stock SET on_hand = 0 WHERE product_id = 'MUG'`); err != nil {
		t.Fatal(err)
	}
	if n, err := rebuildStock(ctx, db); err != nil || n != 3 {
		t.Fatalf("rebuild read %d events, %v; want 3", n, err)
	}
	var onHand, level int64
	if err := db.QueryRow(ctx, `SELECT on_hand, version FROM stock WHERE product_id = 'MUG'`).Scan(&onHand, &level); err != nil || onHand != 45 || level != 2 {
		t.Fatalf("rebuilt row: on hand %d, level %d, %v; want 45, 2", onHand, level, err)
	}
}

// A long stream loads from its latest snapshot: at most snapshotEvery
// events are read after it, and the state is the same as the full fold.
func TestLongStreamLoadsFromASnapshot(t *testing.T) {
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "inventory", "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sub, _ := fs.Sub(migrations, "migrations")
	own, err := sqldb.ReadMigrations(sub, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx, append([]sqldb.Migration{{Name: "es.sql", SQL: eventstore.Migration}}, own...)...); err != nil {
		t.Fatal(err)
	}
	s := &store{db: db} // without memory: loads read the snapshot
	const events = 2*snapshotEvery + 37
	cmds := []StockCommand{{Kind: Register}, {Kind: SetOnHand, OnHand: 1000}}
	for i := 0; len(cmds) < events; i++ {
		cmds = append(cmds, StockCommand{Kind: Reserve, OrderID: fmt.Sprintf("o%d", i), Quantity: 1},
			StockCommand{Kind: Release, OrderID: fmt.Sprintf("o%d", i)})
	}
	cmds = cmds[:events]
	for _, c := range cmds {
		err := db.InTx(ctx, func(tx *sqldb.Tx) error {
			st, err := s.loadStock(ctx, tx, "MUG")
			if err != nil {
				return err
			}
			evs, err := decide(st.State, c)
			if err != nil {
				return err
			}
			return s.saveStock(ctx, tx, st, nil, time.Now(), evs...)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var version, schema int64
	if err := db.QueryRow(ctx, `SELECT version, schema_version FROM es_snapshots WHERE stream_id = 'stock-MUG'`).Scan(&version, &schema); err != nil {
		t.Fatal(err)
	}
	if version != 2*snapshotEvery || schema != stockSchemaVersion {
		t.Fatalf("snapshot at version %d, schema %d; want %d, %d", version, schema, 2*snapshotEvery, stockSchemaVersion)
	}
	after, err := eventstore.ReadStream(ctx, db, "stock-MUG", version, 0)
	if err != nil || len(after) != 37 {
		t.Fatalf("%d events after the snapshot, %v; want 37", len(after), err)
	}
	st, err := s.loadStock(ctx, db, "MUG")
	if err != nil {
		t.Fatal(err)
	}
	all, err := eventstore.ReadStream(ctx, db, "stock-MUG", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var full StockState
	for _, e := range all {
		se, err := decodeStockEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		if full, err = apply(full, se); err != nil {
			t.Fatal(err)
		}
	}
	if st.Version != events || st.State.OnHand != full.OnHand || st.State.Reserved != full.Reserved || st.State.Level != full.Level ||
		len(st.State.Reservations) != len(full.Reservations) || st.State.Reserved != 1 {
		t.Fatalf("loaded %+v at %d; the full fold is %+v", st.State, st.Version, full)
	}
}
