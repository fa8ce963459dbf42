// Package order is the order service and the heart of the order saga
// (docs/saga.md).
//
// POST /orders validates an order synchronously (catalog prices, the cart,
// the card vaulted by the payment service), stores it PENDING and emits
// OrderCreated in one transaction. From then on the order moves only
// through events, whatever their arrival order:
//
//	PENDING --PaymentProcessed--> CONFIRMED --ShippingCreated--> SHIPPED
//	PENDING --InventoryReservationFailed | PaymentFailed | timeout--> CANCELLED
//	PENDING | CONFIRMED --customer cancels--> CANCELLED
//
// An order is event-sourced: its state is the fold of its stream
// ("order-<id>") of domain events, decided and applied by the pure
// functions of aggregate.go; the orders table is a projection written in
// the transaction of every append, with the integration events in the
// outbox (orderstore.go). Every transition appends at the version it
// loaded, so concurrent handlers, the timeout sweeper and several
// instances on PostgreSQL cannot both act on one order: the loser loads
// and decides again. OrderCancelled is the single trigger of every
// compensation; this service emits it and nothing else.
//
// The service also keeps a projection of users (customer data on orders,
// deactivated accounts) and a log of every event of its sagas, served by
// GET /orders/{id}/events; GET /orders/{id}/history and ?asOf= read the
// order's own stream.
package order

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/settings"
	"github.com/eventmart/eventmart/internal/sqldb"
	"github.com/eventmart/eventmart/internal/watch"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Name is the service name.
const Name = "order"

// Def describes the order service to the runtime.
func Def() service.Def {
	sub, _ := fs.Sub(migrations, "migrations")
	return service.Def{Name: Name, Migrations: sub, EventStore: true, New: func(d service.Deps) (service.Service, error) {
		// A database of the release before streams: its rows become the
		// first events of their streams, before any handler or request runs.
		n, err := importRows(context.Background(), d.DB)
		if err != nil {
			return nil, fmt.Errorf("order: import the order rows into streams: %w", err)
		}
		if n > 0 {
			d.Log.Info("order rows imported into streams", "orders", n)
		}
		return New(d)
	}}
}

// Projections: the orders table is a projection of the order streams,
// updated inline; it is rebuilt from the event store (eventmart replay
// order --rebuild), not from topics.
func (s *Service) Projections() []service.Projection {
	return []service.Projection{{Name: "orders", Table: "orders", Rebuild: rebuildOrders}}
}

// Order statuses.
const (
	StatusPending   = "PENDING"
	StatusConfirmed = "CONFIRMED"
	StatusShipped   = "SHIPPED"
	StatusCancelled = "CANCELLED"
)

// Reason codes of cancelled orders (OrderCancelled.reasonCode).
const (
	ReasonOutOfStock        = "out-of-stock"
	ReasonPaymentFailed     = "payment-failed"
	ReasonCustomerCancelled = "customer-cancelled"
	ReasonTimeout           = "timeout"
)

// Order is an order as the API shows it.
type Order struct {
	ID              string                `json:"id"`
	UserID          string                `json:"userId"`
	Status          string                `json:"status"`
	ReasonCode      string                `json:"reasonCode"`
	Reason          string                `json:"reason"`
	Items           []event.OrderLine     `json:"items"`
	TotalCents      int64                 `json:"totalCents"`
	Currency        string                `json:"currency"`
	ShippingAddress event.PersonalAddress `json:"shippingAddress"`
	Customer        Customer              `json:"customer"`
	CardLast4       string                `json:"cardLast4"`
	FromCart        bool                  `json:"fromCart"`
	PaymentID       string                `json:"paymentId"`
	ShipmentID      string                `json:"shipmentId"`
	TrackingNumber  string                `json:"trackingNumber"`
	CreatedAt       time.Time             `json:"createdAt"`
	UpdatedAt       time.Time             `json:"updatedAt"`

	correlationID  string // the saga's correlation id
	createdEventID string // the OrderCreated eventId, cause of a timeout
}

