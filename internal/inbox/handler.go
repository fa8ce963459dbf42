package inbox

import (
	"context"
	"fmt"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Handler is the handler of one event type, as a service registers it:
//
//	func (s *Service) Handlers() []inbox.Handler {
//		return []inbox.Handler{
//			inbox.On(s.onPaymentProcessed), // func(ctx, tx, e, p *event.PaymentProcessed) error
//		}
//	}
//
// The event type (and through the catalog its topic and version) follows
// from the payload type in the function's signature, so a wrong event name
// cannot compile.
type Handler struct {
	Type event.Type
	Func Func

	err error // what On found wrong, reported by ByType
}

// On returns the handler of the event type whose payload is P, calling fn
// with the payload as a *T: no type assertion in the handler. The type is
// resolved in the catalog once, here; ByType reports a P the catalog does
// not decode events into.
func On[T any, P interface {
	*T
	event.Payload
}](fn func(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p P) error) Handler {
	t := P(nil).EventType() // EventType methods return a constant and do not read their receiver
	h := Handler{Type: t, Func: func(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p event.Payload) error {
		tp, ok := p.(P)
		if !ok { // On checked the catalog decodes t into P: a bug, not a bad event
			return fmt.Errorf("inbox: %s handler got a %T payload, want %T", t, p, P(nil))
		}
		return fn(ctx, tx, e, tp)
	}}
	if spec, ok := event.Lookup(t); ok {
		if _, same := spec.New().(P); !same {
			h.err = fmt.Errorf("inbox: handler of %s takes %T, the catalog decodes %T", t, P(nil), spec.New())
		}
	}
	return h
}

// ByType returns hs as the map Consumer.Handlers takes. It fails, naming
// the type, when a type is handled twice, is not in the event catalog, or
// (for a handler made by On) is decoded by the catalog into another payload
// type than its handler takes.
func ByType(hs []Handler) (map[event.Type]Func, error) {
	m := make(map[event.Type]Func, len(hs))
	for _, h := range hs {
		if h.err != nil {
			return nil, h.err
		}
		if _, ok := event.Lookup(h.Type); !ok {
			return nil, fmt.Errorf("inbox: handler of %q: %w", h.Type, event.ErrUnknownType)
		}
		if h.Func == nil {
			return nil, fmt.Errorf("inbox: handler of %s is nil", h.Type)
		}
		if _, dup := m[h.Type]; dup {
			return nil, fmt.Errorf("inbox: %s handled twice", h.Type)
		}
		m[h.Type] = h.Func
	}
	return m, nil
}

// Preparer is a service whose consumer prepares every batch before
// applying it (Consumer.Prepare): the runtime sets Prepare from it.
type Preparer interface {
	Prepare(ctx context.Context, tx *sqldb.Tx, batch []Event) error
}
