package app

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/settings"
)

// injectedFailures parses EVENTMART_FAIL_EVENTS ("service:EventType,…",
// e.g. "shipping:PaymentProcessed"), once at start: the handlers it names
// fail, so operators can try retries, the dead-letter queue and redrive
// for real (see internal/inbox/failinject.go). Restart without it to fix
// them.
func injectedFailures(values *settings.Values, log *slog.Logger) (*inbox.FailureInjection, error) {
	v := strings.Join(values.List(settings.FailEvents), ",")
	f, err := inbox.ParseFailureInjection(v)
	if err != nil {
		return nil, fmt.Errorf("app: %s=%q: %w", settings.FailEvents.Name, v, err)
	}
	if f != nil && log != nil {
		// Said once at start, loudly: failures an operator forgot they asked
		// for look like a real outage.
		log.Warn("failure injection is on: these handlers fail every event until restarted without it",
			"setting", settings.FailEvents.Name, "handlers", v)
	}
	return f, nil
}
