package order

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// The order's saga (docs/saga.md): the other services' events that move an
// order on, its compensations and timeout, and the log of every event of
// an order (GET /orders/{id}/events).

// sagaHandlers returns the handlers of the order's saga: each of hs runs
// after its event is logged under its order, and every other event type the
// catalog declares a member of an order's saga (`event:"order"`) is logged
// only, so GET /orders/{id}/events lists them all. The service's own events
// (order-events) are logged in the transaction that emits them (see
// record), so it does not consume them back: a third of its records, each a
// processed-event insert, a lookup and a no-op log insert.
func (s *Service) sagaHandlers(hs ...inbox.Handler) []inbox.Handler {
	handled := map[event.Type]bool{}
	for i, h := range hs {
		handled[h.Type] = true
		hs[i].Func = s.logged(h.Type, h.Func)
	}
	for _, spec := range event.Catalog() {
		if spec.InSaga() && spec.Topic != event.TopicOrder && !handled[spec.Type] {
			hs = append(hs, inbox.Handler{Type: spec.Type, Func: s.logged(spec.Type, nil)})
		}
	}
	return hs
}

// logged wraps the handler of events of type t, which may belong to an
// order's saga: if the event concerns one of this service's orders it is
// logged under that order and then is applied (nil: log only). Events of
// unknown orders, or of no order at all, are ignored.
func (s *Service) logged(t event.Type, then inbox.Func) inbox.Func {
	spec, _ := event.Lookup(t) // resolved once; a type not in the catalog has no order, and inbox.ByType rejects it
	return func(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p event.Payload) error {
		id := spec.OrderID(p)
		if id == "" {
			return nil
		}
		// The order's stream, read once per batch (the command that
		// follows finds it in tx's cache).
		st, err := s.store.loadCached(ctx, tx, id)
		if err != nil {
			return err
		}
		if !st.State.placed() {
			s.d.Log.Debug("event of an unknown order ignored", "eventType", e.EventType, "eventId", e.EventID, "orderId", id)
			return nil
		}
		if err := s.store.logSagaEvent(tx, id, e); err != nil {
			return err
		}
		if then == nil {
			return nil
		}
		return then(ctx, tx, e, p)
	}
}

