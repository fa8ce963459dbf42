package webhook

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventmart/eventmart/internal/sqldb"
)

// metrics are the webhook service's Prometheus metrics. Their labels take
// a handful of fixed values — no endpoint id or URL, whose number admins
// decide — so a thousand endpoints cost no more series than one:
//
//	eventmart_webhook_deliveries_total{outcome}: attempts of deliveries by
//	  what followed: delivered (2xx), retrying (failed, a retry is
//	  scheduled), failed (failed, the schedule is spent), gone (410: the
//	  endpoint is disabled and the delivery waits for it)
//	eventmart_webhook_attempt_duration_seconds{result}: latency of those
//	  attempts by result: 2xx, 3xx, 4xx, 5xx or error (no answer)
//	eventmart_webhook_endpoints_disabled_total{reason}: endpoints the
//	  service disabled: gone (410) or failing (for EVENTMART_WEBHOOK_DISABLE_AFTER)
//	eventmart_webhook_endpoints{state}: endpoints enabled and disabled
//	eventmart_webhook_pending_deliveries{endpoint_state}: the queues'
//	  depth, deliveries not yet delivered nor failed, of enabled and of
//	  disabled endpoints (read from the database at each scrape: every
//	  instance reports the same figure, so aggregate with max, not sum)
type metrics struct {
	outcomes *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	disabled *prometheus.CounterVec
}

// Outcomes of an attempt (eventmart_webhook_deliveries_total's outcome).
const (
	outcomeDelivered = "delivered"
	outcomeRetrying  = "retrying"
	outcomeFailed    = "failed"
	outcomeGone      = "gone"
)

func newMetrics(reg prometheus.Registerer, s *Service) (*metrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry() // counted, never exported
	}
	m := &metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "eventmart", Name: "webhook_deliveries_total",
			Help: "Delivery attempts by outcome: delivered, retrying (a retry is scheduled), failed (no retry left), gone (410: endpoint disabled)."},
			[]string{"outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "eventmart", Name: "webhook_attempt_duration_seconds",
			Help:    "Latency of delivery attempts by result: 2xx, 3xx, 4xx, 5xx, or error (no answer).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30}},
			[]string{"result"}),
		disabled: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "eventmart", Name: "webhook_endpoints_disabled_total",
			Help: "Endpoints the service disabled, by reason: gone (410) or failing (every attempt failed for EVENTMART_WEBHOOK_DISABLE_AFTER)."},
			[]string{"reason"}),
	}
	for _, o := range []string{outcomeDelivered, outcomeRetrying, outcomeFailed, outcomeGone} {
		m.outcomes.WithLabelValues(o)
	}
	for _, r := range []string{"2xx", "3xx", "4xx", "5xx", "error"} {
		m.latency.WithLabelValues(r)
	}
	m.disabled.WithLabelValues("gone")
	m.disabled.WithLabelValues("failing")
	for _, c := range []prometheus.Collector{m.outcomes, m.latency, m.disabled, &stateCollector{s: s}} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("webhook: metrics: %w", err)
		}
	}
	return m, nil
}

// attempted counts a recorded attempt of a delivery.
func (m *metrics) attempted(a *Attempt, outcome, disabled string) {
	result := "error"
	if a.StatusCode >= 200 && a.StatusCode < 600 {
		result = fmt.Sprintf("%dxx", a.StatusCode/100)
	}
	m.latency.WithLabelValues(result).Observe(float64(a.LatencyMS) / 1000)
	if disabled != "" {
		m.disabled.WithLabelValues(disabled).Inc()
	}
	// The outcome last: a scrape that sees it sees the attempt's timing
	// and the endpoint's disabling too.
	m.outcomes.WithLabelValues(outcome).Inc()
}

var (
	endpointsDesc = prometheus.NewDesc("eventmart_webhook_endpoints", "Webhook endpoints by state (enabled, disabled).", []string{"state"}, nil)
	pendingDesc   = prometheus.NewDesc("eventmart_webhook_pending_deliveries",
		"Deliveries queued, neither delivered nor failed, by the state of their endpoint (enabled, disabled).", []string{"endpoint_state"}, nil)
)

// stateCollector reports the endpoints (from the consumer's cache) and
// the queues' depth (one query at each scrape, an index range per
// endpoint) when scraped.
type stateCollector struct{ s *Service }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- endpointsDesc
	ch <- pendingDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	var enabled, disabled float64
	if eps := c.s.endpoints.Load(); eps != nil {
		for _, ep := range *eps {
			if ep.Enabled {
				enabled++
			} else {
				disabled++
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(endpointsDesc, prometheus.GaugeValue, enabled, "enabled")
	ch <- prometheus.MustNewConstMetric(endpointsDesc, prometheus.GaugeValue, disabled, "disabled")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	type count struct{ enabled, n int64 }
	rows, err := sqldb.List(ctx, c.s.store.db, `SELECT e.enabled, COUNT(*) FROM endpoints e JOIN deliveries d ON d.endpoint_id = e.id AND d.status = 'pending' GROUP BY e.enabled`,
		nil, func(r sqldb.Scanner) (count, error) {
			var n count
			return n, r.Scan(&n.enabled, &n.n)
		})
	pending := map[bool]float64{}
	for _, r := range rows {
		pending[r.enabled == 1] = float64(r.n)
	}
	if err != nil {
		ch <- prometheus.NewInvalidMetric(pendingDesc, fmt.Errorf("webhook: pending deliveries: %w", err))
		return
	}
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, pending[true], "enabled")
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, pending[false], "disabled")
}
