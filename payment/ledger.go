package payment

import (
	"errors"
	"fmt"
	"time"

	"github.com/eventmart/eventmart/internal/eventstore"
)

// This file is the payment ledger aggregate: an order's payment as the
// fold of its stream's domain events ("payment-<paymentId>"), decided and
// applied by pure functions — no database, no clock, no I/O — so that every
// transition is table-tested alone (ledger_test.go). ledgerstore.go loads,
// saves and projects them; handlers.go calls the provider between them.

// Domain event types of a payment stream. They are internal to the
// service, finer than the integration events it emits
// (docs/event-sourcing.md): the saga's inputs are noted, and the ledger
// entries record money moving.
const (
	OrderNoted        = "OrderNoted"        // OrderCreated: what to charge, to whom, with which card
	ReservationNoted  = "ReservationNoted"  // InventoryReserved: the goods are held
	CancellationNoted = "CancellationNoted" // OrderCancelled: voids a payment not charged yet
	ChargeAuthorised  = "ChargeAuthorised"  // the charge of AmountCents was sent (PaymentInitiated)
	ChargeCaptured    = "ChargeCaptured"    // AmountCents were charged (PaymentProcessed)
	ChargeDeclined    = "ChargeDeclined"    // the provider declined the charge (PaymentFailed)
	ChargeRefunded    = "ChargeRefunded"    // AmountCents were given back (PaymentRefunded)
	LedgerImported    = "LedgerImported"    // the payment as the release before streams kept it in a row
)

// ledgerEvents is the catalog of the stored LedgerEvent payloads' schema
// versions: every type at v1. When a type's payload changes, add an
// upcaster from its last version here (eventstore.Upcaster); events of the
// older version are then upcast on every read (load, ledger, rebuild) and
// new ones are written at the chain's end. TestLedgerEventsCatalog checks
// the chain.
var ledgerEvents = eventstore.NewCatalog("v1")

// LedgerEvent is a domain event of a payment stream: its type and the
// fields that type uses (the stored payload is the JSON of the fields).
type LedgerEvent struct {
	Type        string        `json:"-"`
	OrderID     string        `json:"orderId,omitempty"`     // every event but Imported
	UserID      string        `json:"userId,omitempty"`      // OrderNoted, CancellationNoted
	AmountCents int64         `json:"amountCents,omitempty"` // OrderNoted (to charge), Authorised, Captured, Refunded
	Currency    string        `json:"currency,omitempty"`    // OrderNoted
	CardToken   string        `json:"cardToken,omitempty"`   // OrderNoted
	CardLast4   string        `json:"cardLast4,omitempty"`   // OrderNoted, Authorised
	AuthCode    string        `json:"authCode,omitempty"`    // Captured
	Code        string        `json:"code,omitempty"`        // Declined
	Reason      string        `json:"reason,omitempty"`      // Declined, CancellationNoted, Refunded
	Imported    *PaymentState `json:"imported,omitempty"`    // Imported: the whole state
}

