// Package payment is the payment service: it vaults cards and charges
// orders through a payment provider when the order saga (docs/saga.md)
// says so, refunding them when the order is cancelled afterwards.
//
// Card vault. POST /payments/cards stores a card number and answers with a
// token ("tok_…"); orders carry only that token and the last four digits.
// A card the customer vaulted before answers the same token (cards.go).
// A real deployment would use the provider's vault, so that the number
// never reaches Eventmart at all. Here the simulated provider's vault is
// this service's cards table, encrypted (vault.go): the number never
// leaves this service and is never put in an event, a response or a log
// line.
//
// Per order it keeps a ledger, event-sourced: a stream "payment-<id>" of
// domain events (ledger.go decides and applies them, purely; ledgerstore.go
// loads, saves and projects them), whose fold the payments table mirrors
// in the same transaction (see docs/event-sourcing.md). The stream notes
// the saga's inputs, which arrive in any order across topics: OrderCreated (amount,
// currency, card token, customer), InventoryReserved and OrderCancelled. It
// charges exactly once, when it has the first two and not the third,
// emitting PaymentInitiated then PaymentProcessed or PaymentFailed. An
// OrderCancelled after a successful charge refunds it (PaymentRefunded);
// one before the charge voids the payment, which is then never charged.
package payment

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"time"

	"github.com/google/uuid"

	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/service"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Name is the service name.
const Name = "payment"

// Def describes the payment service, with the simulated provider, to the
// runtime.
func Def() service.Def { return DefWith(Simulated{}) }

// DefWith is Def with another provider (tests use it to count charges or to
// make the provider fail).
func DefWith(p Provider) service.Def {
	sub, _ := fs.Sub(migrations, "migrations")
	return service.Def{Name: Name, Migrations: sub, EventStore: true, New: func(d service.Deps) (service.Service, error) {
		// A database of the release before streams: its rows become the
		// first events of their streams, before any handler or request runs.
		n, err := importRows(context.Background(), d.DB)
		if err != nil {
			return nil, fmt.Errorf("payment: import the payment rows into streams: %w", err)
		}
		if n > 0 {
			d.Log.Info("payment rows imported into streams", "payments", n)
		}
		v, err := loadVault(d.Settings, d.DataDir)
		if err != nil {
			return nil, err
		}
		// Cards stored in clear by a release before the vault encrypted,
		// or under a key rotated out, are sealed with the current key
		// before any request reads them.
		if n, err = sealCards(context.Background(), d.DB, v); err != nil {
			return nil, fmt.Errorf("payment: encrypt the vaulted cards: %w", err)
		}
		if n > 0 {
			d.Log.Info("card vault: cards sealed with the current key", "cards", n)
		}
		s := New(d, p)
		s.vault = v
		return s, nil
	}}
}

// Payment statuses.
const (
	StatusAwaiting  = "awaiting"  // not charged yet: waiting for the order and its reservation
	StatusProcessed = "processed" // charged
	StatusFailed    = "failed"    // the charge was declined
	StatusRefunded  = "refunded"  // charged, then refunded because the order was cancelled
	StatusVoided    = "voided"    // the order was cancelled before any charge; it never will be
)

// Payment is an order's payment as the API shows it.
type Payment struct {
	ID          string    `json:"id"`
	OrderID     string    `json:"orderId"`
	UserID      string    `json:"userId"`
	AmountCents int64     `json:"amountCents"`
	Currency    string    `json:"currency"`
	CardLast4   string    `json:"cardLast4"`
	Status      string    `json:"status"`
	AuthCode    string    `json:"authCode"`
	FailureCode string    `json:"failureCode"`
	Reason      string    `json:"reason"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`

	// The saga state: which events of the order were seen.
	cardToken string
	hasOrder  bool // OrderCreated
	reserved  bool // InventoryReserved
	cancelled bool // OrderCancelled
}

// Card is a vaulted card as the API shows it; the number is never shown.
type Card struct {
	Token string `json:"token"`
	Last4 string `json:"last4"`
	Brand string `json:"brand"`
}

// paymentNamespace makes payment ids from order ids (see paymentID).
var paymentNamespace = uuid.MustParse("5b0e3c1e-4f5a-4d2b-9c8e-7a6f1d2e3b4c")

// paymentID is the id of an order's payment. It is derived from the order
// id rather than random so that a charge retried after a rolled-back batch
// reaches the provider with the same id, its idempotency key: the
// customer is never charged twice.
func paymentID(orderID string) string {
	return uuid.NewSHA1(paymentNamespace, []byte(orderID)).String()
}

// Service is the payment service.
type Service struct {
	d        service.Deps
	store    *store
	provider Provider
	vault    *vault // set by Def; nil in a Service made by New alone, which cannot vault
	cards    *cardMemory
}

// New returns the payment service charging through p.
func New(d service.Deps, p Provider) *Service {
	return &Service{d: d, store: &store{db: d.DB, memory: eventstore.NewMemory[PaymentState](0)}, provider: p, cards: newCardMemory(cardMemorySize)}
}

// Projections: the payments table is a projection of the payment streams,
// updated inline; it is rebuilt from the event store (eventmart replay
// payment --rebuild), not from topics.
func (s *Service) Projections() []service.Projection {
	return []service.Projection{{Name: "payments", Table: "payments", Rebuild: rebuildPayments}}
}

// Run has no background work.
func (s *Service) Run(ctx context.Context) error { return nil }

// Handlers: the three events the per-order state machine needs.
func (s *Service) Handlers() []inbox.Handler {
	return []inbox.Handler{
		inbox.On(s.onOrderCreated),
		inbox.On(s.onInventoryReserved),
		inbox.On(s.onOrderCancelled),
	}
}
