package app

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/sqldb"
)

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
