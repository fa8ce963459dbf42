package inbox

import (
	"context"
	"fmt"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// recoverPanics turns a handler's failure into a *HandlerError naming the
// event: an error, or a panic, which then fails the record like an error
// instead of crashing the service.
func recoverPanics(next recordHandler) recordHandler {
	return func(ctx context.Context, tx *sqldb.Tx, r *record) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = &HandlerError{Envelope: r.Envelope, Err: fmt.Errorf("panic: %v", p), ctx: ctx}
			}
		}()
		if err := next(ctx, tx, r); err != nil {
			return &HandlerError{Envelope: r.Envelope, Err: err, ctx: ctx}
		}
		return nil
	}
}

// HandlerError says which event's handler failed.
type HandlerError struct {
	Envelope *event.Envelope
	Err      error
	ctx      context.Context // the handler's: its trace context, for the log
}

func (e *HandlerError) Error() string {
	return fmt.Sprintf("inbox: handle %s %s: %v", e.Envelope.EventType, e.Envelope.EventID, e.Err)
}

func (e *HandlerError) Unwrap() error { return e.Err }
