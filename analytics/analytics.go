// Package analytics is the analytics service: it runs the stream engine
// (internal/stream, docs/stream-processing.md) over every business topic
// and keeps, per minute and per hour, the shop's figures (orders and
// revenue per currency, average order value, the funnel cart → order →
// paid → shipped, payment declines, cancellations by reason, top products,
// stockouts), and runs the pattern rules (internal/stream/cep) whose
// detections it stores and serves.
//
// Exactly-once results over at-least-once delivery: the service consumes
// with its own loop (consumer group analytics-service), not the inbox; each
// batch's state changes, closed windows, detections and the offsets they
// came from are committed in one transaction of its database; after a
// crash the engine is restored from that state and skips what it already
// processed. The engine needs every partition (its watermark is their
// minimum), so it runs in the one instance holding the service's lease.
//
// Settings: EVENTMART_ANALYTICS_RULES, EVENTMART_ANALYTICS_ORDER_SLA,
// EVENTMART_ANALYTICS_GRACE (internal/settings).
package analytics

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/settings"
	"github.com/eventmart/eventmart/internal/stream"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Name is the service name.
const Name = "analytics"

// Group is the service's consumer group.
var Group = service.Source(Name)

// Def describes the analytics service to the runtime.
func Def() service.Def {
	sub, _ := fs.Sub(migrations, "migrations")
	return service.Def{Name: Name, Migrations: sub, New: func(d service.Deps) (service.Service, error) {
		s, err := New(d)
		if err != nil {
			return nil, err
		}
		return s, nil
	}}
}

// Intervals of the background work.
const (
	idleEvery  = 100 * time.Millisecond // declare read-out partitions idle
	rulesEvery = time.Second            // look for changed rules
)

// Service is the analytics service.
type Service struct {
	d       service.Deps
	loader  rulesLoader
	grace   time.Duration
	metrics *metrics

	mu      sync.Mutex
	current RuleSet // the rules the engine runs (set by Run)
	invalid string  // the last reload's error, "" if it loaded
}

// New returns the analytics service.
func New(d service.Deps) (*Service, error) {
	m, err := newMetrics(d.Metrics)
	if err != nil {
		return nil, err
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	s := &Service{d: d, grace: d.Settings.Duration(settings.AnalyticsGrace), metrics: m}
	s.loader = rulesLoader{file: d.Settings.String(settings.AnalyticsRules), sla: d.Settings.Duration(settings.AnalyticsOrderSLA),
		stored: func(ctx context.Context) (string, int64, bool, error) { return storedRules(ctx, d.DB) }}
	return s, nil
}

// Handlers: none; the service consumes with its own loop (see Run).
func (s *Service) Handlers() []inbox.Handler { return nil }

// Run runs the engine until ctx is cancelled: the consumer group, the
// idle-partition clock and the rules watcher. Without a bus it returns.
func (s *Service) Run(ctx context.Context) error {
	err := s.run(ctx)
	if ctx.Err() != nil {
		// Shutting down: a step that failed did so because ctx ended
		// (a cancelled start is no failure of the process).
		return nil
	}
	return err
}

func (s *Service) run(ctx context.Context) error {
	if s.d.Bus == nil {
		return nil
	}
	rs, err := s.loader.load(ctx)
	if err != nil {
		return err
	}
	parts, err := s.partitions(ctx)
	if err != nil {
		return err
	}
	p := &processor{db: s.d.DB, bus: s.d.Bus, log: s.d.Log, metrics: s.metrics, now: s.d.Now, grace: s.grace, topics: Topics(), parts: parts}
	if s.d.Outbox != nil {
		p.notify = s.d.Outbox.Notify
	}
	if err := p.start(ctx, rs.Rules); err != nil {
		return err
	}
	s.setCurrent(rs)
	s.d.Log.Info("analytics engine started", "partitions", len(parts), "rules", len(rs.Rules), "rulesFrom", rs.Source)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 3)
	go func() { errs <- s.subscribe(ctx, p) }()
	go func() { errs <- s.d.Every(ctx, idleEvery, "analytics idle partitions", p.idle) }()
	go func() {
		errs <- s.d.Every(ctx, rulesEvery, "analytics rules reload", func(ctx context.Context) error { return s.reload(ctx, p) })
	}()
	var first error
	for range 3 {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

// partitions lists the topics' partitions, asking again with growing
// pauses for up to 30 s: at start a topic may not be visible yet, or a
// broker just killed may leave partitions without a reachable leader.
func (s *Service) partitions(ctx context.Context) ([]stream.Partition, error) {
	deadline := time.Now().Add(30 * time.Second)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		parts, err := Partitions(ctx, s.d.Bus, Topics())
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return parts, err
		}
		s.d.Log.Warn("analytics: listing the partitions; trying again", "error", err, "retryIn", wait.String())
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// subscribe consumes the topics until ctx ends; an unknown topic at start
// (a Kafka cluster still spreading its metadata) is asked again for a while.
func (s *Service) subscribe(ctx context.Context, p *processor) error {
	deadline := time.Now().Add(30 * time.Second)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		err := s.d.Bus.Subscribe(ctx, Group, Topics(), p.handle, bus.Linger(s.d.Settings.Duration(settings.AnalyticsLinger)))
		if !errors.Is(err, bus.ErrUnknownTopic) || time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil {
				return fmt.Errorf("analytics: consumer: %w", err)
			}
			return nil
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil
		}
	}
}