// Customer is the customer data kept on an order; it follows the user's
// profile (UserUpdated). Both fields are sealed with the user's key in the
// order's stream and the orders table, and opened for answers
// (personal.go).
type Customer struct {
	Email event.Personal `json:"email"`
	Name  event.Personal `json:"name"`
}

// Service is the order service.
type Service struct {
	d       service.Deps
	store   *store
	timeout time.Duration // saga timeout of PENDING orders
	sweep   time.Duration // how often the timeout is checked
	metrics *sagaMetrics
	changed watch.Hub  // orders changed, for held GETs (see handleGet); notified through known
	known   known      // what held GETs know without reading (held.go)
	users   userMemory // the users projection's rows POST /orders reads (usermemory.go)
	// listening is set while RunInstance LISTENs for the changes of every
	// instance (PostgreSQL); held GETs then recheck only every
	// safetyRecheck, else every recheck (nanoseconds; see holdUntil).
	listening              atomic.Bool
	recheck, safetyRecheck atomic.Int64
	admit                  *admission // sheds new orders while too many are PENDING (admission.go)

	// maxTotal caps an order's total (EVENTMART_ORDER_MAX_TOTAL), so a
	// mistyped quantity is not charged.
	maxTotal int64
}

// New returns the order service; its saga timeout and sweep interval are
// the settings EVENTMART_SAGA_TIMEOUT and EVENTMART_SAGA_SWEEP_INTERVAL.
func New(d service.Deps) (*Service, error) {
	s := &Service{d: d, timeout: d.Settings.Duration(settings.SagaTimeout), sweep: d.Settings.Duration(settings.SagaSweepInterval)}
	s.known = known{hub: &s.changed, trusted: s.hearsEveryChange}
	s.store = newStore(d.DB, s.orderChanged, s.known.committed)
	s.users = newUserMemory(s.hearsEveryChange, d.Now)
	s.store.users = s.users.Memory
	s.recheck.Store(int64(recheckEvery))
	s.safetyRecheck.Store(int64(safetyRecheckEvery))
	s.maxTotal = int64(d.Settings.Int(settings.OrderMaxTotal))
	var err error
	if s.metrics, err = newSagaMetrics(d.Metrics); err != nil {
		return nil, err
	}
	if s.admit, err = newAdmission(maxPending(d.Settings, s.timeout), d.DB, d.Metrics); err != nil {
		return nil, err
	}
	return s, nil
}

// Run cancels orders that stayed PENDING longer than the saga timeout,
// checking every sweep interval, until ctx is cancelled. A failed sweep is
// logged and retried at the next tick: stopping the service would not help.
func (s *Service) Run(ctx context.Context) error {
	return s.d.Every(ctx, s.sweep, "saga timeout sweep", s.cancelTimedOut)
}

// RunInstance, on PostgreSQL, LISTENs for the orders changed by every
// instance of the service on the database (their commits notify
// changeChannel, see projectOrderLater) and wakes this instance's held
// GETs of them, until ctx is cancelled. On SQLite, whose database one
// process owns, every change is this instance's: it returns at once.
func (s *Service) RunInstance(ctx context.Context) error {
	s.d.DB.Listen(ctx, changeChannel, sqldb.Listener{
		Listening: func() {
			s.listening.Store(true)
			// A change this instance committed just before the LISTEN
			// may have been heard of neither way (see orderChanged):
			// the held GETs read again.
			s.known.reset()
			s.users.Reset()
		},
		Lost: func(err error, retryIn time.Duration) {
			s.listening.Store(false)
			// Changes may have been missed: the held GETs read again,
			// and recheck often until the LISTEN is back.
			s.known.reset()
			s.users.Reset()
			s.d.Log.Warn("order: not listening for the changes of other instances; held GETs recheck meanwhile",
				"error", err, "recheck", time.Duration(s.recheck.Load()).String(), "retry_in", retryIn.String())
		},
		Notified: func(payload string) {
			if id, ok := strings.CutSuffix(payload, " "+userNoticeToken); ok {
				s.users.Forget(id)
				return
			}
			s.known.heard(payload)
		},
	})
	s.listening.Store(false)
	s.known.reset()
	s.users.Reset()
	return nil
}

