package apptests

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/audit"
	"github.com/eventmart/eventmart/catalog"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/app"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
	"github.com/eventmart/eventmart/inventory"
)

// TestReplayBeyondRetentionReadsTheAuditArchive: the catalog misses a
// stock event, inventory-events' 7-day retention deletes it, and a replay
// from offset 0 still brings it back — from the audit service's archive —
// with progress reported as it goes.
func TestReplayBeyondRetentionReadsTheAuditArchive(t *testing.T) {
	b, shift := apptest.ShiftedLog(t, time.Now) // shift: how far the log's clock runs ahead
	env := apptest.Settings(map[string]string{
		"EVENTMART_FAIL_EVENTS": "catalog:InventoryAdjusted", "EVENTMART_RETRY_DELAYS": "10ms", "EVENTMART_RETRY_ATTEMPTS": "2",
	})
	h := apptest.Start(t, []service.Def{catalog.Def(), inventory.Def(), audit.Def()}, apptest.OnBus(b), env)
	admin := h.Token("admin-1", "admin")
	var p struct {
		ID           string
		Availability struct{ Available int64 }
	}
	h.JSON("POST", "/api/v1/products", admin, map[string]any{"sku": "OLD", "name": "Tea", "priceCents": 300, "currency": "EUR"}, 201, &p)
	h.Eventually("stock set", func() bool {
		status, _, _ := h.Do("PUT", "/api/v1/inventory/"+p.ID, admin, map[string]int{"onHand": 7})
		return status == 200
	})
	h.Eventually("the stock event dead-lettered by the catalog and archived by the audit", func() bool {
		var dl struct{ DeadLetters []json.RawMessage }
		h.JSON("GET", "/api/v1/admin/dlq/catalog?status=dead", admin, nil, 200, &dl)
		var ev struct{ Events []json.RawMessage }
		h.JSON("GET", "/api/v1/admin/events?type=InventoryAdjusted&entity="+p.ID, admin, nil, 200, &ev)
		return len(dl.DeadLetters) == 1 && len(ev.Events) == 1
	})

	// Eight days later, retention has deleted every inventory event.
	shift.Store(int64(8 * event.Day))
	if _, err := b.ApplyRetention(context.Background()); err != nil {
		t.Fatal(err)
	}
	offs, err := b.Offsets(context.Background(), string(event.TopicInventory))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range offs {
		if o.Start != o.End {
			t.Fatalf("partition %d still holds offsets %d to %d after retention", o.Partition, o.Start, o.End)
		}
	}
	h.App.StopInjectingFailures() // the fix is deployed

	// What the topic still holds is nothing: a replay from its log start
	// finds nothing, one from offset 0 reads the archive.
	var res app.ReplayResult
	h.JSON("POST", "/api/v1/admin/replay/catalog", admin, map[string]any{"topic": "inventory-events"}, 200, &res)
	if res != (app.ReplayResult{}) {
		t.Errorf("replay from the log start: %+v, want nothing", res)
	}
	lines := replayStream(t, h, admin, map[string]any{"topic": "inventory-events", "fromOffset": 0})
	last := lines[len(lines)-1]
	if !last.Done || last.FromArchive != 1 || last.Read != 1 || last.Redelivered != 1 || last.Partitions != int(offs[len(offs)-1].Partition+1) {
		t.Fatalf("replay progress %+v, want done with the one archived record re-delivered", lines)
	}
	partitionsDone := map[int32]bool{}
	for _, l := range lines {
		if l.PartitionDone {
			partitionsDone[l.Partition] = true
		}
	}
	if len(partitionsDone) != last.Partitions {
		t.Errorf("progress reported %d partitions done, want one line for each of %d: %+v", len(partitionsDone), last.Partitions, lines)
	}
	h.JSON("GET", "/api/v1/products/"+p.ID, "", nil, 200, &p)
	if p.Availability.Available != 7 {
		t.Fatalf("availability %d after replaying the archive, want 7", p.Availability.Available)
	}
	// Twice is harmless, and a time filter reaches the archive too.
	h.JSON("POST", "/api/v1/admin/replay/catalog", admin, map[string]any{"topic": "inventory-events", "fromTime": time.Now().Add(-time.Hour)}, 200, &res)
	if res.FromArchive != 1 || res.Redelivered != 1 {
		t.Errorf("replay from an hour ago: %+v, want the archived record", res)
	}
	h.JSON("POST", "/api/v1/admin/replay/catalog", admin, map[string]any{"topic": "inventory-events", "fromTime": time.Now().Add(time.Hour)}, 200, &res)
	if res.FromArchive != 0 {
		t.Errorf("replay from an hour ahead: %+v, want nothing from the archive", res)
	}
	h.JSON("GET", "/api/v1/products/"+p.ID, "", nil, 200, &p)
	if p.Availability.Available != 7 {
		t.Fatalf("availability %d after replaying twice, want 7", p.Availability.Available)
	}
}

