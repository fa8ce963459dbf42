// Package cart is the cart service: one shopping cart per customer.
//
// It owns the carts, cart_items and deactivated_users tables. Customers
// add and remove items (each product checked with the catalog at once);
// every change emits the cart's full contents (CartUpdated, after
// CartCreated for the first item) on order-events, keyed by the customer.
// Checkout (OrderCreated from the cart), a discontinued product and a
// deactivated account take items out; carts idle too long are reported
// once per idle period (CartAbandoned).
//
// Settings: EVENTMART_CART_SWEEP_INTERVAL (default 1m) is how often idle
// carts are looked for; EVENTMART_CART_ABANDON_AFTER (default 24h) how long
// a non-empty cart must be left unchanged to count as abandoned.
package cart

import (
	"context"
	"embed"
	"io/fs"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/settings"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Name is the service name.
const Name = "cart"

// Def describes the cart service to the runtime.
func Def() service.Def {
	sub, _ := fs.Sub(migrations, "migrations")
	return service.Def{Name: Name, Migrations: sub, New: func(d service.Deps) (service.Service, error) { return New(d) }}
}

// MaxLineQuantity bounds the quantity of one product in a cart, and of one
// addition.
const MaxLineQuantity = 100

// Cart is a customer's cart. A customer without one gets an empty Cart
// with no CartID and no UpdatedAt.
type Cart struct {
	CartID    string           `json:"cartId"`
	UserID    string           `json:"userId"`
	Items     []event.CartItem `json:"items"` // in the order they were first added
	UpdatedAt time.Time        `json:"updatedAt,omitzero"`
}

// ItemInput is the body of POST /cart/items: Quantity is added to the
// product's line.
type ItemInput struct {
	ProductID *string `json:"productId"`
	Quantity  *int64  `json:"quantity"`
}

// Service is the cart service.
type Service struct {
	d            service.Deps
	store        *store
	sweepEvery   time.Duration
	abandonAfter time.Duration
}

// New returns the cart service.
func New(d service.Deps) (*Service, error) {
	return &Service{d: d, store: &store{db: d.DB},
		sweepEvery: d.Settings.Duration(settings.CartSweepInterval), abandonAfter: d.Settings.Duration(settings.CartAbandonAfter)}, nil
}

// Run reports abandoned carts every sweep interval until ctx is cancelled.
// A failed sweep is logged and retried at the next one.
func (s *Service) Run(ctx context.Context) error {
	return s.d.Every(ctx, s.sweepEvery, "abandoned cart sweep", s.sweep)
}

// Wants turns down, before the inbox opens a transaction, an order not
// placed from a cart (inbox.Wanter): onOrderCreated would do nothing with
// it. Whether an order came from a cart never changes, so a redelivered
// one is turned down again.
func (s *Service) Wants(_ context.Context, _ *event.Envelope, p event.Payload) bool {
	oc, ok := p.(*event.OrderCreated)
	return !ok || oc.FromCart
}

// Handlers: checkout, discontinued products and deactivated accounts take
// items out of carts.
func (s *Service) Handlers() []inbox.Handler {
	return []inbox.Handler{
		inbox.On(s.onOrderCreated),
		inbox.On(s.onProductDiscontinued),
		inbox.On(s.onUserDeactivated),
	}
}
