package app

import (
	"fmt"
	"strings"

	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/settings"
)

// injectedFailures parses EVENTMART_FAIL_EVENTS ("service:EventType,…",
// e.g. "shipping:PaymentProcessed"), once at start: the handlers it names
// fail, so operators can try retries, the dead-letter queue and redrive
// for real (see internal/inbox/failinject.go). Restart without it to fix
// them.
func injectedFailures(values *settings.Values) (*inbox.FailureInjection, error) {
	v := strings.Join(values.List(settings.FailEvents), ",")
	f, err := inbox.ParseFailureInjection(v)
	if err != nil {
		return nil, fmt.Errorf("app: %s=%q: %w", settings.FailEvents.Name, v, err)
	}
	return f, nil
}
