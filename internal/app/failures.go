package app

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// retryPolicy applies the settings EVENTMART_RETRY_DELAYS (the waits of
// the delayed retries, e.g. "1s,5s,30s,2m,10m") and EVENTMART_RETRY_ATTEMPTS
// (attempts in all before the dead-letter queue, default 8) to c.
func retryPolicy(settings func(string) string, c *inbox.Consumer) error {
	if v := settings("EVENTMART_RETRY_DELAYS"); v != "" {
		for _, part := range strings.Split(v, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(part))
			if err != nil || d <= 0 {
				return fmt.Errorf("app: EVENTMART_RETRY_DELAYS=%q: want positive durations such as 1s,5s,30s", v)
			}
			c.RetryDelays = append(c.RetryDelays, d)
		}
	}
	if v := settings("EVENTMART_RETRY_ATTEMPTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("app: EVENTMART_RETRY_ATTEMPTS=%q: want a positive integer", v)
		}
		c.MaxAttempts = n
	}
	return nil
}

// injectFailures makes the handlers named in EVENTMART_FAIL_EVENTS
// ("service:EventType,…", e.g. "shipping:PaymentProcessed") fail, so
// operators can try retries, the dead-letter queue and redrive for real.
// The setting is read on every event while it was set at start: clearing
// it (a restart without it, or a test) fixes the handler.
func injectFailures(settings func(string) string, service string, hs map[event.Type]inbox.Func) map[event.Type]inbox.Func {
	if settings("EVENTMART_FAIL_EVENTS") == "" {
		return hs
	}
	out := make(map[event.Type]inbox.Func, len(hs))
	for t, h := range hs {
		name := service + ":" + string(t)
		out[t] = func(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p event.Payload) error {
			if slices.Contains(strings.Split(settings("EVENTMART_FAIL_EVENTS"), ","), name) {
				return fmt.Errorf("injected failure of %s (EVENTMART_FAIL_EVENTS)", name)
			}
			return h(ctx, tx, e, p)
		}
	}
	return out
}
