// Package shipping is the shipping service: it creates an order's shipping
// label once the order is paid, voids it if the order is cancelled before
// the parcel leaves, and follows the parcel through dispatch and delivery.
//
// Per order it keeps a small state machine (the shipments table) fed by
// events that arrive in any order across topics (docs/saga.md):
// OrderCreated (address, customer), PaymentProcessed and OrderCancelled. It
// creates the label exactly once, when it has the first two and not the
// third (ShippingCreated, carrier "EventPost"). OrderCancelled voids a label
// not yet dispatched (ShippingCancelled) or makes sure none is created.
// OrderShipped hands the parcel to the carrier: from then on an admin
// (POST /shipments/{id}/dispatch, then /deliver) or the simulated carrier
// (see Run) moves it on (ShippingDispatched, ShippingDelivered).
//
// Settings:
//
//	EVENTMART_CARRIER_DISPATCH_AFTER  unset: no simulated carrier, admins
//	                                  advance shipments by hand; a duration
//	                                  ("2s"): the carrier dispatches a shipped
//	                                  order's parcel that long after OrderShipped
//	EVENTMART_CARRIER_DELIVER_AFTER   how long after dispatch it delivers
//	                                  (default: the dispatch duration)
//	EVENTMART_CARRIER_TICK            how often the carrier looks (default 500ms)
package shipping

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/binary"
	"fmt"
	"io/fs"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Name is the service name.
const Name = "shipping"

// Carrier is the (simulated) carrier of every shipment.
const Carrier = "EventPost"

// Def describes the shipping service to the runtime.
func Def() service.Def {
	sub, _ := fs.Sub(migrations, "migrations")
	return service.Def{Name: Name, Migrations: sub, New: func(d service.Deps) (service.Service, error) {
		s, err := New(d)
		if err != nil {
			return nil, err
		}
		return s, nil
	}}
}

// Shipment statuses.
const (
	StatusWaiting    = "waiting"    // no label yet: waiting for the order and its payment
	StatusCreated    = "created"    // labelled; the carrier may take it once the order shipped
	StatusDispatched = "dispatched" // the carrier has the parcel
	StatusDelivered  = "delivered"  // the parcel reached the customer
	StatusCancelled  = "cancelled"  // the order was cancelled before dispatch; no parcel will leave
)

// Shipment is an order's shipment as the API shows it.
type Shipment struct {
	ID             string                `json:"id"`
	OrderID        string                `json:"orderId"`
	UserID         string                `json:"userId"`
	Status         string                `json:"status"`
	Carrier        string                `json:"carrier"`
	TrackingNumber string                `json:"trackingNumber"`
	Address        event.PersonalAddress `json:"address"` // sealed as OrderCreated carried it; opened for answers
	CreatedAt      time.Time             `json:"createdAt"`
	UpdatedAt      time.Time             `json:"updatedAt"`
	DispatchedAt   *time.Time            `json:"dispatchedAt,omitempty"`
	DeliveredAt    *time.Time            `json:"deliveredAt,omitempty"`

	// The saga state: which events of the order were seen.
	hasOrder     bool       // OrderCreated
	paid         bool       // PaymentProcessed
	cancelled    bool       // OrderCancelled
	shippedOrder bool       // OrderShipped: the carrier may take the parcel
	shippedAt    *time.Time // when OrderShipped arrived
	// The origin of the carrier's events: the saga's correlation id and the
	// last event emitted for this shipment.
	correlationID, lastEventID string
}

// readyForLabel reports whether the saga asks for a label now.
func (sh *Shipment) readyForLabel() bool {
	return sh.hasOrder && sh.paid && !sh.cancelled && sh.Status == StatusWaiting
}

// trackingNumber is "EP" and 12 digits derived from the shipment id, so
// the same shipment always gets the same number.
func trackingNumber(shipmentID string) string {
	sum := sha256.Sum256([]byte(shipmentID))
	return fmt.Sprintf("EP%012d", binary.BigEndian.Uint64(sum[:8])%1_000_000_000_000)
}

// Service is the shipping service.
type Service struct {
	d       service.Deps
	store   *store
	carrier carrierSettings
}

// New returns the shipping service, with the simulated carrier its
// settings ask for.
func New(d service.Deps) (*Service, error) {
	return &Service{d: d, store: &store{db: d.DB}, carrier: readCarrierSettings(d.Settings)}, nil
}

// Handlers: the events the per-order state machine needs.
func (s *Service) Handlers() []inbox.Handler {
	return []inbox.Handler{
		inbox.On(s.onOrderCreated),
		inbox.On(s.onPaymentProcessed),
		inbox.On(s.onOrderCancelled),
		inbox.On(s.onOrderShipped),
	}
}

// Prepare locks and reads, before a batch of events is applied, the
// shipments of the orders they concern, in one statement (inbox.Preparer):
// the handlers find them in the transaction's cache, and their changes are
// written together before it commits (store.lockBatch, store.save).
func (s *Service) Prepare(ctx context.Context, tx *sqldb.Tx, batch []inbox.Event) error {
	ids := make([]string, 0, len(batch))
	for _, e := range batch {
		switch p := e.Payload.(type) {
		case *event.OrderCreated:
			ids = append(ids, p.OrderID)
		case *event.PaymentProcessed:
			ids = append(ids, p.OrderID)
		case *event.OrderCancelled:
			ids = append(ids, p.OrderID)
		case *event.OrderShipped:
			ids = append(ids, p.OrderID)
		}
	}
	return s.store.lockBatch(ctx, tx, ids, s.d.Now().UTC())
}

// Run runs the simulated carrier if EVENTMART_CARRIER_DISPATCH_AFTER is set
// (see the package comment) until ctx is cancelled; otherwise it returns
// at once.
func (s *Service) Run(ctx context.Context) error {
	if !s.carrier.enabled {
		return nil
	}
	return s.d.Every(ctx, s.carrier.tick, "simulated carrier", func(ctx context.Context) error {
		n, err := s.carryOnce(ctx)
		if n > 0 {
			s.d.Outbox.Notify()
		}
		return err
	})
}
