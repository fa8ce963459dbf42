package payment

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// onOrderCreated remembers what to charge, and to whom; it may be the last
// thing the charge waited for.
func (s *Service) onOrderCreated(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, o *event.OrderCreated) error {
	return s.command(ctx, tx, e, o.OrderID, LedgerCommand{Kind: NoteOrder, OrderID: o.OrderID, UserID: o.Customer.UserID,
		AmountCents: o.TotalCents, Currency: o.Currency, CardToken: o.Payment.CardToken, CardLast4: o.Payment.CardLast4})
}

// onInventoryReserved: the goods are held, so the order may be charged.
func (s *Service) onInventoryReserved(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, r *event.InventoryReserved) error {
	return s.command(ctx, tx, e, r.OrderID, LedgerCommand{Kind: NoteReservation, OrderID: r.OrderID})
}

// onOrderCancelled refunds a processed payment and voids one not charged
// yet; a declined or already refunded payment needs nothing more.
func (s *Service) onOrderCancelled(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, c *event.OrderCancelled) error {
	return s.command(ctx, tx, e, c.OrderID, LedgerCommand{Kind: NoteCancellation, OrderID: c.OrderID, UserID: c.UserID, Reason: c.ReasonCode})
}

// Prepare reads, before a batch of events is applied, the ledgers of the
// orders they concern in one query, and the vaulted cards of those the
// batch may charge in another (inbox.Preparer): the handlers find them in
// the transaction's cache instead of reading each order's stream, and its
// card, per event.
func (s *Service) Prepare(ctx context.Context, tx *sqldb.Tx, batch []inbox.Event) error {
	type seen struct {
		created  *event.OrderCreated
		reserved bool
	}
	byOrder := map[string]*seen{}
	var ids []string
	note := func(id string) *seen {
		if byOrder[id] == nil {
			byOrder[id] = &seen{}
			ids = append(ids, id)
		}
		return byOrder[id]
	}
	for _, e := range batch {
		switch p := e.Payload.(type) {
		case *event.OrderCreated:
			note(p.OrderID).created = p
		case *event.InventoryReserved:
			note(p.OrderID).reserved = true
		case *event.OrderCancelled:
			note(p.OrderID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	ls, err := s.store.loadLedgers(ctx, tx, ids)
	if err != nil {
		return err
	}
	// The cards of the orders this batch may make ready to charge: known
	// and reserved (before or in the batch), not cancelled nor charged.
	var tokens []string
	for _, id := range ids {
		st, b := ls[id].State, byOrder[id]
		token := st.CardToken
		if !st.HasOrder && b.created != nil {
			token = b.created.Payment.CardToken
		}
		if (st.HasOrder || b.created != nil) && (st.Reserved || b.reserved) && !st.Cancelled && (!st.Known || st.Status == StatusAwaiting) {
			tokens = append(tokens, token)
		}
	}
	return s.store.loadCards(ctx, tx, tokens)
}

// command notes one of the saga's inputs in the order's ledger and, if
// that was news, does what the saga then asks: the charge, once the order
// and its reservation are known and no cancellation; the refund of the
// balance, on a cancellation after the charge. A conflicting append (a
// handler of another topic appending to the same stream, on PostgreSQL)
// makes it decide again on what the winner committed.
//
// The note is appended before the provider is called: it claims the
// stream's next version, so a concurrent command on the order waits for
// this transaction at its own append and then retries on the outcome — a
// cancellation racing the charge sees the capture and refunds it, or wins
// and the charge is never sent. (On SQLite no other transaction can run
// meanwhile, and a note that makes the order ready to charge is appended
// with the charge's outcome, in one insert.)
func (s *Service) command(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, orderID string, c LedgerCommand) error {
	return eventstore.RetryInTx(ctx, tx, maxTries, func() error {
		l, err := s.store.loadLedgerCached(ctx, tx, orderID)
		if err != nil {
			return err
		}
		evs, err := decide(l.State, c)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			s.d.Log.Debug("payment input seen before; ignored", "orderId", orderID, "eventId", e.EventID, "type", e.EventType)
			return nil
		}
		if tx.Dialect() == sqldb.SQLite {
			// No other transaction can append to the stream before this one
			// ends (SQLite has one writer), so a note that makes the order
			// ready to charge need not claim the stream's next version
			// first: it is appended with the charge's outcome, one insert.
			next, err := foldAt(l.State, evs, s.d.Now().UTC())
			if err != nil {
				return err
			}
			if next.readyToCharge() {
				return s.charge(ctx, tx, e, l, evs)
			}
		}
		if err := s.store.saveLedger(ctx, tx, l, eventstore.OriginMetadata(e.Origin()), s.d.Now().UTC(), evs...); err != nil {
			return err
		}
		switch {
		case l.State.readyToCharge():
			return s.charge(ctx, tx, e, l, nil)
		case c.Kind == NoteCancellation && l.State.Balance() > 0:
			return s.refund(ctx, tx, e, l, c.Reason)
		case c.Kind == NoteCancellation:
			s.d.Log.Debug("order cancelled; payment needs no refund", "orderId", orderID, "status", l.State.Status)
		}
		return nil
	})
}

// foldAt returns s after evs, which happen at at.
func foldAt(s PaymentState, evs []LedgerEvent, at time.Time) (PaymentState, error) {
	for _, ev := range evs {
		var err error
		if s, err = applyAt(s, ev, at); err != nil {
			return s, err
		}
	}
	return s, nil
}

// charge charges the order through the provider and records the outcome:
// noted, the events that made it ready to charge if they are not saved
// yet, then the charge's, in one append.
func (s *Service) charge(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, l *ledger, noted []LedgerEvent) error {
	p, err := foldAt(l.State, noted, s.d.Now().UTC())
	if err != nil {
		return err
	}
	card, err := s.store.cardCached(ctx, tx, p.CardToken)
	if err != nil {
		return err
	}
	last4 := p.CardLast4
	var authCode string
	if card == nil || card.UserID != p.UserID {
		// The order names a card this customer never vaulted: nothing to
		// charge, which is a decline rather than a failure to retry.
		err = &DeclineError{Code: "card-not-found", Reason: "The card on file was not found."}
		if card == nil {
			s.cards.forgetToken(p.CardToken) // its row is gone: vaulting must not answer it again
		}
	} else {
		last4 = card.Last4
		var number string
		if number, err = s.vault.open(card.Token, card.Number); err != nil {
			return err // a missing key: fails until the operator restores it
		}
		authCode, err = s.provider.Charge(ctx, ChargeRequest{PaymentID: l.PaymentID, CardNumber: number, AmountCents: p.AmountCents, Currency: p.Currency})
	}
	var decline *DeclineError
	cmd := LedgerCommand{Kind: Capture, AuthCode: authCode, CardLast4: last4}
	switch {
	case err == nil:
	case errors.As(err, &decline):
		cmd = LedgerCommand{Kind: Decline, Code: decline.Code, Reason: decline.Reason, CardLast4: last4}
	default:
		// The provider could not answer: roll back (the note too) and let
		// the bus redeliver; the retry uses the same payment id.
		return fmt.Errorf("payment: charge order %s: %w", p.OrderID, err)
	}
	evs, err := decide(p, cmd)
	if err != nil {
		return err
	}
	if err := s.store.saveLedger(ctx, tx, l, eventstore.OriginMetadata(e.Origin()), s.d.Now().UTC(), append(noted, evs...)...); err != nil {
		return err
	}
	p = l.State
	out := []event.Payload{&event.PaymentInitiated{PaymentID: l.PaymentID, OrderID: p.OrderID, UserID: p.UserID,
		AmountCents: p.AmountCents, Currency: p.Currency, CardLast4: p.CardLast4}}
	if cmd.Kind == Capture {
		out = append(out, &event.PaymentProcessed{PaymentID: l.PaymentID, OrderID: p.OrderID, UserID: p.UserID,
			AmountCents: p.AmountCents, Currency: p.Currency, AuthCode: p.AuthCode})
	} else {
		out = append(out, &event.PaymentFailed{PaymentID: l.PaymentID, OrderID: p.OrderID, UserID: p.UserID,
			AmountCents: p.AmountCents, Currency: p.Currency, Code: p.FailureCode, Reason: p.Reason})
	}
	return emit(ctx, tx, e, out...)
}

// refund gives the balance back through the provider and records it.
func (s *Service) refund(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, l *ledger, reason string) error {
	amount := l.State.Balance()
	evs, err := decide(l.State, LedgerCommand{Kind: Refund, AmountCents: amount, Reason: reason})
	if err != nil {
		return err
	}
	if err := s.provider.Refund(ctx, l.PaymentID, amount); err != nil {
		return fmt.Errorf("payment: refund order %s: %w", l.State.OrderID, err) // transient: the batch is retried
	}
	if err := s.store.saveLedger(ctx, tx, l, eventstore.OriginMetadata(e.Origin()), s.d.Now().UTC(), evs...); err != nil {
		return err
	}
	p := l.State
	return emit(ctx, tx, e, &event.PaymentRefunded{PaymentID: l.PaymentID, OrderID: p.OrderID, UserID: p.UserID,
		AmountCents: amount, Currency: p.Currency, Reason: reason})
}

// emit enqueues the integration events e caused, which follow it in its saga.
func emit(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, out ...event.Payload) error {
	if err := outbox.Emit(ctx, tx, service.Source(Name), e.Origin(), out...); err != nil {
		return fmt.Errorf("payment: %w", err)
	}
	return nil
}
