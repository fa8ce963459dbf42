package shipping

import (
	"context"
	"fmt"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// onOrderCreated remembers where to ship, and for whom; it may be the last
// thing the label waited for.
func (s *Service) onOrderCreated(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, o *event.OrderCreated) error {
	now := s.d.Now().UTC()
	sh, err := s.store.lock(ctx, tx, o.OrderID, now)
	if err != nil {
		return err
	}
	if sh.hasOrder {
		s.d.Log.Debug("OrderCreated seen before; ignored", "orderId", o.OrderID, "eventId", e.EventID)
		return nil
	}
	sh.hasOrder, sh.UserID, sh.Address = true, o.Customer.UserID, o.ShippingAddress
	return s.advance(ctx, tx, e, sh, now)
}

// onPaymentProcessed: the order is paid for, so it may be labelled.
func (s *Service) onPaymentProcessed(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, pp *event.PaymentProcessed) error {
	now := s.d.Now().UTC()
	sh, err := s.store.lock(ctx, tx, pp.OrderID, now)
	if err != nil {
		return err
	}
	if sh.paid {
		return nil
	}
	sh.paid = true
	if sh.UserID == "" {
		sh.UserID = pp.UserID
	}
	return s.advance(ctx, tx, e, sh, now)
}

// onOrderCancelled voids a label not dispatched yet, or makes sure none is
// ever created. A parcel already with the carrier is not called back.
func (s *Service) onOrderCancelled(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, c *event.OrderCancelled) error {
	now := s.d.Now().UTC()
	sh, err := s.store.lock(ctx, tx, c.OrderID, now)
	if err != nil {
		return err
	}
	if sh.cancelled {
		return nil
	}
	sh.cancelled = true
	if sh.UserID == "" {
		sh.UserID = c.UserID
	}
	var out event.Payload
	switch sh.Status {
	case StatusWaiting:
		sh.Status = StatusCancelled // no label exists, none will
	case StatusCreated:
		sh.Status = StatusCancelled
		out = &event.ShippingCancelled{ShipmentID: sh.ID, OrderID: sh.OrderID, UserID: sh.UserID, Reason: c.ReasonCode}
	default:
		s.d.Log.Debug("order cancelled after dispatch; the parcel is on its way", "orderId", sh.OrderID, "status", sh.Status)
	}
	return s.saveAndEmit(ctx, tx, e.Origin(), sh, now, out)
}

// onOrderShipped lets the carrier take the parcel.
func (s *Service) onOrderShipped(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, shipped *event.OrderShipped) error {
	now := s.d.Now().UTC()
	sh, err := s.store.lock(ctx, tx, shipped.OrderID, now)
	if err != nil {
		return err
	}
	if sh.shippedOrder {
		return nil
	}
	sh.shippedOrder, sh.shippedAt = true, &now
	return s.saveAndEmit(ctx, tx, e.Origin(), sh, now, nil)
}

// advance creates the label if the saga now asks for it, and saves sh.
func (s *Service) advance(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, sh *Shipment, now time.Time) error {
	var out event.Payload
	if sh.readyForLabel() {
		sh.Status, sh.Carrier, sh.TrackingNumber = StatusCreated, Carrier, trackingNumber(sh.ID)
		out = &event.ShippingCreated{ShipmentID: sh.ID, OrderID: sh.OrderID, UserID: sh.UserID,
			Carrier: sh.Carrier, TrackingNumber: sh.TrackingNumber, Address: sh.Address}
	}
	return s.saveAndEmit(ctx, tx, e.Origin(), sh, now, out)
}

// dispatch moves a created shipment to the carrier.
func (s *Service) dispatch(sh *Shipment, now time.Time) event.Payload {
	sh.Status, sh.DispatchedAt = StatusDispatched, &now
	return &event.ShippingDispatched{ShipmentID: sh.ID, OrderID: sh.OrderID, UserID: sh.UserID, TrackingNumber: sh.TrackingNumber}
}

// deliver marks a dispatched shipment delivered.
func (s *Service) deliver(sh *Shipment, now time.Time) event.Payload {
	sh.Status, sh.DeliveredAt = StatusDelivered, &now
	return &event.ShippingDelivered{ShipmentID: sh.ID, OrderID: sh.OrderID, UserID: sh.UserID, TrackingNumber: sh.TrackingNumber}
}

// saveAndEmit stores sh and the event it caused (if not nil), emitted with
// origin o, remembering that event as the cause of the shipment's next one.
func (s *Service) saveAndEmit(ctx context.Context, tx *sqldb.Tx, o event.Origin, sh *Shipment, now time.Time, p event.Payload) error {
	if p != nil {
		e, err := outbox.EmitOne(ctx, tx, service.Source(Name), o, p)
		if err != nil {
			return fmt.Errorf("shipping: %w", err)
		}
		sh.lastEventID = e.EventID
		if sh.correlationID == "" { // the label's saga; later events by admins do not change it
			sh.correlationID = e.CorrelationID
		}
	}
	sh.UpdatedAt = now
	return s.store.save(ctx, tx, sh)
}
