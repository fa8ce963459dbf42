package inbox

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// FailureInjection makes chosen handlers fail on purpose, so that
// operators can try retries, the dead-letter queue and redrive for real
// (EVENTMART_FAIL_EVENTS). It is parsed once, at start.
type FailureInjection struct {
	byService map[string]map[event.Type]bool
	stopped   atomic.Bool
}

// ParseFailureInjection parses a list "service:EventType,…" (e.g.
// "shipping:PaymentProcessed") of the handlers to fail; "" injects no
// failure (nil). An entry that is not a service and a catalog event type
// is an error.
func ParseFailureInjection(list string) (*FailureInjection, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	f := &FailureInjection{byService: map[string]map[event.Type]bool{}}
	for _, entry := range strings.Split(list, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		service, typ, ok := strings.Cut(entry, ":")
		if !ok || service == "" {
			return nil, fmt.Errorf("inbox: %q: want service:EventType, e.g. shipping:PaymentProcessed", entry)
		}
		if _, known := event.Lookup(event.Type(typ)); !known {
			return nil, fmt.Errorf("inbox: %q: %q is no event type of the catalog", entry, typ)
		}
		if f.byService[service] == nil {
			f.byService[service] = map[event.Type]bool{}
		}
		f.byService[service][event.Type(typ)] = true
	}
	return f, nil
}

// Stop ends the injected failures, as a restart without them would: the
// handlers work again (tests deploy "the fix" this way).
func (f *FailureInjection) Stop() {
	if f != nil {
		f.stopped.Store(true)
	}
}

// For returns the failures injected into service's handlers, or nil if
// there are none.
func (f *FailureInjection) For(service string) *InjectedFailures {
	if f == nil || f.byService[service] == nil {
		return nil
	}
	return &InjectedFailures{service: service, types: f.byService[service], stopped: &f.stopped}
}

// InjectedFailures are the event types whose handlers fail in one
// service (Consumer.InjectedFailures).
type InjectedFailures struct {
	service string
	types   map[event.Type]bool
	stopped *atomic.Bool
}

// injectedFailures fails the records of the chosen event types before
// their handler runs; without InjectedFailures it is left out.
func (c *Consumer) injectedFailures(next recordHandler) recordHandler {
	f := c.InjectedFailures
	if f == nil {
		return next
	}
	return func(ctx context.Context, tx *sqldb.Tx, r *record) error {
		if t := r.Envelope.EventType; f.types[t] && !f.stopped.Load() {
			return fmt.Errorf("injected failure of %s:%s (EVENTMART_FAIL_EVENTS)", f.service, t)
		}
		return next(ctx, tx, r)
	}
}
