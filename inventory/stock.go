package inventory

import (
	"errors"
	"fmt"

	"github.com/eventmart/eventmart/internal/eventstore"
)

// This file is the stock aggregate: a product's stock as the fold of its
// stream's domain events ("stock-<productId>"), decided and applied by pure
// functions — no database, no clock, no I/O — so that every transition is
// table-tested alone (stock_test.go). stockstore.go loads, saves and
// projects them.

// Domain event types of a stock stream. They are internal to the service,
// finer than the integration events it emits (docs/event-sourcing.md).
const (
	StockRegistered   = "StockRegistered"   // the product became known, with no stock (ProductCreated)
	StockAdjusted     = "StockAdjusted"     // on hand changed by Delta, for Reason ("set")
	StockReserved     = "StockReserved"     // Quantity held for OrderID
	StockReleased     = "StockReleased"     // OrderID's hold of Quantity given back, for Reason
	StockShipped      = "StockShipped"      // OrderID's hold of Quantity left the shelf: off on hand and reserved
	StockDiscontinued = "StockDiscontinued" // no more reservations (ProductDiscontinued)
	StockImported     = "StockImported"     // the stock as the release before streams kept it in rows
)

// stockEvents is the catalog of the stored StockEvent payloads' schema
// versions: every type at v1. When a type's payload changes, add an
// upcaster from its last version here (eventstore.Upcaster: the stored
// JSON at From to the JSON at To); events of the older version are then
// upcast on every read (load, history, rebuild) and new ones are written
// at the chain's end. TestStockEventsCatalog checks the chain.
var stockEvents = eventstore.NewCatalog("v1")

// StockEvent is a domain event of a stock stream: its type and the fields
// that type uses (the stored payload is the JSON of the fields).
type StockEvent struct {
	Type     string `json:"-"`
	OrderID  string `json:"orderId,omitempty"`  // Reserved, Released, Shipped
	Quantity int64  `json:"quantity,omitempty"` // Reserved, Released, Shipped
	Delta    int64  `json:"delta,omitempty"`    // Adjusted
	Reason   string `json:"reason,omitempty"`   // Adjusted, Released
	// Imported: the whole state.
	OnHand       int64            `json:"onHand,omitempty"`
	Reserved     int64            `json:"reserved,omitempty"`
	Level        int64            `json:"level,omitempty"`
	Discontinued bool             `json:"discontinued,omitempty"`
	Reservations map[string]int64 `json:"reservations,omitempty"`
}

// StockState is a product's stock: the fold of its stream. Reserved is
// kept, not summed from Reservations, so that an imported row's numbers
// stay exactly as they were.
type StockState struct {
	Known        bool             `json:"known"` // the stream has an event
	OnHand       int64            `json:"onHand"`
	Reserved     int64            `json:"reserved"`
	Level        int64            `json:"level"` // the StockLevel version: +1 per change of on hand or reserved
	Discontinued bool             `json:"discontinued"`
	Reservations map[string]int64 `json:"reservations,omitempty"` // open holds by order id
}

// Available is what a reservation may take.
func (s StockState) Available() int64 { return s.OnHand - s.Reserved }

// stockSchemaVersion is the version of StockState's shape, which tags its
// snapshots: change it with the shape.
const stockSchemaVersion = 1

// CommandKind says what a StockCommand asks.
type CommandKind int

// Stock commands.
const (
	Register    CommandKind = iota + 1 // make the product known
	SetOnHand                          // set on hand to OnHand, for Reason
	Reserve                            // hold Quantity for OrderID
	Release                            // give OrderID's hold back, for Reason
	Ship                               // take OrderID's hold off the shelf
	Discontinue                        // take no more reservations
	Import                             // start the stream with Imported (a state of the previous release)
)

// StockCommand is what a handler asks of one product's stock.
type StockCommand struct {
	Kind     CommandKind
	OrderID  string
	Quantity int64
	OnHand   int64
	Reason   string
	Imported StockState
}

