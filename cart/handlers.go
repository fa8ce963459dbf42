package cart

import (
	"context"
	"fmt"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// onOrderCreated takes an order placed from the cart out of it: each
// ordered quantity is subtracted from its line, and lines that reach zero
// are removed, so items added after the order was placed stay.
func (s *Service) onOrderCreated(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, oc *event.OrderCreated) error {
	if !oc.FromCart {
		return nil
	}
	userID := oc.Customer.UserID
	cartID, err := s.store.lockCart(ctx, tx, userID)
	if err != nil || cartID == "" {
		return err
	}
	ordered := map[string]int64{}
	for _, l := range oc.Lines {
		ordered[l.ProductID] += l.Quantity
	}
	now := s.d.Now()
	changed := false
	for productID, q := range ordered {
		have, err := s.store.quantity(ctx, tx, userID, productID)
		if err != nil {
			return err
		}
		switch {
		case have == 0:
			continue
		case have <= q:
			_, err = s.store.deleteItem(ctx, tx, userID, productID)
		default:
			err = s.store.setQuantity(ctx, tx, userID, productID, have-q, now)
		}
		if err != nil {
			return err
		}
		changed = true
	}
	if !changed {
		s.d.Log.Debug("OrderCreated from cart: nothing to remove", "orderId", oc.OrderID, "userId", userID, "eventId", e.EventID)
		return nil
	}
	return s.changed(ctx, tx, e, userID, cartID, "checkout")
}

// onProductDiscontinued removes the product from every cart holding it.
func (s *Service) onProductDiscontinued(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p *event.ProductDiscontinued) error {
	productID := p.ProductID
	users, err := s.store.usersWithProduct(ctx, tx, productID)
	if err != nil {
		return err
	}
	for _, userID := range users { // sorted: a deterministic lock order
		cartID, err := s.store.lockCart(ctx, tx, userID)
		if err != nil {
			return err
		}
		if _, err := s.store.deleteItem(ctx, tx, userID, productID); err != nil {
			return err
		}
		if cartID == "" {
			continue // a line without a cart cannot be made through the API
		}
		if err := s.changed(ctx, tx, e, userID, cartID, "product-discontinued"); err != nil {
			return err
		}
	}
	return nil
}

// onUserDeactivated stops the account from filling a cart and empties it.
func (s *Service) onUserDeactivated(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p *event.UserDeactivated) error {
	userID := p.UserID
	if err := s.store.deactivate(ctx, tx, userID, s.d.Now()); err != nil {
		return err
	}
	cartID, err := s.store.lockCart(ctx, tx, userID)
	if err != nil || cartID == "" {
		return err
	}
	n, err := s.store.clear(ctx, tx, userID)
	if err != nil || n == 0 {
		return err
	}
	return s.changed(ctx, tx, e, userID, cartID, "user-deactivated")
}

// changed records a change of a cart caused by e and emits its contents.
func (s *Service) changed(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, userID, cartID, reason string) error {
	c, err := s.store.touch(ctx, tx, userID, s.d.Now())
	if err != nil {
		return err
	}
	return outbox.Emit(ctx, tx, service.Source(Name), e.Origin(),
		&event.CartUpdated{CartID: cartID, UserID: userID, Items: c.Items, Reason: reason})
}

// sweepBatch bounds the carts reported in one transaction.
const sweepBatch = 500

// sweep reports every non-empty cart left unchanged for longer than the
// abandon-after setting and not reported since its last change
// (CartAbandoned), in transactions of up to sweepBatch carts.
func (s *Service) sweep(ctx context.Context) error {
	for {
		now := s.d.Now()
		var found, reported int
		err := s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
			idle, err := s.store.idleCarts(ctx, tx, now.Add(-s.abandonAfter), sweepBatch)
			if err != nil {
				return err
			}
			found = len(idle)
			for _, c := range idle {
				ok, err := s.store.markAbandoned(ctx, tx, c, now)
				if err != nil {
					return err
				}
				if !ok {
					continue // changed since it was read: no longer idle
				}
				items, err := s.store.items(ctx, tx, c.UserID)
				if err != nil {
					return err
				}
				// The sweep starts a flow of its own: no request or event caused it.
				err = outbox.Emit(ctx, tx, service.Source(Name), event.Origin{},
					&event.CartAbandoned{CartID: c.CartID, UserID: c.UserID, Items: items, IdleSince: time.UnixMilli(c.UpdatedAt).UTC()})
				if err != nil {
					return err
				}
				reported++
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("cart: sweep: %w", err)
		}
		if reported > 0 {
			s.d.Outbox.Notify()
		}
		if found < sweepBatch {
			return nil
		}
	}
}
