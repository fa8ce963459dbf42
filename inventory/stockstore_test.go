package inventory

import (
	"context"
	"fmt"
	"io/fs"
	"testing"
	"time"

	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/sqldb"
)

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
	const events = 2*snapshotEvery + 37
	cmds := []StockCommand{{Kind: Register}, {Kind: SetOnHand, OnHand: 1000}}
	for i := 0; len(cmds) < events; i++ {
		cmds = append(cmds, StockCommand{Kind: Reserve, OrderID: fmt.Sprintf("o%d", i), Quantity: 1},
			StockCommand{Kind: Release, OrderID: fmt.Sprintf("o%d", i)})
	}
	cmds = cmds[:events]
	for _, c := range cmds {
		err := db.InTx(ctx, func(tx *sqldb.Tx) error {
			st, err := loadStock(ctx, tx, "MUG")
			if err != nil {
				return err
			}
			evs, err := decide(st.State, c)
			if err != nil {
				return err
			}
			return saveStock(ctx, tx, st, nil, time.Now(), evs...)
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
	st, err := loadStock(ctx, db, "MUG")
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
