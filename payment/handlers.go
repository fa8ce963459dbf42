package payment

import (
	"context"
	"errors"
	"fmt"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// onOrderCreated remembers what to charge, and to whom; it may be the last
// thing the charge waited for.
func (s *Service) onOrderCreated(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, o *event.OrderCreated) error {
	pay, err := s.store.lock(ctx, tx, o.OrderID, s.d.Now().UTC())
	if err != nil {
		return err
	}
	if pay.hasOrder {
		s.d.Log.Debug("OrderCreated seen before; ignored", "orderId", o.OrderID, "eventId", e.EventID)
		return nil
	}
	pay.hasOrder = true
	pay.UserID, pay.AmountCents, pay.Currency = o.Customer.UserID, o.TotalCents, o.Currency
	pay.cardToken, pay.CardLast4 = o.Payment.CardToken, o.Payment.CardLast4
	return s.advance(ctx, tx, e, pay)
}

// onInventoryReserved: the goods are held, so the order may be charged.
func (s *Service) onInventoryReserved(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, r *event.InventoryReserved) error {
	pay, err := s.store.lock(ctx, tx, r.OrderID, s.d.Now().UTC())
	if err != nil {
		return err
	}
	if pay.reserved {
		return nil
	}
	pay.reserved = true
	return s.advance(ctx, tx, e, pay)
}

// onOrderCancelled refunds a processed payment and voids one not charged
// yet; a declined or already refunded payment needs nothing more.
func (s *Service) onOrderCancelled(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, c *event.OrderCancelled) error {
	pay, err := s.store.lock(ctx, tx, c.OrderID, s.d.Now().UTC())
	if err != nil {
		return err
	}
	if pay.cancelled {
		return nil
	}
	pay.cancelled = true
	if pay.UserID == "" {
		pay.UserID = c.UserID
	}
	var out []event.Payload
	switch pay.Status {
	case StatusAwaiting:
		pay.Status, pay.Reason = StatusVoided, c.ReasonCode
	case StatusProcessed:
		if err := s.provider.Refund(ctx, pay.ID, pay.AmountCents); err != nil {
			return fmt.Errorf("payment: refund order %s: %w", pay.OrderID, err) // transient: the batch is retried
		}
		pay.Status, pay.Reason = StatusRefunded, c.ReasonCode
		out = append(out, &event.PaymentRefunded{PaymentID: pay.ID, OrderID: pay.OrderID, UserID: pay.UserID,
			AmountCents: pay.AmountCents, Currency: pay.Currency, Reason: c.ReasonCode})
	default:
		s.d.Log.Debug("order cancelled; payment needs no compensation", "orderId", pay.OrderID, "status", pay.Status)
	}
	return s.saveAndEmit(ctx, tx, e, pay, out...)
}

// advance charges pay if the saga now asks for it, and saves it.
func (s *Service) advance(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, pay *Payment) error {
	if !pay.readyToCharge() {
		return s.saveAndEmit(ctx, tx, e, pay)
	}
	card, err := s.store.card(ctx, tx, pay.cardToken)
	if err != nil {
		return err
	}
	var authCode string
	if card == nil || card.UserID != pay.UserID {
		// The order names a card this customer never vaulted: nothing to
		// charge, which is a decline rather than a failure to retry.
		err = &DeclineError{Code: "card-not-found", Reason: "The card on file was not found."}
	} else {
		pay.CardLast4 = card.Last4
		authCode, err = s.provider.Charge(ctx, ChargeRequest{PaymentID: pay.ID, CardNumber: card.Number, AmountCents: pay.AmountCents, Currency: pay.Currency})
	}
	var decline *DeclineError
	out := []event.Payload{&event.PaymentInitiated{PaymentID: pay.ID, OrderID: pay.OrderID, UserID: pay.UserID,
		AmountCents: pay.AmountCents, Currency: pay.Currency, CardLast4: pay.CardLast4}}
	switch {
	case err == nil:
		pay.Status, pay.AuthCode = StatusProcessed, authCode
		out = append(out, &event.PaymentProcessed{PaymentID: pay.ID, OrderID: pay.OrderID, UserID: pay.UserID,
			AmountCents: pay.AmountCents, Currency: pay.Currency, AuthCode: authCode})
	case errors.As(err, &decline):
		pay.Status, pay.FailureCode, pay.Reason = StatusFailed, decline.Code, decline.Reason
		out = append(out, &event.PaymentFailed{PaymentID: pay.ID, OrderID: pay.OrderID, UserID: pay.UserID,
			AmountCents: pay.AmountCents, Currency: pay.Currency, Code: decline.Code, Reason: decline.Reason})
	default:
		// The provider could not answer: roll back (PaymentInitiated too)
		// and let the bus redeliver; the retry uses the same payment id.
		return fmt.Errorf("payment: charge order %s: %w", pay.OrderID, err)
	}
	return s.saveAndEmit(ctx, tx, e, pay, out...)
}

// saveAndEmit stores pay and the events it caused, which follow e in its saga.
func (s *Service) saveAndEmit(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, pay *Payment, out ...event.Payload) error {
	pay.UpdatedAt = s.d.Now().UTC()
	if err := s.store.save(ctx, tx, pay); err != nil {
		return err
	}
	if len(out) == 0 {
		return nil
	}
	if err := outbox.Emit(ctx, tx, service.Source(Name), e.Origin(), out...); err != nil {
		return fmt.Errorf("payment: %w", err)
	}
	return nil
}
