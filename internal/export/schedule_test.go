package export_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventmart/eventmart/internal/export"
	"github.com/eventmart/eventmart/internal/export/exporttest"
)

func TestNightlyExportsThePreviousDay(t *testing.T) {
	b := exporttest.OpenBus(t)
	exporttest.Seed(t, b, 240, time.Minute) // 2026-12-01 22:00 to 2026-12-02 02:00
	reg := prometheus.NewRegistry()
	root := t.TempDir()
	n, err := export.NewNightly(b, root, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	for now, want := range map[string]string{
		"2026-12-03T00:30:00Z": "2026-12-03T01:00:00Z",
		"2026-12-03T01:00:00Z": "2026-12-04T01:00:00Z",
		"2026-12-03T23:00:00Z": "2026-12-04T01:00:00Z",
	} {
		at, _ := time.Parse(time.RFC3339, now)
		if got := n.Next(at); got.Format(time.RFC3339) != want {
			t.Errorf("Next(%s) = %s, want %s", now, got.Format(time.RFC3339), want)
		}
	}
	if lag := metricValue(t, reg, "eventmart_export_lag_seconds"); lag != 0 {
		t.Errorf("lag before any run: %v", lag)
	}
	if st := n.Status(); !st.Enabled || st.LastRun != nil || st.LastResult != "" || st.Runs != 0 || st.NextRun == nil || st.At != "1h0m0s" {
		t.Errorf("status before any run: %+v", st)
	}

	now := time.Date(2026, 12, 3, 1, 0, 0, 0, time.UTC)
	n.Now = func() time.Time { return now }
	if err := n.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	m, err := export.ReadManifest(filepath.Join(root, "2026-12-02"))
	if err != nil {
		t.Fatal(err)
	}
	if !m.Complete || m.Rows() == 0 || m.Selection.From.Format(time.DateOnly) != "2026-12-02" || m.Selection.To.Format(time.DateOnly) != "2026-12-03" {
		t.Fatalf("the night of 2026-12-03 exported %+v", m.Selection)
	}
	for _, f := range m.Files {
		if f.Hour.Format(time.DateOnly) != "2026-12-02" {
			t.Fatalf("file %s of hour %s in the export of 2026-12-02", f.Path, f.Hour)
		}
	}
	now = now.Add(30 * time.Minute)
	if lag := metricValue(t, reg, "eventmart_export_lag_seconds"); lag != 5400 {
		t.Errorf("lag %v s, want 5400 (the day ended 1h30 ago)", lag)
	}
	st := n.Status()
	if st.LastResult != "ok" || st.LastRun == nil || !st.LastRun.Equal(now.Add(-30*time.Minute)) || st.LagSeconds != 5400 ||
		st.ExportedTill == nil || st.ExportedTill.Format(time.RFC3339) != "2026-12-03T00:00:00Z" || st.Runs != 1 || st.Failures != 0 ||
		st.NextRun.Format(time.RFC3339) != "2026-12-04T01:00:00Z" {
		t.Errorf("status after a run: %+v", st)
	}

	// A run that cannot write fails, and says so in its metrics.
	n.Dir = filepath.Join(root, "a-file")
	os.WriteFile(n.Dir, nil, 0o644)
	if err := n.RunOnce(context.Background()); err == nil {
		t.Fatal("an export into a file succeeded")
	}
	if got := metricValue(t, reg, "eventmart_export_runs_total", "failed"); got != 1 {
		t.Errorf("failed runs: %v", got)
	}
	if got := metricValue(t, reg, "eventmart_export_runs_total", "ok"); got != 1 {
		t.Errorf("ok runs: %v", got)
	}
	if st := n.Status(); st.LastResult != "failed" || st.LastError == "" || st.Runs != 2 || st.Failures != 1 || st.LagSeconds != 5400 {
		t.Errorf("status after a failed run: %+v", st)
	}

	// Run ends when its context does.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := n.Run(ctx); err != nil {
		t.Errorf("Run after cancellation: %v", err)
	}
}

// metricValue returns the value of the metric named name (with the label
// value, if given) in reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, label ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(label) == 0 || (len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label[0]) {
				return m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s %v", name, label)
	return 0
}