// replayStream runs a replay asking for progress lines, and returns them.
func replayStream(t *testing.T, h *apptest.Harness, admin string, body map[string]any) []app.ReplayProgress {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", h.Server.URL+"/api/v1/admin/replay/catalog", strings.NewReader(string(b)))
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Accept", "application/x-ndjson")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("replay: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	var lines []app.ReplayProgress
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var p app.ReplayProgress
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatalf("progress line %q: %v", sc.Text(), err)
		}
		lines = append(lines, p)
	}
	if len(lines) == 0 {
		t.Fatal("no progress lines")
	}
	return lines
}

// TestRebuildReadModelFromScratch: the catalog's availability table is
// damaged; a rebuild fills a fresh table from every inventory event — from
// the archive for those retention deleted — and swaps it in.
func TestRebuildReadModelFromScratch(t *testing.T) {
	b, shift := apptest.ShiftedLog(t, time.Now) // shift: how far the log's clock runs ahead
	h := apptest.Start(t, []service.Def{catalog.Def(), inventory.Def(), audit.Def()}, apptest.OnBus(b))
	admin := h.Token("admin-1", "admin")
	ctx := context.Background()
	type product struct {
		ID           string
		Availability struct{ OnHand, Available int64 }
	}
	available := func(id string) int64 {
		var p product
		h.JSON("GET", "/api/v1/products/"+id, "", nil, 200, &p)
		return p.Availability.Available
	}
	setStock := func(id string, n int) {
		h.Eventually("stock set", func() bool {
			status, _, _ := h.Do("PUT", "/api/v1/inventory/"+id, admin, map[string]int{"onHand": n})
			return status == 200
		})
		h.Eventually("the catalog sees the stock", func() bool { return available(id) == int64(n) })
	}
	var a, z product
	h.JSON("POST", "/api/v1/products", admin, map[string]any{"sku": "A", "name": "Tea", "priceCents": 300, "currency": "EUR"}, 201, &a)
	h.JSON("POST", "/api/v1/products", admin, map[string]any{"sku": "Z", "name": "Mug", "priceCents": 900, "currency": "EUR"}, 201, &z)
	setStock(a.ID, 7)
	setStock(z.ID, 4)
	h.Eventually("both stock events archived", func() bool {
		var ev struct{ Events []json.RawMessage }
		h.JSON("GET", "/api/v1/admin/events?type=InventoryAdjusted", admin, nil, 200, &ev)
		return len(ev.Events) == 2
	})
	shift.Store(int64(8 * event.Day)) // retention deletes both
	if _, err := b.ApplyRetention(ctx); err != nil {
		t.Fatal(err)
	}
	setStock(z.ID, 5) // on the topic

	db := h.App.DB("catalog")
	if _, err := db.Exec(ctx, `UPDATE product_stock SET available = 999`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `DELETE FROM product_stock WHERE product_id = ?`, a.ID); err != nil {
		t.Fatal(err)
	}
	// Made behind the catalog's back, the damage shows once what it
	// remembers of the products is too old to answer (catalog.maxAge).
	h.Eventually("the damage shows", func() bool { return available(a.ID) == 0 && available(z.ID) == 999 })

	var body struct{ Rebuilt []app.RebuildResult }
	h.JSON("POST", "/api/v1/admin/rebuild/catalog", admin, nil, 200, &body)
	if len(body.Rebuilt) != 1 {
		t.Fatalf("rebuilt %+v", body)
	}
	r := body.Rebuilt[0]
	if r.Projection != "availability" || r.Table != "product_stock" || r.FromArchive != 2 || r.Read != 3 || r.Applied != 3 {
		t.Errorf("rebuild %+v, want 2 events from the archive and 1 from the topic applied", r)
	}
	if available(a.ID) != 7 || available(z.ID) != 5 {
		t.Errorf("after the rebuild: %d and %d available, want 7 and 5", available(a.ID), available(z.ID))
	}
	// The live consumer writes to the swapped-in table.
	setStock(a.ID, 2)
	var leftovers int
	tables := `SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'product_stock_rebuild%'`
	if db.Dialect == sqldb.Postgres {
		tables = `SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'product_stock_rebuild%'`
	}
	if err := db.QueryRow(ctx, tables).Scan(&leftovers); err != nil {
		t.Fatal(err)
	}
	if leftovers != 0 {
		t.Errorf("%d rebuild tables left behind", leftovers)
	}
}

