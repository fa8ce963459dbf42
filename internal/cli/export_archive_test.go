package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/audit"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/export"
	"github.com/eventmart/eventmart/internal/service"
)

// Records retention deleted are exported from the audit archive of a
// running Eventmart, read through its admin API as `export --archive` does.
func TestExportReadsBeyondRetentionFromTheArchive(t *testing.T) {
	b, shift := apptest.ShiftedLog(t, time.Now) // shift: how far the log's clock runs ahead
	h := apptest.Start(t, []service.Def{audit.Def()}, apptest.OnBus(b))
	admin := h.Token("admin-1", "admin")
	var published []*event.Envelope
	for i, product := range []string{"p-1", "p-2", "p-3"} {
		published = append(published, h.Publish("inventory", event.FromRequest(event.NewID(), event.Metadata{UserID: "admin-1"}),
			&event.InventoryAdjusted{ProductID: product, Delta: int64(5 + i), Reason: "set",
				Level: event.StockLevel{ProductID: product, OnHand: int64(5 + i), Available: int64(5 + i), Version: 1}})...)
	}
	h.Eventually("the audit service archived the stock events", func() bool {
		var ev struct{ Events []json.RawMessage }
		h.JSON("GET", "/api/v1/admin/events?type=InventoryAdjusted", admin, nil, 200, &ev)
		return len(ev.Events) == len(published)
	})
	shift.Store(int64(8 * event.Day)) // inventory-events keeps 7 days
	if _, err := b.ApplyRetention(context.Background()); err != nil {
		t.Fatal(err)
	}
	sel := export.Selection{Topics: []string{string(event.TopicInventory)}}

	var warnings []string
	res, err := export.Export(context.Background(), b, export.Options{Dir: filepath.Join(t.TempDir(), "without"), Selection: sel,
		Warn: func(s string) { warnings = append(warnings, s) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Rows() != 0 || len(warnings) != len(published) || !strings.Contains(warnings[0], "--archive") {
		t.Fatalf("without the archive: %d rows, warnings %q; want none, and a warning per partition retention emptied", res.Manifest.Rows(), warnings)
	}

	c := &adminClient{base: h.Server.URL + "/api/v1", token: admin, http: http.DefaultClient}
	dir := filepath.Join(t.TempDir(), "with")
	res, err = export.Export(context.Background(), b, export.Options{Dir: dir, Selection: sel, Archive: archiveClient{c}})
	if err != nil {
		t.Fatal(err)
	}
	if res.FromArchive != int64(len(published)) || res.Manifest.Rows() != int64(len(published)) {
		t.Fatalf("with the archive: %d rows, %d from the archive; want %d", res.Manifest.Rows(), res.FromArchive, len(published))
	}
	got := map[string]*export.Record{}
	for _, f := range res.Manifest.Files {
		export.ReadFile(context.Background(), dir, res.Manifest.Format, f, func(rs []*export.Record) error {
			for _, r := range rs {
				got[r.Envelope.EventID] = r
			}
			return nil
		})
	}
	for _, e := range published {
		r := got[e.EventID]
		if r == nil || r.Key != e.Key || string(r.Envelope.Data) != string(e.Data) || !r.Envelope.Timestamp.Equal(e.Timestamp) {
			t.Errorf("event %s (%s) exported from the archive as %+v", e.EventID, e.Key, r)
		}
	}
}

// The scheduled export is off unless EVENTMART_EXPORT_DIR is set; on, the
// process running the audit service has its metrics.
func TestNightlyExportRunsWithTheAuditService(t *testing.T) {
	has := func(h *apptest.Harness) bool {
		mfs, err := h.App.Metrics().Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "eventmart_export_lag_seconds" {
				return true
			}
		}
		return false
	}
	if h := apptest.Start(t, []service.Def{audit.Def()}); has(h) {
		t.Error("the scheduled export runs without EVENTMART_EXPORT_DIR")
	}
	h := apptest.Start(t, []service.Def{audit.Def()}, apptest.Settings(map[string]string{"EVENTMART_EXPORT_DIR": t.TempDir(), "EVENTMART_EXPORT_AT": "2h"}))
	if !has(h) {
		t.Error("EVENTMART_EXPORT_DIR is set and the audit service runs, but there are no scheduled export metrics")
	}
}