// orderChanged is told of order id once a change of it this instance made
// commits. On PostgreSQL while the instance LISTENs, the change's NOTIFY
// tells every instance, this one included, and is left to do so: heard of
// twice, a change would make the held GET answered at the first hearing
// forget its answer at the second (known), and its next request read again.
func (s *Service) orderChanged(id string) {
	if s.d.DB.Dialect == sqldb.Postgres && s.listening.Load() {
		return
	}
	s.known.changed(id)
}

// hearsEveryChange reports whether every change of an order, by any
// instance, reaches this instance's held GETs: on SQLite (one process), or
// while it LISTENs on PostgreSQL.
func (s *Service) hearsEveryChange() bool {
	return s.d.DB.Dialect != sqldb.Postgres || s.listening.Load()
}

// Handlers: user events for the customer projection, the saga's events
// that move an order, and every other event of an order's saga for its log
// (see sagaHandlers).
func (s *Service) Handlers() []inbox.Handler {
	return append([]inbox.Handler{
		inbox.On(s.onUserRegistered),
		inbox.On(s.onUserUpdated),
		inbox.On(s.onPersonalDataErased),
		inbox.On(s.onUserDeactivated),
	}, s.sagaHandlers(
		inbox.On(s.onReservationFailed),
		inbox.On(s.onPaymentProcessed),
		inbox.On(s.onPaymentFailed),
		inbox.On(s.onShippingCreated),
	)...)
}

// OrderInput is the body of POST /orders: either items or fromCart (the
// caller's cart), the card to charge and the shipping address.
type OrderInput struct {
	Items           []LineInput    `json:"items"`
	FromCart        bool           `json:"fromCart"`
	Payment         *PaymentInput  `json:"payment"`
	ShippingAddress *event.Address `json:"shippingAddress"`
}

// LineInput is a requested product and quantity.
type LineInput struct {
	ProductID string `json:"productId"`
	Quantity  int64  `json:"quantity"`
}

// PaymentInput carries the card number; it goes only to the payment
// service's vault, never into this service's data or events.
type PaymentInput struct {
	Card string `json:"card"`
}

// Limits of an order.
const (
	MaxLines      = 50
	MaxQuantity   = 100
	MaxAddressLen = 200
	MaxIdemKeyLen = 200
	minCardDigits = 12
	maxCardDigits = 19
	maxProductID  = 100
)

// Statuses of the users projection.
const (
	userActive      = "active"
	userDeactivated = "deactivated"
)

var countryPattern = regexp.MustCompile(`^[A-Z]{2}$`)

// validate checks the input and returns the merged lines (nil for
// fromCart: the cart's lines are checked when read), the card number
// without spaces and the trimmed address.
func (in *OrderInput) validate() (lines []event.Line, card string, addr event.Address, err error) {
	switch {
	case in.FromCart && in.Items != nil:
		return nil, "", addr, eventmart.Errorf(eventmart.EINVALID, "give either items or fromCart: true, not both")
	case !in.FromCart && in.Items == nil:
		return nil, "", addr, eventmart.Errorf(eventmart.EINVALID, "items is required (or fromCart: true to order the cart)")
	}
	if !in.FromCart {
		if lines, err = mergeLines("items", in.Items); err != nil {
			return nil, "", addr, err
		}
	}
	if in.ShippingAddress == nil {
		return nil, "", addr, eventmart.Errorf(eventmart.EINVALID, "shippingAddress is required")
	}
	if addr, err = normaliseAddress(*in.ShippingAddress); err != nil {
		return nil, "", addr, err
	}
	if in.Payment == nil {
		return nil, "", addr, eventmart.Errorf(eventmart.EINVALID, "payment is required")
	}
	if card, err = normaliseCard(in.Payment.Card); err != nil {
		return nil, "", addr, err
	}
	return lines, card, addr, nil
}

