package export

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
)

// Nightly exports, once a day at At past midnight UTC, the previous day's
// events (by event time) of every topic into Dir/YYYY-MM-DD as Parquet: the
// scheduled export of EVENTMART_EXPORT_DIR. A day whose export failed, or
// was interrupted by a shutdown, is resumed by the next run; a day already
// complete is not written again.
type Nightly struct {
	Bus bus.Reader
	Dir string
	At  time.Duration // after midnight UTC
	Now func() time.Time
	Log *slog.Logger

	mu           sync.Mutex
	lastRun      time.Time // when the last run ended
	lastErr      error     // the last run's error, nil if it succeeded
	exportedTill time.Time // the end of the last day exported in full
	ok, failed   int64     // runs by result since the process started
	runs         *prometheus.CounterVec
}

// NightlyStatus is what GET /api/v1/admin/export answers: the scheduled
// export as the process running it saw it since it started.
type NightlyStatus struct {
	Enabled      bool       `json:"enabled"` // false: EVENTMART_EXPORT_DIR is unset
	Dir          string     `json:"dir,omitempty"`
	At           string     `json:"at,omitempty"` // after midnight UTC
	NextRun      *time.Time `json:"nextRun,omitempty"`
	LastRun      *time.Time `json:"lastRun,omitempty"`      // when the last run ended
	LastResult   string     `json:"lastResult,omitempty"`   // ok or failed
	LastError    string     `json:"lastError,omitempty"`    // the last run's error
	ExportedTill *time.Time `json:"exportedTill,omitempty"` // the end of the last day exported in full
	// LagSeconds is how far ExportedTill lies behind now (0 before the
	// first run): eventmart_export_lag_seconds.
	LagSeconds float64 `json:"lagSeconds"`
	Runs       int64   `json:"runs"`     // runs since the process started
	Failures   int64   `json:"failures"` // failed runs since the process started
}

// Status returns the schedule's state.
func (n *Nightly) Status() NightlyStatus {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.Now()
	next := n.Next(now)
	st := NightlyStatus{Enabled: true, Dir: n.Dir, At: n.At.String(), NextRun: &next,
		Runs: n.ok + n.failed, Failures: n.failed}
	if !n.lastRun.IsZero() {
		t := n.lastRun
		st.LastRun, st.LastResult = &t, "ok"
		if n.lastErr != nil {
			st.LastResult, st.LastError = "failed", n.lastErr.Error()
		}
	}
	if !n.exportedTill.IsZero() {
		t := n.exportedTill
		st.ExportedTill, st.LagSeconds = &t, now.Sub(t).Seconds()
	}
	return st
}

// NewNightly returns the schedule and registers its metrics on reg:
// eventmart_export_runs_total{result}, eventmart_export_last_run_timestamp_seconds
// and eventmart_export_lag_seconds (how far the end of the last day
// exported in full lies behind now; 0 before any).
func NewNightly(b bus.Reader, dir string, at time.Duration, log *slog.Logger, reg prometheus.Registerer) (*Nightly, error) {
	n := &Nightly{Bus: b, Dir: dir, At: at, Now: time.Now, Log: log,
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eventmart_export_runs_total",
			Help: "Scheduled exports by result (ok, failed)."}, []string{"result"})}
	n.runs.WithLabelValues("ok")
	n.runs.WithLabelValues("failed")
	for _, c := range []prometheus.Collector{n.runs,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "eventmart_export_last_run_timestamp_seconds",
			Help: "When the last scheduled export ended (Unix seconds); 0 before the first."}, func() float64 {
			n.mu.Lock()
			defer n.mu.Unlock()
			return unixOrZero(n.lastRun)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "eventmart_export_lag_seconds",
			Help: "How far the end of the last day exported in full lies behind now; 0 before the first."}, func() float64 {
			n.mu.Lock()
			defer n.mu.Unlock()
			if n.exportedTill.IsZero() {
				return 0
			}
			return n.Now().Sub(n.exportedTill).Seconds()
		}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("export: metrics: %w", err)
		}
	}
	return n, nil
}

func unixOrZero(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

// Next returns when the run after now starts.
func (n *Nightly) Next(now time.Time) time.Time {
	next := now.UTC().Truncate(event.Day).Add(n.At)
	if !next.After(now) {
		next = next.Add(event.Day)
	}
	return next
}

// Run runs the export at every scheduled time until ctx ends.
func (n *Nightly) Run(ctx context.Context) error {
	for {
		t := time.NewTimer(n.Next(n.Now()).Sub(n.Now()))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if err := n.RunOnce(ctx); err != nil && ctx.Err() == nil {
			n.Log.Error("scheduled export failed; the next run resumes it", "error", err)
		}
	}
}

// RunOnce exports the day before now into Dir/YYYY-MM-DD.
func (n *Nightly) RunOnce(ctx context.Context) error {
	end := n.Now().UTC().Truncate(event.Day)
	start := end.Add(-event.Day)
	var topics []string
	for _, t := range event.Topics {
		topics = append(topics, string(t.Name))
	}
	dir := filepath.Join(n.Dir, start.Format(time.DateOnly))
	res, err := Export(ctx, n.Bus, Options{Dir: dir, Selection: Selection{Topics: topics, From: &start, To: &end},
		Warn: func(s string) { n.Log.Warn("scheduled export: " + s) }})
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lastRun, n.lastErr = n.Now(), err
	if err != nil {
		n.failed++
		n.runs.WithLabelValues("failed").Inc()
		return err
	}
	n.ok++
	n.runs.WithLabelValues("ok").Inc()
	if end.After(n.exportedTill) {
		n.exportedTill = end
	}
	n.Log.Info("scheduled export done", "dir", dir, "files", len(res.Manifest.Files), "rows", res.Manifest.Rows())
	return nil
}
