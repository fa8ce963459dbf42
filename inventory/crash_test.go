package inventory

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// crashProducts are the products the child's transactions adjust, three
// at a time.
const crashProducts = 5

// setupOnHand and above are the on-hand values the child sets up each
// stream with: snapshotEvery-5 events, so that the commands' appends cross
// a snapshot within their first few.
const setupOnHand = 1_000_000

// TestKillMidAppendLosesNothing runs commands on the embedded default's
// database (SQLite, as `eventmart run` opens it) in a child process and
// kills it with SIGKILL while it appends. Command k sets the on hand of
// three products to k in one transaction — three streams, their
// snapshots and the stock table — and is acknowledged once committed.
// Each stream starts a few events short of its first snapshot.
// After the kill, on the same file: every acknowledged command is stored;
// every command is stored in all three streams or in none; the stock table
// (the projection) equals its rebuild from the store; and the load from a
// snapshot equals the fold of the whole stream.
func TestKillMidAppendLosesNothing(t *testing.T) {
	if dir := os.Getenv("INVENTORY_KILL_CHILD"); dir != "" {
		killChild(t, dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillMidAppendLosesNothing$")
	cmd.Env = append(os.Environ(), "INVENTORY_KILL_CHILD="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The child writes "ack k" after command k committed. It is killed
	// after 60 acknowledgements or 5 s after the first (a slow machine,
	// -race), whichever comes first, while it appends.
	acks := make(chan int, 1<<16)
	go func() {
		defer close(acks)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if k, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
				n, err := strconv.Atoi(k)
				if err != nil {
					t.Errorf("child: %q", sc.Text())
					continue
				}
				acks <- n
			}
		}
	}()
	acked := -1
	var enough <-chan time.Time
	deadline := time.After(apptest.Timeout)
wait:
	for acked < 60 {
		select {
		case k, ok := <-acks:
			if !ok {
				break wait
			}
			acked = k
			if enough == nil {
				enough = time.After(5 * time.Second)
			}
		case <-enough:
			break wait
		case <-deadline:
			break wait
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	for k := range acks { // printed before the kill: acknowledged too
		acked = k
	}
	cmd.Wait()
	if acked < 20 {
		t.Fatalf("the child acknowledged %d commands before the deadline, want at least 20", acked+1)
	}

	ctx := context.Background()
	db, err := sqldb.Open(ctx, "inventory", "", dir) // recovers the WAL
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stored := map[int64][]string{} // command k → the products it is stored in
	for p := range crashProducts {
		id := fmt.Sprintf("P%d", p)
		evs, err := eventstore.ReadStream(ctx, db, stockStream(id), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var s StockState
		for _, e := range evs {
			se, err := decodeStockEvent(e)
			if err != nil {
				t.Fatal(err)
			}
			if s, err = apply(s, se); err != nil {
				t.Fatal(err)
			}
			if se.Type == StockAdjusted && s.OnHand < setupOnHand {
				stored[s.OnHand] = append(stored[s.OnHand], id)
			}
		}
		var snapshot int64
		if err := db.QueryRow(ctx, `SELECT version FROM es_snapshots WHERE stream_id = ?`, stockStream(id)).Scan(&snapshot); err != nil || snapshot < snapshotEvery {
			t.Errorf("%s: snapshot at %d, %v; want one at %d or later", id, snapshot, err, snapshotEvery)
		}
		st, err := (&store{db: db}).loadStock(ctx, db, id) // from the database, not a memory
		if err != nil {
			t.Fatal(err)
		}
		if st.Version != int64(len(evs)) || st.State.OnHand != s.OnHand || st.State.Level != s.Level {
			t.Errorf("%s loads as %+v at %d; its stream folds to %+v at %d", id, st.State, st.Version, s, len(evs))
		}
	}
	for k := range int64(acked) + 1 {
		if len(stored[k+1]) != 3 {
			t.Errorf("acknowledged command %d is stored in %v, want 3 streams", k, stored[k+1])
		}
	}
	for k, in := range stored {
		if len(in) != 3 {
			t.Errorf("command %d is stored in %v: half applied", k-1, in)
		}
	}
	t.Logf("%d commands acknowledged, %d stored", acked+1, len(stored))

	rows := func() string {
		rs, err := db.Query(ctx, `SELECT product_id, on_hand, reserved, version, discontinued FROM stock ORDER BY product_id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		var all []string
		for rs.Next() {
			var id string
			var a, b, c, d int64
			if err := rs.Scan(&id, &a, &b, &c, &d); err != nil {
				t.Fatal(err)
			}
			all = append(all, fmt.Sprint(id, a, b, c, d))
		}
		sort.Strings(all)
		return strings.Join(all, "; ")
	}
	projected := rows()
	if _, err := rebuildStock(ctx, db); err != nil {
		t.Fatal(err)
	}
	if rebuilt := rows(); rebuilt != projected || len(strings.Split(rebuilt, "; ")) != crashProducts {
		t.Fatalf("the stock table after the kill:\n  %s\nrebuilt from the store:\n  %s", projected, rebuilt)
	}
}

// killChild runs commands until killed: command k sets the on hand of
// products k, k+1 and k+2 (mod crashProducts) to k+1, in one transaction.
func killChild(t *testing.T, dir string) {
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "inventory", "", dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx, stockMigrations(t)...); err != nil {
		t.Fatal(err)
	}
	s := &store{db: db, memory: eventstore.NewMemory[StockState](0)} // as the service's
	for p := range crashProducts {
		err := db.InTx(ctx, func(tx *sqldb.Tx) error {
			st := &stock{ProductID: fmt.Sprintf("P%d", p)}
			evs := []StockEvent{{Type: StockRegistered}}
			for i := range snapshotEvery - 6 { // on hand setupOnHand, then +1 each
				delta := int64(1)
				if i == 0 {
					delta = setupOnHand
				}
				evs = append(evs, StockEvent{Type: StockAdjusted, Delta: delta, Reason: "set"})
			}
			return s.saveStock(ctx, tx, st, nil, time.Now(), evs...)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for k := 0; ; k++ {
		err := db.InTx(ctx, func(tx *sqldb.Tx) error {
			for i := range 3 {
				st, err := s.loadStock(ctx, tx, fmt.Sprintf("P%d", (k+i)%crashProducts))
				if err != nil {
					return err
				}
				evs, err := decide(st.State, StockCommand{Kind: SetOnHand, OnHand: int64(k + 1), Reason: "set"})
				if err != nil {
					return err
				}
				if err := s.saveStock(ctx, tx, st, nil, time.Now(), evs...); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("ack %d\n", k)
	}
}