// mergeLines validates requested lines and merges lines of the same
// product, keeping the order of first appearance. field names the source
// ("items" or "cart") in error messages.
func mergeLines(field string, in []LineInput) ([]event.Line, error) {
	if len(in) == 0 || len(in) > MaxLines {
		return nil, eventmart.Errorf(eventmart.EINVALID, "%s must have 1 to %d lines, got %d", field, MaxLines, len(in))
	}
	var out []event.Line
	at := map[string]int{}
	for i, l := range in {
		if l.ProductID == "" || len(l.ProductID) > maxProductID {
			return nil, eventmart.Errorf(eventmart.EINVALID, "%s[%d].productId must be 1-%d characters", field, i, maxProductID)
		}
		if l.Quantity < 1 || l.Quantity > MaxQuantity {
			return nil, eventmart.Errorf(eventmart.EINVALID, "%s[%d].quantity must be between 1 and %d, got %d", field, i, MaxQuantity, l.Quantity)
		}
		j, seen := at[l.ProductID]
		if !seen {
			at[l.ProductID] = len(out)
			out = append(out, event.Line{ProductID: l.ProductID, Quantity: l.Quantity})
			continue
		}
		out[j].Quantity += l.Quantity
		if out[j].Quantity > MaxQuantity {
			return nil, eventmart.Errorf(eventmart.EINVALID, "%s: product %s: total quantity %d exceeds %d", field, l.ProductID, out[j].Quantity, MaxQuantity)
		}
	}
	return out, nil
}

func normaliseAddress(a event.Address) (event.Address, error) {
	fields := []struct {
		name     string
		v        *string
		required bool
	}{
		{"name", &a.Name, true}, {"line1", &a.Line1, true}, {"line2", &a.Line2, false},
		{"city", &a.City, true}, {"postalCode", &a.PostalCode, true}, {"country", &a.Country, true},
	}
	for _, f := range fields {
		*f.v = strings.TrimSpace(*f.v)
		if f.required && *f.v == "" {
			return a, eventmart.Errorf(eventmart.EINVALID, "shippingAddress.%s is required", f.name)
		}
		if utf8.RuneCountInString(*f.v) > MaxAddressLen {
			return a, eventmart.Errorf(eventmart.EINVALID, "shippingAddress.%s must be at most %d characters", f.name, MaxAddressLen)
		}
	}
	if !countryPattern.MatchString(a.Country) {
		return a, eventmart.Errorf(eventmart.EINVALID, "shippingAddress.country must be an ISO 3166-1 alpha-2 code in capitals, such as DE or US; got %q", a.Country)
	}
	return a, nil
}

// normaliseCard drops the spaces and dashes people type in card numbers and
// checks the length and the Luhn checksum.
func normaliseCard(s string) (string, error) {
	digits := strings.NewReplacer(" ", "", "-", "").Replace(s)
	if len(digits) < minCardDigits || len(digits) > maxCardDigits || strings.Trim(digits, "0123456789") != "" {
		return "", eventmart.Errorf(eventmart.EINVALID, "payment.card must be %d to %d digits", minCardDigits, maxCardDigits)
	}
	if !luhn(digits) {
		return "", eventmart.Errorf(eventmart.EINVALID, "payment.card is not a valid card number (Luhn check failed)")
	}
	return digits, nil
}

// luhn reports whether a string of digits passes the Luhn checksum.
func luhn(digits string) bool {
	sum := 0
	for i := range len(digits) {
		d := int(digits[len(digits)-1-i] - '0')
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}