// reload swaps in the rules in force if they changed. Invalid rules (a
// file edited badly) are logged and counted; the engine keeps the last
// valid set.
func (s *Service) reload(ctx context.Context, p *processor) error {
	rs, err := s.loader.load(ctx)
	s.mu.Lock()
	reported := s.invalid
	if err != nil {
		s.invalid = err.Error()
	} else {
		s.invalid = ""
	}
	s.mu.Unlock()
	if err != nil {
		s.metrics.rulesInvalid.Set(1)
		if err.Error() != reported { // said once, not every second
			s.d.Log.Error("analytics rules not reloaded; keeping the last valid set", "error", err)
		}
		return nil
	}
	s.metrics.rulesInvalid.Set(0)
	s.mu.Lock()
	same := rs.hash == s.current.hash && rs.Source == s.current.Source
	s.mu.Unlock()
	if same {
		return nil
	}
	if err := p.setRules(ctx, rs.Rules); err != nil {
		return err
	}
	s.setCurrent(rs)
	s.d.Log.Info("analytics rules reloaded", "rules", len(rs.Rules), "rulesFrom", rs.Source, "version", rs.Version)
	return nil
}

func (s *Service) setCurrent(rs RuleSet) {
	s.mu.Lock()
	s.current = rs
	s.mu.Unlock()
	s.metrics.rules.Set(float64(len(rs.Rules)))
	for _, r := range rs.Rules { // from 0, so a first detection is an increase to alert on
		typ := r.Detection
		if typ == "" {
			typ = r.Name
		}
		s.metrics.detections.WithLabelValues(r.Name, typ, strconv.FormatBool(r.DryRun)).Add(0)
	}
}

// metrics are the service's Prometheus metrics.
type metrics struct {
	detections   *prometheus.CounterVec
	late         *prometheus.CounterVec
	watermark    prometheus.Gauge
	rules        prometheus.Gauge
	rulesInvalid prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry() // counted, never exported
	}
	m := &metrics{
		detections: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "eventmart", Name: "analytics_detections_total",
			Help: "Pattern detections the analytics service made, by rule, detection type and dry_run (true: the rule is in dry-run mode)."},
			[]string{"rule", "type", "dry_run"}),
		late: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "eventmart", Name: "analytics_late_events_total",
			Help: "Events the analytics engine dropped for arriving after their window's grace period, by operator (minute, hour, rules)."},
			[]string{"operator"}),
		watermark: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "eventmart", Name: "analytics_watermark_seconds",
			Help: "The analytics engine's watermark (Unix seconds): every window ending before it minus the grace is final."}),
		rules: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "eventmart", Name: "analytics_rules",
			Help: "Pattern rules the analytics engine runs."}),
		rulesInvalid: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "eventmart", Name: "analytics_rules_invalid",
			Help: "1 while the rules in force (EVENTMART_ANALYTICS_RULES, or the stored document) do not validate; the engine keeps the last valid set."}),
	}
	for _, c := range []prometheus.Collector{m.detections, m.late, m.watermark, m.rules, m.rulesInvalid} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("analytics: metrics: %w", err)
		}
	}
	return m, nil
}
