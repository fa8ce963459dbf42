package inbox

import (
	"context"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// record is one decoded record on its way through the record middleware
// to its handler.
type record struct {
	Message  *bus.Message
	Envelope *event.Envelope
	Payload  event.Payload

	handler Func // the Consumer's handler of the event type
}

// recordHandler applies one record in tx: a handler with the middleware
// inside it. The core reuses one record per transaction; a recordHandler
// must not keep r after it returns.
type recordHandler func(ctx context.Context, tx *sqldb.Tx, r *record) error

// middleware wraps a recordHandler with what happens before and after it.
type middleware func(next recordHandler) recordHandler

// compose builds the record middleware around the handlers, once, in the
// order it runs (outermost first; see the package doc). A middleware that
// is off (no metrics, no injected failures) is left out, costing nothing.
//
// Around the whole chain, the core applies the batch (group commit, then
// the optimistic transaction, then record by record), and the retry
// policy (retry.go) decides on each record that fails record by record.
func (c *Consumer) compose() {
	chain := []middleware{
		c.trace,            // tracing.go
		c.measure,          // metrics.go
		recoverPanics,      // recover.go
		c.injectedFailures, // failinject.go
	}
	h := recordHandler(callHandler)
	for i := len(chain) - 1; i >= 0; i-- {
		h = chain[i](h)
	}
	c.handle = h
}

// callHandler is the end of the chain: the handler registered for the
// record's event type.
func callHandler(ctx context.Context, tx *sqldb.Tx, r *record) error {
	return r.handler(ctx, tx, r.Envelope, r.Payload)
}
