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
	exportedTill time.Time // the end of the last day exported in full
	runs         *prometheus.CounterVec
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
	n.lastRun = n.Now()
	if err != nil {
		n.runs.WithLabelValues("failed").Inc()
		return err
	}
	n.runs.WithLabelValues("ok").Inc()
	if end.After(n.exportedTill) {
		n.exportedTill = end
	}
	n.Log.Info("scheduled export done", "dir", dir, "files", len(res.Manifest.Files), "rows", res.Manifest.Rows())
	return nil
}