// TestReplayHandsOnNothingOlderThanTheInboxRetention: with a retention
// (here 1ms, so that the stock event is past it by the time it is applied)
// a replay does not hand on the records of events the group may have
// forgotten it applied, and says how many; with reapply it does, and the
// group, which still remembers this one, skips it.
func TestReplayHandsOnNothingOlderThanTheInboxRetention(t *testing.T) {
	h := apptest.Start(t, []service.Def{catalog.Def(), inventory.Def()}, apptest.Settings(map[string]string{"EVENTMART_INBOX_RETENTION": "1ms"}))
	admin := h.Token("admin-1", "admin")
	var p struct {
		ID           string
		Availability struct{ Available int64 }
	}
	h.JSON("POST", "/api/v1/products", admin, map[string]any{"sku": "OLD", "name": "Tea", "priceCents": 300, "currency": "EUR"}, 201, &p)
	h.Eventually("stock set", func() bool { // once inventory heard of the product
		status, _, _ := h.Do("PUT", "/api/v1/inventory/"+p.ID, admin, map[string]int{"onHand": 7})
		return status == 200
	})
	h.Eventually("availability 7", func() bool {
		h.JSON("GET", "/api/v1/products/"+p.ID, "", nil, 200, &p)
		return p.Availability.Available == 7
	})
	var res app.ReplayResult
	h.JSON("POST", "/api/v1/admin/replay/catalog", admin, map[string]any{"topic": "inventory-events", "key": p.ID}, 200, &res)
	if res.Read < 1 || res.Redelivered != 0 || res.BeyondRetention != 1 {
		t.Fatalf("replay %+v, want the stock event read and not re-delivered: beyond the retention", res)
	}
	h.JSON("POST", "/api/v1/admin/replay/catalog", admin, map[string]any{"topic": "inventory-events", "key": p.ID, "reapply": true}, 200, &res)
	if res.Redelivered != 1 || res.BeyondRetention != 0 {
		t.Fatalf("replay with reapply %+v, want the stock event re-delivered", res)
	}
	h.JSON("GET", "/api/v1/products/"+p.ID, "", nil, 200, &p)
	if p.Availability.Available != 7 {
		t.Errorf("availability %d after the replay, want 7", p.Availability.Available)
	}
}
