package order

import (
	"errors"
	"fmt"
	"time"
)

// This file is the order aggregate: an order as the fold of its stream's
// domain events ("order-<id>"), decided and applied by pure functions — no
// database, no clock, no I/O — so that every transition and compensation
// of the saga is table-tested alone (aggregate_test.go). orderstore.go
// loads, saves and projects them; the handlers (saga.go, users.go) and the
// HTTP API (http.go) call them.
//
//	PENDING --PaymentConfirmed--> CONFIRMED --(shipment noted)--> SHIPPED
//	PENDING --out of stock | payment failed | timeout--> CANCELLED
//	PENDING | CONFIRMED --customer cancels--> CANCELLED
//
// The saga's inputs arrive on several topics in any order, some twice:
// decide answers a duplicate, or an input the order is past, with no event.

// Domain event types of an order stream. They are internal to the service
// and distinct from the integration events it emits (OrderCreated,
// OrderConfirmed, OrderShipped, OrderCancelled on order-events), though
// most of them cause one (docs/event-sourcing.md, "The order").
const (
	OrderPlaced      = "OrderPlaced"      // POST /orders: the whole order, PENDING
	PaymentConfirmed = "PaymentConfirmed" // PaymentProcessed of a PENDING order: CONFIRMED (OrderConfirmed)
	ShipmentNoted    = "ShipmentNoted"    // ShippingCreated: the label, whatever the status
	OrderDispatched  = "OrderDispatched"  // CONFIRMED with a label: SHIPPED (OrderShipped)
	OrderVoided      = "OrderVoided"      // cancelled, with its reason (OrderCancelled)
	CustomerChanged  = "CustomerChanged"  // UserUpdated: the customer's new e-mail and name
	OrderImported    = "OrderImported"    // the order as the release before streams kept it in a row
)

// OrderEvent is a domain event of an order stream: its type and the fields
// that type uses (the stored payload is the JSON of the fields).
type OrderEvent struct {
	Type           string      `json:"-"`
	Order          *OrderState `json:"order,omitempty"`          // Placed, Imported: the whole order
	PaymentID      string      `json:"paymentId,omitempty"`      // PaymentConfirmed
	ShipmentID     string      `json:"shipmentId,omitempty"`     // ShipmentNoted
	TrackingNumber string      `json:"trackingNumber,omitempty"` // ShipmentNoted
	ReasonCode     string      `json:"reasonCode,omitempty"`     // Voided
	Reason         string      `json:"reason,omitempty"`         // Voided
	Customer       *Customer   `json:"customer,omitempty"`       // CustomerChanged
}

// OrderState is an order: the fold of its stream. It is the order as the
// API shows it plus the origin of its saga, which the timeout's
// OrderCancelled continues.
type OrderState struct {
	Order
	CorrelationID  string `json:"correlationId"`
	CreatedEventID string `json:"createdEventId"` // of OrderCreated
}

// placed reports whether the stream has begun (placed or imported).
func (s OrderState) placed() bool { return s.ID != "" }

// view is the order as the API shows it.
func (s OrderState) view() *Order {
	o := s.Order
	o.correlationID, o.createdEventID = s.CorrelationID, s.CreatedEventID
	return &o
}

// orderSchemaVersion is the version of OrderState's shape (it would tag
// snapshots; order streams are short and never snapshotted).
const orderSchemaVersion = 1

// CommandKind says what a Command asks of an order.
type CommandKind int

// Order commands.
const (
	Place          CommandKind = iota + 1 // start the stream with Order, PENDING
	ConfirmPayment                        // PaymentProcessed (PaymentID)
	NoteShipment                          // ShippingCreated (ShipmentID, TrackingNumber)
	Cancel                                // ReasonCode, Reason: the saga's (out-of-stock, payment-failed, timeout) or the customer's
	UpdateCustomer                        // UserUpdated (Customer)
	ImportRow                             // start the stream with Order, a row of the previous release
)

// Command is what a handler or a request asks of one order.
type Command struct {
	Kind           CommandKind
	Order          OrderState // Place, ImportRow
	PaymentID      string
	ShipmentID     string
	TrackingNumber string
	ReasonCode     string
	Reason         string
	Customer       Customer
}

// Why decide refuses a command: errors.Is them.
var (
	// ErrNotCancellable: the customer (or an admin) may cancel only a
	// PENDING or CONFIRMED order.
	ErrNotCancellable = errors.New("the order can no longer be cancelled")
	// ErrNotPlaced: a command other than Place or ImportRow on a stream
	// with no order.
	ErrNotPlaced          = errors.New("no such order")
	ErrUnknownCommand     = errors.New("unknown order command")
	errUnknownOrderEvent  = errors.New("unknown order event")
	errPlacedWithoutOrder = errors.New("order event without its order")
)

