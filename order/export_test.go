package order

import (
	"context"
	"fmt"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Handle runs svc's handler of e (the running order service's) in a
// transaction of its own, as its consumer would, so that tests can run
// handlers of one order at the same moment.
func Handle(ctx context.Context, svc service.Service, e *event.Envelope) error {
	s := svc.(*Service)
	p, err := e.Payload()
	if err != nil {
		return err
	}
	for _, h := range s.Handlers() {
		if h.Type == e.EventType {
			return s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error { return h.Func(ctx, tx, e, p) })
		}
	}
	return fmt.Errorf("no handler of %s", e.EventType)
}

// CancelAsCustomer cancels order id as POST /orders/{id}/cancel does, on
// svc; ErrNotCancellable when it is past cancelling.
func CancelAsCustomer(ctx context.Context, svc service.Service, id string) error {
	s := svc.(*Service)
	err := s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		_, _, err := s.command(ctx, tx, event.Origin{CorrelationID: "corr-cancel"}, id,
			Command{Kind: Cancel, ReasonCode: ReasonCustomerCancelled, Reason: "cancelled by the customer"})
		return err
	})
	if err == nil {
		s.d.Outbox.Notify()
	}
	return err
}

// SetRecheck sets how often svc's held GETs read their order again
// without a notification on PostgreSQL: while it listens for the changes
// of other instances (safety) and while it does not (unheard).
func SetRecheck(svc service.Service, safety, unheard time.Duration) {
	s := svc.(*Service)
	s.safetyRecheck.Store(int64(safety))
	s.recheck.Store(int64(unheard))
}

// Listening reports whether svc listens for the changes of other
// instances (PostgreSQL).
func Listening(svc service.Service) bool { return svc.(*Service).listening.Load() }

// Watched returns how many orders svc's held GETs wait on.
func Watched(svc service.Service) int { return svc.(*Service).changed.Len() }

// Known returns how many orders svc's held GETs know without reading
// them (known).
func Known(svc service.Service) int { return svc.(*Service).known.size() }

// RememberedVersion returns the stream version at which svc remembers
// order id, and whether it does.
func RememberedVersion(svc service.Service, id string) (int64, bool) {
	return svc.(*Service).store.memory.Version(orderStream(id))
}

// LoadBatch loads orders ids on svc as a batch of saga events does
// (Prepare), in a transaction that commits, and returns each one's status
// and stream version.
func LoadBatch(ctx context.Context, svc service.Service, ids ...string) (map[string]string, map[string]int64, error) {
	s := svc.(*Service)
	status, version := map[string]string{}, map[string]int64{}
	err := s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		if err := s.store.loadBatch(ctx, tx, ids); err != nil {
			return err
		}
		for id, st := range streamCache(tx) {
			status[id], version[id] = st.State.Status, st.Version
		}
		return nil
	})
	return status, version, err
}

// Committing is how many orders rows the instance wrote whose notification
// it has not heard yet (known.committing).
func Committing(svc service.Service) int {
	k := &svc.(*Service).known
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.committing)
}

// CancelAllAsCustomer cancels orders ids as CancelAsCustomer does, in one
// transaction.
func CancelAllAsCustomer(ctx context.Context, svc service.Service, ids ...string) error {
	s := svc.(*Service)
	err := s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		for _, id := range ids {
			if _, _, err := s.command(ctx, tx, event.Origin{CorrelationID: "corr-cancel"}, id,
				Command{Kind: Cancel, ReasonCode: ReasonCustomerCancelled, Reason: "cancelled by the customer"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		s.d.Outbox.Notify()
	}
	return err
}

// UserRemembered reports whether svc answers user id's projection row
// from memory (userMemory).
func UserRemembered(svc service.Service, id string) bool {
	_, ok := svc.(*Service).users.Lookup(id)
	return ok
}

// DeactivateUser deactivates user id in svc's projection, as
// UserDeactivated does; written, if set, runs in the transaction after the
// write.
func DeactivateUser(ctx context.Context, svc service.Service, id string, written func()) error {
	s := svc.(*Service)
	return s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		if err := s.store.deactivateUser(ctx, tx, id); err != nil {
			return err
		}
		if written != nil {
			written()
		}
		return nil
	})
}

// SetShedding makes svc's admission control shed every new order (on) or
// admit them all (off), from the next order on.
func SetShedding(svc service.Service, on bool) {
	a := svc.(*Service).admit
	a.mu.Lock()
	defer a.mu.Unlock()
	a.limit, a.pending, a.read = 1, 0, time.Now().Add(time.Hour) // no sample for an hour
	if on {
		a.pending = 1
	}
}

// OutboxReads returns how many times svc's outbox relay read the outbox
// (outbox.Relay.Reads).
func OutboxReads(svc service.Service) int64 { return svc.(*Service).d.Outbox.Reads() }