// Prepare reads, before a batch of events is applied, the streams of the
// orders its saga events concern, in one query (inbox.Preparer): a batch
// of many orders' events reads each order once, and its handlers find the
// orders in the transaction's cache.
func (s *Service) Prepare(ctx context.Context, tx *sqldb.Tx, batch []inbox.Event) error {
	var ids []string
	seen := map[string]bool{}
	for _, e := range batch {
		if spec, ok := event.Lookup(e.Envelope.EventType); ok && spec.InSaga() {
			if id := spec.OrderID(e.Payload); id != "" && !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	return s.store.loadBatch(ctx, tx, ids)
}

func (s *Service) onReservationFailed(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, f *event.InventoryReservationFailed) error {
	reason := f.Reason
	if reason == "" {
		reason = "not enough stock"
	}
	return s.onSagaInput(ctx, tx, e, f.OrderID, Command{Kind: Cancel, ReasonCode: ReasonOutOfStock, Reason: reason})
}

// onPaymentFailed cancels a PENDING order. A failure for an order that is
// no longer PENDING changes nothing: the order is already decided.
func (s *Service) onPaymentFailed(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, f *event.PaymentFailed) error {
	reason := f.Reason
	if reason == "" {
		reason = "payment failed: " + f.Code
	}
	return s.onSagaInput(ctx, tx, e, f.OrderID, Command{Kind: Cancel, ReasonCode: ReasonPaymentFailed, Reason: reason})
}

// onPaymentProcessed confirms a PENDING order (and ships it if its label
// came first). For an order already cancelled it does nothing: the payment
// service refunds on its own when it sees OrderCancelled.
func (s *Service) onPaymentProcessed(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, pp *event.PaymentProcessed) error {
	return s.onSagaInput(ctx, tx, e, pp.OrderID, Command{Kind: ConfirmPayment, PaymentID: pp.PaymentID})
}

// onShippingCreated records the shipment, kept even for an order that is
// not (or no longer) CONFIRMED: it may be confirmed later, and a cancelled
// order's label is voided by the shipping service. A CONFIRMED order
// ships. The order does not wait for the customer's e-mail: the
// notification service sends "on its way" on OrderShipped, so the mail
// follows the order and never precedes (or contradicts) it (docs/saga.md,
// "Notifications").
func (s *Service) onShippingCreated(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, c *event.ShippingCreated) error {
	return s.onSagaInput(ctx, tx, e, c.OrderID, Command{Kind: NoteShipment, ShipmentID: c.ShipmentID, TrackingNumber: c.TrackingNumber})
}

// onSagaInput runs the command another service's event e asks of order id.
func (s *Service) onSagaInput(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, id string, c Command) error {
	_, evs, err := s.command(ctx, tx, e.Origin(), id, c)
	if err == nil && len(evs) == 0 {
		s.d.Log.Debug("event that changes nothing of its order ignored", "eventType", e.EventType, "eventId", e.EventID, "orderId", id)
	}
	return err
}

// command runs c on order id within tx: it loads the order's stream,
// decides, and — if that changes the order — appends the events, writes
// the orders table and adds the integration events they cause (origin o)
// to the outbox and the order's saga log, all in tx. A conflicting append
// (another handler or instance acting on the order at once, on
// PostgreSQL) makes it load and decide again on what the winner committed
// (eventstore.RetryInTx). It returns the order after it and the events
// decided (none: nothing changed), and the order as it stands with
// decide's refusal.
func (s *Service) command(ctx context.Context, tx *sqldb.Tx, o event.Origin, id string, c Command) (*Order, []OrderEvent, error) {
	var st *stream
	var evs []OrderEvent
	err := eventstore.RetryInTx(ctx, tx, maxTries, func() error {
		var err error
		if c.Kind == Place {
			st = &stream{} // a new order id has no stream: no read (the append still expects none)
		} else if st, err = s.store.loadCached(ctx, tx, id); err != nil {
			return err
		}
		if evs, err = decide(st.State, c); err != nil || len(evs) == 0 {
			return err
		}
		now := s.d.Now()
		if c.Kind == Place { // placed when its createdAt says, so ?asOf=<createdAt> finds it
			now = c.Order.CreatedAt
		}
		if err := s.store.save(ctx, tx, st, eventstore.OriginMetadata(o), now, evs...); err != nil {
			return err
		}
		return s.emitFor(ctx, tx, o, st.State, evs, now)
	})
	if st == nil {
		return nil, nil, err
	}
	return st.State.view(), evs, err
}

// emitFor adds to the outbox the integration events that the domain events
// evs of order st cause, with origin o, and counts the sagas they end.
func (s *Service) emitFor(ctx context.Context, tx *sqldb.Tx, o event.Origin, st OrderState, evs []OrderEvent, now time.Time) error {
	for _, e := range evs {
		var p event.Payload
		switch e.Type {
		case PaymentConfirmed:
			p = &event.OrderConfirmed{OrderID: st.ID, UserID: st.UserID, PaymentID: st.PaymentID, TotalCents: st.TotalCents, Currency: st.Currency}
		case OrderDispatched:
			s.metrics.ended(tx, &st.Order, StatusShipped, "", now)
			p = &event.OrderShipped{OrderID: st.ID, UserID: st.UserID, ShipmentID: st.ShipmentID, TrackingNumber: st.TrackingNumber}
		case OrderVoided:
			s.metrics.ended(tx, &st.Order, StatusCancelled, e.ReasonCode, now)
			p = &event.OrderCancelled{OrderID: st.ID, UserID: st.UserID, ReasonCode: e.ReasonCode, Reason: e.Reason}
		default: // OrderPlaced's OrderCreated is built by place, with what only the request knows
			continue
		}
		if err := s.emit(ctx, tx, o, p); err != nil {
			return err
		}
	}
	return nil
}

// decidingTopics are the topics of the events that decide a PENDING order:
// InventoryReservationFailed, PaymentProcessed and PaymentFailed.
var decidingTopics = func() []string {
	var ts []string
	for _, t := range []event.Type{"InventoryReservationFailed", "PaymentProcessed", "PaymentFailed"} {
		if topic := string(event.TopicOf(t)); !slices.Contains(ts, topic) {
			ts = append(ts, topic)
		}
	}
	return ts
}()

// cancelTimedOut cancels, one transaction each, the PENDING orders whose
// saga timeout has run out: counted from when the pipeline reached them,
// not from their creation, so an order merely waiting its turn behind
// others is not cancelled while the pipeline keeps deciding orders
// (timeout.go) — and only those whose deadline this service's consumer
// group has read past on the topics of the events that decide a PENDING
// order (decidingTopics): an order's payment that sits unread in the log
// (the group lags, rebalances, or a dead member still holds its
// partitions) is not a timeout. The others wait for a later sweep
// (docs/saga.md, "Timeouts"). Their OrderCancelled continues the order's
// saga: its correlation id, caused by OrderCreated.
func (s *Service) cancelTimedOut(ctx context.Context) error {
	now := s.d.Now()
	candidates, err := pendingBefore(ctx, s.d.DB, now.Add(-s.timeout), 100) // a timeout never starts before the order was placed
	if err != nil || len(candidates) == 0 {
		return err
	}
	f, err := readFrontier(ctx, s.d.DB)
	if err != nil {
		return err
	}
	type due struct {
		id    string
		start time.Time
	}
	var dues []due
	var first firstDecided // for the previous candidate; candidates come oldest first
	for _, c := range candidates {
		if !f.Placed.IsZero() && !c.Placed.After(f.Placed) && (first.Placed.IsZero() || c.Placed.After(first.Placed)) {
			if first, err = reachedAt(ctx, s.d.DB, c.Placed); err != nil {
				return err
			}
		}
		reached := first.Decided
		if first.Placed.Before(c.Placed) { // none yet (zero), or not after this order: not known to have reached it
			reached = time.Time{}
		}
		start := timeoutStart(c.Placed, f, reached, time.Time{})
		if !expired(start, s.timeout, now) {
			continue
		}
		ahead, err := lastDecidedAhead(ctx, s.d.DB, c.Placed) // only for an order otherwise due: a scan of aheadWindow rows
		if err != nil {
			return err
		}
		if start = timeoutStart(c.Placed, f, reached, ahead); expired(start, s.timeout, now) {
			dues = append(dues, due{c.ID, start})
		}
	}
	if len(dues) == 0 {
		s.d.Log.Debug("saga timeouts deferred: the orders wait their turn", "frontier", f.Placed, "lastDecided", f.Decided)
		return nil
	}
	var ids []string
	if s.d.Consumed == nil {
		for _, d := range dues {
			ids = append(ids, d.id)
		}
	} else {
		read, err := s.d.Consumed(ctx, decidingTopics)
		if err != nil {
			return fmt.Errorf("order: saga timeout: what the consumer group has read: %w", err)
		}
		for _, d := range dues {
			if expired(d.start, s.timeout, read) {
				ids = append(ids, d.id)
			}
		}
		if len(ids) == 0 {
			s.d.Log.Debug("saga timeouts deferred: events of the orders may be unread", "readUntil", read, "topics", decidingTopics)
			return nil
		}
	}
	reason := "the order did not progress within " + s.timeout.String()
	for _, id := range ids {
		var evs []OrderEvent
		err := s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
			o, err := s.store.order(ctx, tx, id)
			if err != nil {
				return err
			}
			origin := event.Origin{CorrelationID: o.correlationID, CausationID: o.createdEventID}
			_, evs, err = s.command(ctx, tx, origin, id, Command{Kind: Cancel, ReasonCode: ReasonTimeout, Reason: reason})
			return err
		})
		if err != nil {
			return err
		}
		if len(evs) > 0 {
			s.d.Outbox.Notify()
		}
	}
	return nil
}

// emit adds the event of payload p of one of this service's orders to the
// outbox and to the order's saga log, within tx.
func (s *Service) emit(ctx context.Context, tx *sqldb.Tx, o event.Origin, p event.Payload) error {
	e, err := event.New(service.Source(Name), o, p)
	if err != nil {
		return err
	}
	return s.record(ctx, tx, e)
}

// record adds a built envelope of this service to the outbox and to the
// saga log of its order (its key) (so GET /orders/{id}/events shows it at once; its
// return through the bus is then a no-op).
func (s *Service) record(ctx context.Context, tx *sqldb.Tx, e *event.Envelope) error {
	if err := outbox.Add(ctx, tx, e); err != nil {
		return err
	}
	return s.store.logSagaEvent(tx, e.Key, e)
}