// cancellableFrom is the statuses each cancellation applies to: the
// customer's also to a CONFIRMED order, the saga's only to a PENDING one.
func cancellableFrom(reasonCode, status string) bool {
	if reasonCode == ReasonCustomerCancelled {
		return status == StatusPending || status == StatusConfirmed
	}
	return status == StatusPending
}

// decide returns the events that command c causes on order s — none when
// it changes nothing: a duplicate input, a payment outcome for an order
// that is no longer PENDING (payment refunds on its own), a saga
// cancellation of an order already decided — or why it is refused.
func decide(s OrderState, c Command) ([]OrderEvent, error) {
	switch c.Kind {
	case Place, ImportRow:
		if s.placed() {
			return nil, nil // placed or imported before
		}
		o := c.Order
		t := OrderPlaced
		if c.Kind == ImportRow {
			t = OrderImported
		}
		return []OrderEvent{{Type: t, Order: &o}}, nil
	}
	if !s.placed() {
		return nil, ErrNotPlaced
	}
	switch c.Kind {
	case ConfirmPayment:
		if s.Status != StatusPending {
			return nil, nil
		}
		evs := []OrderEvent{{Type: PaymentConfirmed, PaymentID: c.PaymentID}}
		if s.ShipmentID != "" { // the label came first
			evs = append(evs, OrderEvent{Type: OrderDispatched})
		}
		return evs, nil
	case NoteShipment:
		if s.ShipmentID == c.ShipmentID && s.TrackingNumber == c.TrackingNumber {
			return nil, nil
		}
		// Kept whatever the status: a PENDING order may be confirmed
		// later, and a cancelled order's label is voided by shipping.
		evs := []OrderEvent{{Type: ShipmentNoted, ShipmentID: c.ShipmentID, TrackingNumber: c.TrackingNumber}}
		if s.Status == StatusConfirmed {
			evs = append(evs, OrderEvent{Type: OrderDispatched})
		}
		return evs, nil
	case Cancel:
		if !cancellableFrom(c.ReasonCode, s.Status) {
			if c.ReasonCode == ReasonCustomerCancelled {
				return nil, ErrNotCancellable
			}
			return nil, nil
		}
		return []OrderEvent{{Type: OrderVoided, ReasonCode: c.ReasonCode, Reason: c.Reason}}, nil
	case UpdateCustomer:
		if s.Customer == c.Customer {
			return nil, nil
		}
		cu := c.Customer
		return []OrderEvent{{Type: CustomerChanged, Customer: &cu}}, nil
	}
	return nil, fmt.Errorf("order: %w %d", ErrUnknownCommand, c.Kind)
}

// apply returns the order after e.
func apply(s OrderState, e OrderEvent) (OrderState, error) {
	switch e.Type {
	case OrderPlaced, OrderImported:
		if e.Order == nil {
			return s, fmt.Errorf("order: %s: %w", e.Type, errPlacedWithoutOrder)
		}
		s = *e.Order
	case PaymentConfirmed:
		s.Status, s.PaymentID = StatusConfirmed, e.PaymentID
	case ShipmentNoted:
		s.ShipmentID, s.TrackingNumber = e.ShipmentID, e.TrackingNumber
	case OrderDispatched:
		s.Status = StatusShipped
	case OrderVoided:
		s.Status, s.ReasonCode, s.Reason = StatusCancelled, e.ReasonCode, e.Reason
	case CustomerChanged:
		if e.Customer != nil {
			s.Customer = *e.Customer
		}
	default:
		return s, fmt.Errorf("order: %w %q", errUnknownOrderEvent, e.Type)
	}
	return s, nil
}

// applyAt is apply with the event's time: every change of the order's
// saga moves UpdatedAt (the orders table keeps milliseconds); a new
// customer profile does not, as before streams (GET /admin/sagas reads
// UpdatedAt as the last change of the saga).
func applyAt(s OrderState, e OrderEvent, at time.Time) (OrderState, error) {
	s, err := apply(s, e)
	if err != nil {
		return s, err
	}
	switch e.Type {
	case OrderPlaced, OrderImported, CustomerChanged:
	default:
		s.UpdatedAt = at.UTC().Truncate(time.Millisecond)
	}
	return s, nil
}
