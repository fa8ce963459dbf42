package order

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventmart/eventmart/internal/sqldb"
)

// sagaMetrics count the sagas that ended, by outcome (the order's final
// status) and reason code, and time them from the order's creation.
type sagaMetrics struct {
	shipped   prometheus.Counter
	cancelled map[string]prometheus.Counter // by reason code
	outcomes  *prometheus.CounterVec
	durations map[string]prometheus.Observer // by outcome
}

func newSagaMetrics(reg prometheus.Registerer) (*sagaMetrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry() // counted, never exported
	}
	outcomes := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "eventmart", Name: "saga_outcomes_total",
		Help: "Order sagas that ended, by outcome (SHIPPED, CANCELLED) and reason code (out-of-stock, payment-failed, customer-cancelled, timeout; empty for SHIPPED)."},
		[]string{"outcome", "reason"})
	durations := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "eventmart", Name: "saga_duration_seconds",
		Help:    "Time from an order's creation to the end of its saga, by outcome.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800}},
		[]string{"outcome"})
	for _, c := range []prometheus.Collector{outcomes, durations} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("order: metrics: %w", err)
		}
	}
	m := &sagaMetrics{shipped: outcomes.WithLabelValues(StatusShipped, ""), cancelled: map[string]prometheus.Counter{}, outcomes: outcomes,
		durations: map[string]prometheus.Observer{StatusShipped: durations.WithLabelValues(StatusShipped), StatusCancelled: durations.WithLabelValues(StatusCancelled)}}
	for _, r := range []string{ReasonOutOfStock, ReasonPaymentFailed, ReasonCustomerCancelled, ReasonTimeout} {
		m.cancelled[r] = outcomes.WithLabelValues(StatusCancelled, r)
	}
	return m, nil
}

// ended counts, once tx commits, the end of o's saga with status and
// reason code at now.
func (m *sagaMetrics) ended(tx *sqldb.Tx, o *Order, status, reason string, now time.Time) {
	tx.OnCommit(func() {
		c := m.shipped
		if status == StatusCancelled {
			if c = m.cancelled[reason]; c == nil {
				c = m.outcomes.WithLabelValues(status, reason)
			}
		}
		c.Inc()
		m.durations[status].Observe(max(now.Sub(o.CreatedAt), 0).Seconds())
	})
}
