package app

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/eventmart/eventmart/internal/inbox"
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

// injectedFailures parses EVENTMART_FAIL_EVENTS ("service:EventType,…",
// e.g. "shipping:PaymentProcessed"), once at start: the handlers it names
// fail, so operators can try retries, the dead-letter queue and redrive
// for real (see internal/inbox/failinject.go). Restart without it to fix
// them.
func injectedFailures(settings func(string) string) (*inbox.FailureInjection, error) {
	v := settings("EVENTMART_FAIL_EVENTS")
	f, err := inbox.ParseFailureInjection(v)
	if err != nil {
		return nil, fmt.Errorf("app: EVENTMART_FAIL_EVENTS=%q: %w", v, err)
	}
	return f, nil
}
