package inbox

import (
	"context"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/internal/obs"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// measure observes the handler's latency by event type; without Metrics
// it is left out.
func (c *Consumer) measure(next recordHandler) recordHandler {
	if c.Metrics == nil {
		return next
	}
	return func(ctx context.Context, tx *sqldb.Tx, r *record) error {
		start := time.Now()
		err := next(ctx, tx, r)
		if ev := c.metricsOf(r.Message); ev != nil {
			ev.Duration.Observe(time.Since(start).Seconds())
		}
		return err
	}
}

// metricsOf returns the metrics of m's event type, or nil without metrics.
func (c *Consumer) metricsOf(m *bus.Message) *obs.EventMetrics {
	if c.Metrics == nil {
		return nil
	}
	return c.Metrics.Of(m)
}

// consumed is an event's outcome, counted once its transaction commits.
type consumed struct {
	m       *bus.Message
	outcome string
}

func (c *Consumer) countConsumed(cs []consumed) {
	if c.Metrics == nil {
		return
	}
	for _, x := range cs {
		if ev := c.metricsOf(x.m); ev != nil {
			ev.Consumed(x.outcome)
		}
	}
}
