package order

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/settings"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Admission control at POST /orders (docs/saga.md, "Overload"): when the
// saga pipeline is saturated a new order is refused at the door — 503
// Service Unavailable with Retry-After, before anything is stored or any
// other service is called — instead of being accepted and then cancelled
// by the saga timeout.
//
// The signal is the number of sagas not yet decided: PENDING orders, read
// from the service's own database, so every instance of the service sees
// the same backlog (one PostgreSQL database), and a PENDING order always
// ends (decided, or cancelled by the timeout), so the count cannot leak.
// It is sampled, not counted per request: the request that finds the last
// sample older than admitSample reads it again (a scan of the partial
// index orders_in_flight); the others use the last sample. Nothing runs while no
// order is placed.

// admitSample is how often the number of PENDING orders is read again
// while orders are being placed. A burst may overshoot the limit by what
// arrives in one period, which the limit's margin absorbs.
const admitSample = 200 * time.Millisecond

// retryAfterShed is the Retry-After (seconds) of a shed order: the
// smallest the header can say, a few sample periods. A PENDING order is
// decided in well under a second while the pipeline keeps up.
const retryAfterShed = 1

// admission decides whether POST /orders takes a new order.
type admission struct {
	limit int // the most PENDING orders (EVENTMART_ORDER_MAX_PENDING); 0: no limit
	count func(ctx context.Context) (int, error)
	shed  prometheus.Counter

	mu      sync.Mutex
	pending int       // the last sample
	read    time.Time // when it was taken (zero: never)
	reading bool      // a request is taking a sample
}

func newAdmission(limit int, db *sqldb.DB, reg prometheus.Registerer) (*admission, error) {
	a := &admission{limit: limit, count: func(ctx context.Context) (int, error) { return countPending(ctx, db) }}
	if reg == nil {
		reg = prometheus.NewRegistry() // counted, never exported
	}
	a.shed = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "eventmart", Name: "orders_shed_total",
		Help: "Orders refused at POST /orders (503 with Retry-After) because the sagas in flight (PENDING orders) reached EVENTMART_ORDER_MAX_PENDING."})
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "eventmart", Name: "order_sagas_pending",
		Help: "PENDING orders (sagas not yet decided) as admission control last sampled them while orders were placed; 0 with EVENTMART_ORDER_MAX_PENDING 0."},
		func() float64 { a.mu.Lock(); defer a.mu.Unlock(); return float64(a.pending) })
	for _, c := range []prometheus.Collector{a.shed, pending} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("order: metrics: %w", err)
		}
	}
	return a, nil
}

// admit returns nil if a new order may be placed now, else an
// EUNAVAILABLE error saying why (and counts the order shed). A failure
// to read the count lets the order through: admission control must not
// become an outage of its own (placing it then fails on its own if the
// database is down).
func (a *admission) admit(ctx context.Context) error {
	if a.limit <= 0 {
		return nil
	}
	a.mu.Lock()
	n, sample := a.pending, !a.reading && time.Since(a.read) >= admitSample
	if sample {
		a.reading = true
	}
	a.mu.Unlock()
	if sample {
		m, err := a.count(ctx)
		a.mu.Lock()
		a.reading = false
		if err == nil {
			a.pending, a.read, n = m, time.Now(), m
		}
		a.mu.Unlock()
		if err != nil {
			httpx.Logger(ctx).WarnContext(ctx, "admission control: the order let through unchecked", "error", err)
			return nil
		}
	}
	if n < a.limit {
		return nil
	}
	a.shed.Inc()
	return eventmart.Errorf(eventmart.EUNAVAILABLE, "too many orders in progress (%d of at most %d); nothing was stored: retry after %d s with the same Idempotency-Key",
		n, a.limit, retryAfterShed)
}

// retryAfter is the Retry-After header value of a shed order.
func (a *admission) retryAfter() string { return strconv.Itoa(retryAfterShed) }

// countPending counts the PENDING orders (a scan of orders_in_flight).
func countPending(ctx context.Context, db *sqldb.DB) (int, error) {
	var n int
	if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM orders WHERE `+inFlightSQL+` AND status = '`+StatusPending+`'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("order: count PENDING orders: %w", err)
	}
	return n, nil
}

// pendingPerTimeoutSecond is the default limit of PENDING orders per second
// of saga timeout: a quarter of 45 orders/s, the slowest throughput
// measured (distributed, issue #19), so a full backlog is decided within
// a quarter of the timeout even there.
const pendingPerTimeoutSecond = 10

// maxPending is the admission limit: EVENTMART_ORDER_MAX_PENDING if set
// (0: no limit), else pendingPerTimeoutSecond per second of the saga
// timeout.
func maxPending(v *settings.Values, timeout time.Duration) int {
	if v.IsSet(settings.OrderMaxPending) {
		return v.Int(settings.OrderMaxPending)
	}
	return max(int(timeout.Seconds()*pendingPerTimeoutSecond), 1)
}
