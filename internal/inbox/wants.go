package inbox

import (
	"context"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/obs"
)

// Wanter is a service whose consumer can tell, before any transaction,
// that an event of a type it handles has nothing to do here (the runtime
// sets Consumer.Wants from it): a webhook event no enabled endpoint wants,
// an order not placed from a cart. A batch of which nothing is wanted then
// costs no transaction and no processed-event rows.
//
// Wants must return false only for an event whose handler would neither
// read nor write anything that matters, and must decide from the event and
// from state it may read outside the batch's transaction; when in doubt
// (for example a cache it could not refresh), it returns true, and the
// handler decides within the transaction.
//
// Skipping the processed-event record is safe because a skipped event had
// no effect: applying it again is what idempotency forbids, and there is
// nothing to apply twice. A skipped event redelivered or replayed is asked
// about again: if it is still unwanted it is skipped again; if what Wants
// reads changed meanwhile (an endpoint wanting the type registered since),
// it is applied then, once, and recorded as processed as any other: it is
// handled as if it had first been consumed after the change.
type Wanter interface {
	Wants(ctx context.Context, e *event.Envelope, p event.Payload) bool
}

// TypeWanter is a Wanter that can tell from an event's type alone that
// it has nothing to do here (the runtime sets Consumer.WantsType from it):
// a webhook event type no enabled endpoint subscribes to. It is asked
// before the record is decoded, so such a record costs no decoding, no
// schema validation and no transaction: for a consumer that reads every
// topic and wants little of it, decoding was most of its CPU.
//
// WantsType follows Wants's rules, on the type: false only when no event
// of type t would have its handler read or write anything that matters.
// A record turned down by its type is settled as ignored without being
// decoded, so a malformed one goes unnoticed by this group (as a type it
// has no handler for does); the groups that handle the type dead-letter
// it.
type TypeWanter interface {
	Wanter
	WantsType(ctx context.Context, t event.Type) bool
}

// unwanted is a record Wants turned down: settled as ignored.
var unwanted = &decoded{outcome: obs.OutcomeIgnored}

// filter replaces in decs the records Wants turns down with unwanted.
// Only records that decoded and would go to a handler are asked about: an
// undecodable one must still reach the retry policy.
func (c *Consumer) filter(ctx context.Context, decs []*decoded) {
	if c.Wants == nil {
		return
	}
	for i, d := range decs {
		if needsTx(d) && d.err == nil && !c.Wants(ctx, d.e, d.p) {
			decs[i] = unwanted
		}
	}
}

// needsTx reports whether d is a record a transaction must apply: one of
// this group's types not already settled (ignored) before it.
func needsTx(d *decoded) bool {
	return d != nil && d.outcome == ""
}