// Why decide refuses a command: errors.Is them.
var (
	ErrUnknownProduct  = errors.New("unknown product")
	ErrDiscontinued    = errors.New("product discontinued")
	ErrNotEnoughStock  = errors.New("not enough stock")
	ErrBelowReserved   = errors.New("on hand below the reserved stock")
	ErrInvalidQuantity = errors.New("invalid quantity")
)

// decide returns the events that command c causes on stock s — none when
// it changes nothing (a repeated command: a duplicate reservation, a
// release or shipment of an order that holds nothing, setting the current
// value) — or why it is refused.
func decide(s StockState, c StockCommand) ([]StockEvent, error) {
	switch c.Kind {
	case Register:
		if s.Known {
			return nil, nil
		}
		return []StockEvent{{Type: StockRegistered}}, nil
	case Import:
		if s.Known {
			return nil, nil // imported before, or recorded since
		}
		i := c.Imported
		return []StockEvent{{Type: StockImported, OnHand: i.OnHand, Reserved: i.Reserved, Level: i.Level,
			Discontinued: i.Discontinued, Reservations: i.Reservations}}, nil
	case Discontinue:
		if s.Discontinued {
			return nil, nil
		}
		return []StockEvent{{Type: StockDiscontinued}}, nil
	}
	if !s.Known {
		return nil, ErrUnknownProduct
	}
	switch c.Kind {
	case SetOnHand:
		switch {
		case c.OnHand < s.Reserved:
			return nil, ErrBelowReserved
		case c.OnHand == s.OnHand:
			return nil, nil
		}
		return []StockEvent{{Type: StockAdjusted, Delta: c.OnHand - s.OnHand, Reason: c.Reason}}, nil
	case Reserve:
		switch _, held := s.Reservations[c.OrderID]; {
		case held:
			return nil, nil
		case c.Quantity <= 0:
			return nil, ErrInvalidQuantity
		case s.Discontinued:
			return nil, ErrDiscontinued
		case s.Available() < c.Quantity:
			return nil, ErrNotEnoughStock
		}
		return []StockEvent{{Type: StockReserved, OrderID: c.OrderID, Quantity: c.Quantity}}, nil
	case Release, Ship:
		q, held := s.Reservations[c.OrderID]
		if !held {
			return nil, nil
		}
		// A hold above the reserved stock (which the invariants rule out)
		// gives what there is rather than break them.
		q = min(q, s.Reserved)
		if c.Kind == Ship {
			return []StockEvent{{Type: StockShipped, OrderID: c.OrderID, Quantity: q}}, nil
		}
		return []StockEvent{{Type: StockReleased, OrderID: c.OrderID, Quantity: q, Reason: c.Reason}}, nil
	}
	return nil, fmt.Errorf("inventory: unknown stock command %d", c.Kind)
}

// apply returns the stock after e. It takes s over: the map of
// reservations is updated in place rather than copied, as a hot product's
// load applies many events to a state nobody else holds.
func apply(s StockState, e StockEvent) (StockState, error) {
	switch e.Type {
	case StockRegistered:
		s.Known = true
	case StockImported:
		s = StockState{Known: true, OnHand: e.OnHand, Reserved: e.Reserved, Level: e.Level,
			Discontinued: e.Discontinued, Reservations: e.Reservations}
	case StockDiscontinued:
		s.Known, s.Discontinued = true, true
	case StockAdjusted:
		s.OnHand += e.Delta
		s.Level++
	case StockReserved:
		if s.Reservations == nil {
			s.Reservations = map[string]int64{}
		}
		s.Reservations[e.OrderID] += e.Quantity
		s.Reserved += e.Quantity
		s.Level++
	case StockReleased, StockShipped:
		delete(s.Reservations, e.OrderID)
		s.Reserved -= e.Quantity
		if e.Type == StockShipped {
			s.OnHand -= e.Quantity
		}
		s.Level++
	default:
		return s, fmt.Errorf("inventory: unknown stock event %q", e.Type)
	}
	return s, nil
}