// PaymentState is an order's payment: the fold of its stream. The balance
// is derived from the ledger entries, never stored.
type PaymentState struct {
	Known       bool   `json:"known"` // the stream has an event
	OrderID     string `json:"orderId"`
	UserID      string `json:"userId"`
	AmountCents int64  `json:"amountCents"` // the order's total, to charge
	Currency    string `json:"currency"`
	CardToken   string `json:"cardToken"`
	CardLast4   string `json:"cardLast4"`
	Status      string `json:"status"` // Status…
	AuthCode    string `json:"authCode"`
	FailureCode string `json:"failureCode"`
	Reason      string `json:"reason"`
	// The saga's inputs seen.
	HasOrder  bool `json:"hasOrder"`  // OrderCreated
	Reserved  bool `json:"reserved"`  // InventoryReserved
	Cancelled bool `json:"cancelled"` // OrderCancelled
	// The ledger.
	CapturedCents int64 `json:"capturedCents"`
	RefundedCents int64 `json:"refundedCents"`
	// The times of the first and the latest event (set by the store, which
	// knows them; apply keeps an imported CreatedAt).
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Balance is what the customer has paid and not been given back.
func (s PaymentState) Balance() int64 { return s.CapturedCents - s.RefundedCents }

// readyToCharge reports whether the saga asks for the charge now: the
// order and its reservation seen, no cancellation, nothing charged or
// declined yet.
func (s PaymentState) readyToCharge() bool {
	return s.HasOrder && s.Reserved && !s.Cancelled && s.Status == StatusAwaiting
}

// ledgerSchemaVersion is the version of PaymentState's shape, which tags
// its snapshots: change it with the shape.
const ledgerSchemaVersion = 1

// LedgerCommandKind says what a LedgerCommand asks.
type LedgerCommandKind int

// Ledger commands.
const (
	NoteOrder        LedgerCommandKind = iota + 1 // remember the order: AmountCents, Currency, UserID, card
	NoteReservation                               // remember that the goods are held
	NoteCancellation                              // remember the cancellation (UserID, Reason)
	Capture                                       // the provider charged AmountCents of the order (AuthCode, CardLast4)
	Decline                                       // the provider declined the charge (Code, Reason, CardLast4)
	Refund                                        // give AmountCents back, for Reason
	ImportRow                                     // start the stream with Imported (a row of the previous release)
)

// LedgerCommand is what a handler asks of one order's payment.
type LedgerCommand struct {
	Kind        LedgerCommandKind
	OrderID     string
	UserID      string
	AmountCents int64
	Currency    string
	CardToken   string
	CardLast4   string
	AuthCode    string
	Code        string
	Reason      string
	Imported    PaymentState
}

// Why decide refuses a command: errors.Is them.
var (
	ErrNotReadyToCharge       = errors.New("the order is not ready to be charged")
	ErrRefundExceedsCaptured  = errors.New("refund exceeds the captured balance")
	ErrInvalidAmount          = errors.New("invalid amount")
	ErrUnknownLedgerCommand   = errors.New("unknown ledger command")
	errUnknownLedgerEventType = errors.New("unknown ledger event")
)

// decide returns the events that command c causes on payment s — none when
// it changes nothing (a duplicate of an input already noted; a capture or
// decline of a payment charged, declined or voided before: an order is
// captured at most once) — or why it is refused: a refund of more than the
// balance, a charge the saga does not ask for.
func decide(s PaymentState, c LedgerCommand) ([]LedgerEvent, error) {
	switch c.Kind {
	case ImportRow:
		if s.Known {
			return nil, nil // imported before, or recorded since
		}
		i := c.Imported
		return []LedgerEvent{{Type: LedgerImported, Imported: &i}}, nil
	case NoteOrder:
		if s.HasOrder {
			return nil, nil
		}
		return []LedgerEvent{{Type: OrderNoted, OrderID: c.OrderID, UserID: c.UserID, AmountCents: c.AmountCents,
			Currency: c.Currency, CardToken: c.CardToken, CardLast4: c.CardLast4}}, nil
	case NoteReservation:
		if s.Reserved {
			return nil, nil
		}
		return []LedgerEvent{{Type: ReservationNoted, OrderID: c.OrderID}}, nil
	case NoteCancellation:
		if s.Cancelled {
			return nil, nil
		}
		return []LedgerEvent{{Type: CancellationNoted, OrderID: c.OrderID, UserID: c.UserID, Reason: c.Reason}}, nil
	case Capture, Decline:
		if s.Known && s.Status != StatusAwaiting {
			return nil, nil // charged, declined or voided already
		}
		if !s.readyToCharge() {
			return nil, ErrNotReadyToCharge
		}
		auth := LedgerEvent{Type: ChargeAuthorised, OrderID: s.OrderID, AmountCents: s.AmountCents, CardLast4: c.CardLast4}
		if c.Kind == Decline {
			return []LedgerEvent{auth, {Type: ChargeDeclined, OrderID: s.OrderID, Code: c.Code, Reason: c.Reason}}, nil
		}
		return []LedgerEvent{auth, {Type: ChargeCaptured, OrderID: s.OrderID, AmountCents: s.AmountCents, AuthCode: c.AuthCode}}, nil
	case Refund:
		switch {
		case c.AmountCents <= 0:
			return nil, ErrInvalidAmount
		case c.AmountCents > s.Balance():
			return nil, ErrRefundExceedsCaptured
		}
		return []LedgerEvent{{Type: ChargeRefunded, OrderID: s.OrderID, AmountCents: c.AmountCents, Reason: c.Reason}}, nil
	}
	return nil, fmt.Errorf("payment: %w %d", ErrUnknownLedgerCommand, c.Kind)
}

// apply returns the payment after e.
func apply(s PaymentState, e LedgerEvent) (PaymentState, error) {
	if !s.Known {
		s.Known, s.Status = true, StatusAwaiting
	}
	if s.OrderID == "" {
		s.OrderID = e.OrderID
	}
	switch e.Type {
	case LedgerImported:
		if e.Imported == nil {
			return s, fmt.Errorf("payment: %s without its state", e.Type)
		}
		s = *e.Imported
		s.Known = true
	case OrderNoted:
		s.HasOrder = true
		s.UserID, s.AmountCents, s.Currency = e.UserID, e.AmountCents, e.Currency
		s.CardToken, s.CardLast4 = e.CardToken, e.CardLast4
	case ReservationNoted:
		s.Reserved = true
	case CancellationNoted:
		s.Cancelled = true
		if s.UserID == "" {
			s.UserID = e.UserID
		}
		if s.Status == StatusAwaiting {
			s.Status, s.Reason = StatusVoided, e.Reason
		}
	case ChargeAuthorised:
		if e.CardLast4 != "" {
			s.CardLast4 = e.CardLast4
		}
	case ChargeCaptured:
		s.CapturedCents += e.AmountCents
		s.Status, s.AuthCode = StatusProcessed, e.AuthCode
	case ChargeDeclined:
		s.Status, s.FailureCode, s.Reason = StatusFailed, e.Code, e.Reason
	case ChargeRefunded:
		s.RefundedCents += e.AmountCents
		if s.Balance() <= 0 {
			s.Status, s.Reason = StatusRefunded, e.Reason
		}
	default:
		return s, fmt.Errorf("payment: %w %q", errUnknownLedgerEventType, e.Type)
	}
	return s, nil
}
