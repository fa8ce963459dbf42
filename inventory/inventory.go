// Package inventory is the inventory service: the stock of every product
// and the reservations orders hold on it.
//
// Each product's stock is event-sourced: a stream "stock-<productId>" of
// domain events (stock.go decides and applies them, purely; stockstore.go
// loads, saves and projects them), whose fold the stock table mirrors in
// the same transaction (see docs/event-sourcing.md). It owns the stock
// and reservations tables (the latter the outcome per order, which makes
// each order event count once). Products become known from
// ProductCreated (with no stock) and stop taking reservations on
// ProductDiscontinued. Admins set the stock on hand (InventoryAdjusted).
// For every OrderCreated it reserves all lines or none
// (InventoryReserved or InventoryReservationFailed); OrderCancelled gives a
// reservation back (InventoryReleased) and OrderShipped takes the reserved
// goods off the shelf (InventoryAdjusted, reason "shipped"). Every event
// carries the affected products' StockLevel with a per-product version.
package inventory

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/service"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Name is the service name.
const Name = "inventory"

// Def describes the inventory service to the runtime.
func Def() service.Def {
	sub, _ := fs.Sub(migrations, "migrations")
	return service.Def{Name: Name, Migrations: sub, EventStore: true, New: func(d service.Deps) (service.Service, error) {
		// A database of the release before streams: its rows become the
		// first events of their streams, before any handler or request runs.
		n, err := importRows(context.Background(), d.DB, d.Now())
		if err != nil {
			return nil, fmt.Errorf("inventory: import the stock rows into streams: %w", err)
		}
		if n > 0 {
			d.Log.Info("stock rows imported into streams", "products", n)
		}
		return New(d), nil
	}}
}

// MaxOnHand bounds the stock on hand an admin may set.
const MaxOnHand = 1_000_000_000

// Reservation statuses.
const (
	StatusReserved  = "reserved"  // every line is held for the order
	StatusReleased  = "released"  // the order was cancelled; the lines were given back
	StatusFailed    = "failed"    // not enough stock; nothing was reserved
	StatusFulfilled = "fulfilled" // the order shipped; the goods left the warehouse
	StatusCancelled = "cancelled" // tombstone: cancelled before OrderCreated arrived
)

// Stock is a product's stock. Available is OnHand - Reserved and never
// negative; Version grows by one with every change of OnHand or Reserved.
type Stock struct {
	ProductID    string `json:"productId"`
	OnHand       int64  `json:"onHand"`
	Reserved     int64  `json:"reserved"`
	Available    int64  `json:"available"`
	Version      int64  `json:"version"`
	Discontinued bool   `json:"discontinued"`
}

// Level is the stock as an event's StockLevel.
func (s *Stock) Level() event.StockLevel {
	return event.StockLevel{ProductID: s.ProductID, OnHand: s.OnHand, Reserved: s.Reserved, Available: s.OnHand - s.Reserved, Version: s.Version}
}

// StockInput is the body of PUT /inventory/{productId}.
type StockInput struct {
	OnHand *int64 `json:"onHand"`
}

// Service is the inventory service.
type Service struct {
	d     service.Deps
	store *store
}

// New returns the inventory service.
func New(d service.Deps) *Service {
	return &Service{d: d, store: &store{db: d.DB, memory: eventstore.NewMemory[StockState](0)}}
}

// Projections: the stock table is a projection of the stock streams,
// updated inline; it is rebuilt from the event store (eventmart replay
// inventory --rebuild), not from topics.
func (s *Service) Projections() []service.Projection {
	return []service.Projection{{Name: "stock", Table: "stock", Rebuild: rebuildStock}}
}

// Run has no background work.
func (s *Service) Run(ctx context.Context) error { return nil }

// Handlers: products make stock rows; order events move reservations.
func (s *Service) Handlers() []inbox.Handler {
	return []inbox.Handler{
		inbox.On(s.onProductCreated),
		inbox.On(s.onProductDiscontinued),
		inbox.On(s.onOrderCreated),
		inbox.On(s.onOrderCancelled),
		inbox.On(s.onOrderShipped),
	}
}
