package inbox

import (
	"context"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Record is one decoded record on its way through the record middleware
// to its handler.
type Record struct {
	Message  *bus.Message
	Envelope *event.Envelope
	Payload  event.Payload

	handler Func // the Consumer's handler of the event type
}

// Handler applies one record in tx: a handler with the middleware inside
// it. The core reuses one Record per transaction; a Handler must not keep
// r after it returns.
type Handler func(ctx context.Context, tx *sqldb.Tx, r *Record) error

// Middleware wraps a Handler with what happens before and after it.
type Middleware func(next Handler) Handler

// compose builds the record middleware around the handlers, once, in the
// order it runs (outermost first; see the package doc). A middleware that
// is off (no metrics, no injected failures) is left out, costing nothing.
func (c *Consumer) compose() {
	chain := []Middleware{
		c.trace,            // tracing.go
		c.measure,          // metrics.go
		recoverPanics,      // recover.go
		c.injectedFailures, // failinject.go
	}
	h := Handler(callHandler)
	for i := len(chain) - 1; i >= 0; i-- {
		h = chain[i](h)
	}
	c.handle = h
}

// callHandler is the end of the chain: the handler registered for the
// record's event type.
func callHandler(ctx context.Context, tx *sqldb.Tx, r *Record) error {
	return r.handler(ctx, tx, r.Envelope, r.Payload)
}
