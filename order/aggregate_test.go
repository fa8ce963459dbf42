package order

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/eventstore"
)

func placedOrder() OrderState {
	at := time.Date(2026, 12, 6, 10, 2, 13, 0, time.UTC)
	return OrderState{Order: Order{ID: "o-1", UserID: "u-1", Status: StatusPending, TotalCents: 1200, Currency: "EUR",
		Items: []event.OrderLine{{ProductID: "p-mug", Quantity: 1, UnitPriceCents: 1200}}, Customer: Customer{Email: event.Plain("ann@example.com"), Name: event.Plain("Ann")},
		CardLast4: "4242", CreatedAt: at, UpdatedAt: at}, CorrelationID: "corr-1", CreatedEventID: "ev-created"}
}

// with returns the placed order changed by f.
func with(f func(*OrderState)) OrderState {
	s := placedOrder()
	f(&s)
	return s
}

func evTypes(evs []OrderEvent) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

// fold applies evs to s.
func fold(t *testing.T, s OrderState, evs []OrderEvent) OrderState {
	t.Helper()
	for _, e := range evs {
		var err error
		if s, err = apply(s, e); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// Every transition and compensation of docs/saga.md, and every input that
// must change nothing.
func TestDecideAndApply(t *testing.T) {
	pending := placedOrder()
	labelled := with(func(s *OrderState) { s.ShipmentID, s.TrackingNumber = "shp-1", "TRK-1" })
	confirmed := with(func(s *OrderState) { s.Status, s.PaymentID = StatusConfirmed, "pay-1" })
	shipped := with(func(s *OrderState) {
		s.Status, s.PaymentID, s.ShipmentID, s.TrackingNumber = StatusShipped, "pay-1", "shp-1", "TRK-1"
	})
	cancelled := with(func(s *OrderState) {
		s.Status, s.ReasonCode, s.Reason = StatusCancelled, ReasonOutOfStock, "not enough stock"
	})
	cancel := func(code string) Command { return Command{Kind: Cancel, ReasonCode: code, Reason: "because " + code} }
	for _, c := range []struct {
		name   string
		from   OrderState
		cmd    Command
		events []string
		err    error
		want   func(OrderState) bool
	}{
		{"place", OrderState{}, Command{Kind: Place, Order: pending}, []string{OrderPlaced}, nil,
			func(s OrderState) bool {
				return s.ID == "o-1" && s.Status == StatusPending && s.CorrelationID == "corr-1"
			}},
		{"place twice", pending, Command{Kind: Place, Order: pending}, nil, nil, nil},
		{"import", OrderState{}, Command{Kind: ImportRow, Order: shipped}, []string{OrderImported}, nil,
			func(s OrderState) bool { return s.Status == StatusShipped && s.ShipmentID == "shp-1" }},
		{"import over a stream", pending, Command{Kind: ImportRow, Order: shipped}, nil, nil, nil},
		{"payment of no order", OrderState{}, Command{Kind: ConfirmPayment, PaymentID: "pay-1"}, nil, ErrNotPlaced, nil},
		{"payment confirms", pending, Command{Kind: ConfirmPayment, PaymentID: "pay-1"}, []string{PaymentConfirmed}, nil,
			func(s OrderState) bool { return s.Status == StatusConfirmed && s.PaymentID == "pay-1" }},
		{"payment after the label ships", labelled, Command{Kind: ConfirmPayment, PaymentID: "pay-1"}, []string{PaymentConfirmed, OrderDispatched}, nil,
			func(s OrderState) bool { return s.Status == StatusShipped && s.PaymentID == "pay-1" }},
		{"payment twice", confirmed, Command{Kind: ConfirmPayment, PaymentID: "pay-2"}, nil, nil, nil},
		{"payment of a shipped order", shipped, Command{Kind: ConfirmPayment, PaymentID: "pay-2"}, nil, nil, nil},
		{"payment after a cancel (payment refunds)", cancelled, Command{Kind: ConfirmPayment, PaymentID: "pay-1"}, nil, nil, nil},
		{"label of a pending order", pending, Command{Kind: NoteShipment, ShipmentID: "shp-1", TrackingNumber: "TRK-1"}, []string{ShipmentNoted}, nil,
			func(s OrderState) bool {
				return s.Status == StatusPending && s.ShipmentID == "shp-1" && s.TrackingNumber == "TRK-1"
			}},
		{"label ships a confirmed order", confirmed, Command{Kind: NoteShipment, ShipmentID: "shp-1", TrackingNumber: "TRK-1"}, []string{ShipmentNoted, OrderDispatched}, nil,
			func(s OrderState) bool { return s.Status == StatusShipped && s.ShipmentID == "shp-1" }},
		{"label twice", labelled, Command{Kind: NoteShipment, ShipmentID: "shp-1", TrackingNumber: "TRK-1"}, nil, nil, nil},
		{"label of a cancelled order kept", cancelled, Command{Kind: NoteShipment, ShipmentID: "shp-1", TrackingNumber: "TRK-1"}, []string{ShipmentNoted}, nil,
			func(s OrderState) bool { return s.Status == StatusCancelled && s.ShipmentID == "shp-1" }},
		{"out of stock cancels", pending, cancel(ReasonOutOfStock), []string{OrderVoided}, nil,
			func(s OrderState) bool {
				return s.Status == StatusCancelled && s.ReasonCode == ReasonOutOfStock && s.Reason == "because out-of-stock"
			}},
		{"payment failed cancels", pending, cancel(ReasonPaymentFailed), []string{OrderVoided}, nil,
			func(s OrderState) bool { return s.Status == StatusCancelled && s.ReasonCode == ReasonPaymentFailed }},
		{"timeout cancels", pending, cancel(ReasonTimeout), []string{OrderVoided}, nil,
			func(s OrderState) bool { return s.Status == StatusCancelled && s.ReasonCode == ReasonTimeout }},
		{"customer cancels pending", pending, cancel(ReasonCustomerCancelled), []string{OrderVoided}, nil,
			func(s OrderState) bool { return s.Status == StatusCancelled && s.ReasonCode == ReasonCustomerCancelled }},
		{"customer cancels confirmed", confirmed, cancel(ReasonCustomerCancelled), []string{OrderVoided}, nil,
			func(s OrderState) bool { return s.Status == StatusCancelled && s.PaymentID == "pay-1" }},
		{"customer cannot cancel shipped", shipped, cancel(ReasonCustomerCancelled), nil, ErrNotCancellable, nil},
		{"customer cannot cancel twice", cancelled, cancel(ReasonCustomerCancelled), nil, ErrNotCancellable, nil},
		{"out of stock after the payment ignored", confirmed, cancel(ReasonOutOfStock), nil, nil, nil},
		{"payment failure after the payment ignored", confirmed, cancel(ReasonPaymentFailed), nil, nil, nil},
		{"timeout of a confirmed order ignored", confirmed, cancel(ReasonTimeout), nil, nil, nil},
		{"saga cancel of a cancelled order ignored", cancelled, cancel(ReasonPaymentFailed), nil, nil, nil},
		{"saga cancel of a shipped order ignored", shipped, cancel(ReasonTimeout), nil, nil, nil},
		{"customer changes", shipped, Command{Kind: UpdateCustomer, Customer: Customer{Email: event.Plain("new@example.com"), Name: event.Plain("Ann B")}}, []string{CustomerChanged}, nil,
			func(s OrderState) bool {
				return s.Customer.Email.Clear == "new@example.com" && s.Status == StatusShipped
			}},
		{"customer unchanged", pending, Command{Kind: UpdateCustomer, Customer: pending.Customer}, nil, nil, nil},
		{"unknown command", pending, Command{Kind: 99}, nil, ErrUnknownCommand, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			evs, err := decide(c.from, c.cmd)
			if !errors.Is(err, c.err) || (c.err != nil) != (err != nil) {
				t.Fatalf("error %v, want %v", err, c.err)
			}
			if got := evTypes(evs); !slices.Equal(got, c.events) && !(len(got) == 0 && len(c.events) == 0) {
				t.Fatalf("events %v, want %v", got, c.events)
			}
			if c.want != nil {
				if s := fold(t, c.from, evs); !c.want(s) {
					t.Errorf("state after %+v", s)
				}
			}
		})
	}
	if _, err := apply(pending, OrderEvent{Type: "Bogus"}); !errors.Is(err, errUnknownOrderEvent) {
		t.Errorf("unknown event: %v", err)
	}
	if _, err := apply(OrderState{}, OrderEvent{Type: OrderPlaced}); err == nil {
		t.Error("a placement without its order applied")
	}
}

// applyAt moves UpdatedAt with every change of the saga, not with a new
// customer profile nor an import.
func TestApplyAtMovesUpdatedAt(t *testing.T) {
	s := placedOrder()
	later := s.CreatedAt.Add(1500 * time.Microsecond)
	s1, _ := applyAt(s, OrderEvent{Type: PaymentConfirmed, PaymentID: "p"}, later)
	if !s1.UpdatedAt.Equal(later.Truncate(time.Millisecond)) || !s1.CreatedAt.Equal(s.CreatedAt) {
		t.Errorf("confirmed: %v %v", s1.CreatedAt, s1.UpdatedAt)
	}
	s2, _ := applyAt(s1, OrderEvent{Type: CustomerChanged, Customer: &Customer{Email: event.Plain("x@example.com")}}, later.Add(time.Hour))
	if !s2.UpdatedAt.Equal(s1.UpdatedAt) {
		t.Errorf("customer change moved UpdatedAt to %v", s2.UpdatedAt)
	}
}

// input is one of the saga's inputs as the order service receives it.
type input struct {
	name string
	cmd  Command
}

var (
	paid      = input{"paid", Command{Kind: ConfirmPayment, PaymentID: "pay-1"}}
	labelled  = input{"labelled", Command{Kind: NoteShipment, ShipmentID: "shp-1", TrackingNumber: "TRK-1"}}
	noStock   = input{"out-of-stock", Command{Kind: Cancel, ReasonCode: ReasonOutOfStock, Reason: "not enough stock"}}
	declined  = input{"declined", Command{Kind: Cancel, ReasonCode: ReasonPaymentFailed, Reason: "declined"}}
	timedOut  = input{"timeout", Command{Kind: Cancel, ReasonCode: ReasonTimeout, Reason: "late"}}
	customer  = input{"customer", Command{Kind: Cancel, ReasonCode: ReasonCustomerCancelled, Reason: "changed my mind"}}
	newPerson = input{"customer-changed", Command{Kind: UpdateCustomer, Customer: Customer{Email: event.Plain("b@example.com"), Name: event.Plain("B")}}}
)

// orderings returns every ordering of ins, each input duplicated (a
// redelivery, or the same fact from another producer).
func orderings(ins ...input) [][]input {
	all := append(slices.Clone(ins), ins...)
	var out [][]input
	var walk func(prefix []input, rest []input)
	walk = func(prefix, rest []input) {
		if len(rest) == 0 {
			out = append(out, slices.Clone(prefix))
			return
		}
		seen := map[string]bool{}
		for i, in := range rest {
			if seen[in.name] { // the duplicate gives the same orderings
				continue
			}
			seen[in.name] = true
			next := append(slices.Clone(rest[:i]), rest[i+1:]...)
			walk(append(prefix, in), next)
		}
	}
	walk(nil, all)
	return out
}

// runAll folds the inputs in order from a placed order, as the handlers
// do (a refusal decides nothing), and returns the final state and every
// event decided.
func runAll(t *testing.T, ins []input) (OrderState, []string) {
	t.Helper()
	s := placedOrder()
	var all []string
	for _, in := range ins {
		evs, err := decide(s, in.cmd)
		if err != nil && !errors.Is(err, ErrNotCancellable) {
			t.Fatalf("%s: %v", in.name, err)
		}
		s = fold(t, s, evs)
		all = append(all, evTypes(evs)...)
	}
	return s, all
}

func count(evs []string, t string) int {
	n := 0
	for _, e := range evs {
		if e == t {
			n++
		}
	}
	return n
}

// The saga's inputs arrive on several topics in any order, each possibly
// twice: whatever the order, an order is decided once (confirmed or
// cancelled, never both), ships once it is confirmed and labelled, and
// every integration event its domain events cause is caused once.
func TestAnyArrivalOrderAndDuplicates(t *testing.T) {
	for _, set := range [][]input{
		{paid, labelled},
		{paid, labelled, newPerson},
		{noStock, labelled},
		{declined, paid, labelled},
		{noStock, paid, labelled},
		{timedOut, paid, labelled},
		{customer, paid, labelled},
		{customer, noStock, declined},
	} {
		names := []string{}
		for _, in := range set {
			names = append(names, in.name)
		}
		t.Run(fmt.Sprint(names), func(t *testing.T) {
			n := 0
			for _, ins := range orderings(set...) {
				n++
				s, evs := runAll(t, ins)
				order := []string{}
				for _, in := range ins {
					order = append(order, in.name)
				}
				confirmedN, voidedN, shippedN := count(evs, PaymentConfirmed), count(evs, OrderVoided), count(evs, OrderDispatched)
				switch {
				case confirmedN > 1 || voidedN > 1 || shippedN > 1 || count(evs, ShipmentNoted) > 1:
					t.Fatalf("%v: an effect twice: %v", order, evs)
				case confirmedN+voidedN == 0 || s.Status == StatusPending:
					t.Fatalf("%v: undecided: %+v %v", order, s, evs)
				case s.Status == StatusShipped && (confirmedN != 1 || voidedN != 0 || shippedN != 1 || s.ShipmentID == ""):
					t.Fatalf("%v: shipped without payment and label: %+v %v", order, s, evs)
				case s.Status == StatusCancelled && (voidedN != 1 || confirmedN == 1 && s.ReasonCode != ReasonCustomerCancelled):
					t.Fatalf("%v: a confirmed order cancelled by the saga: %+v %v", order, s, evs)
				case s.Status == StatusConfirmed && (voidedN != 0 || s.ShipmentID != "" || s.PaymentID != "pay-1"):
					t.Fatalf("%v: confirmed with a label and not shipped: %+v %v", order, s, evs)
				}
				// What decides first wins: the payment before any
				// cancellation confirms; a cancellation before the payment cancels.
				firstPaid := slices.IndexFunc(ins, func(in input) bool { return in.name == "paid" })
				firstCancel := slices.IndexFunc(ins, func(in input) bool { return in.cmd.Kind == Cancel })
				if firstPaid >= 0 && (firstCancel < 0 || firstPaid < firstCancel) {
					if confirmedN != 1 {
						t.Fatalf("%v: the payment came first, yet %v", order, evs)
					}
				} else if voidedN != 1 || confirmedN != 0 || s.ReasonCode != ins[firstCancel].cmd.ReasonCode {
					t.Fatalf("%v: the cancellation came first, yet %+v %v", order, s, evs)
				}
				if slices.Contains(names, "customer-changed") && s.Customer.Email.Clear != "b@example.com" {
					t.Fatalf("%v: customer %+v", order, s.Customer)
				}
			}
			t.Logf("%d orderings", n)
		})
	}
}

func TestOrderEventsCatalog(t *testing.T) {
	if err := orderEvents.Check(); err != nil {
		t.Fatal(err)
	}
}

// OrderPlaced and CustomerChanged are at v2, where the customer and the
// address may be sealed; a stored v1 event, in clear, still folds, and a
// v2 event keeps its sealed values through the fold (nothing opens them).
func TestPersonalOrderEventsReadAtBothVersions(t *testing.T) {
	for _, typ := range []string{OrderPlaced, OrderImported, CustomerChanged} {
		if v := orderEvents.Version(typ); v != "v2" {
			t.Errorf("%s at %s, want v2", typ, v)
		}
	}
	v1 := eventstore.Event{Type: OrderPlaced, SchemaVersion: "v1", Data: []byte(`{"order":{"id":"o-1","userId":"u-1","status":"PENDING",
		"customer":{"email":"ann@example.com","name":"Ann"},"shippingAddress":{"name":"Ann","line1":"1 Main St","city":"C","postalCode":"1","country":"DE"}}}`)}
	s, err := orderAggregate.Apply(OrderState{}, v1)
	if err != nil {
		t.Fatal(err)
	}
	if s.Customer != (Customer{Email: event.Plain("ann@example.com"), Name: event.Plain("Ann")}) || s.ShippingAddress.Clear.Line1 != "1 Main St" {
		t.Errorf("v1 OrderPlaced folds to %+v", s.Order)
	}

	key := make([]byte, event.PersonalKeySize)
	email, _ := event.Seal(key, "u-1", "new@example.com")
	addr, _ := event.SealAddress(key, "u-1", event.Address{Name: "Ann", Line1: "2 Side St", City: "C", PostalCode: "1", Country: "DE"})
	placed := placedOrder()
	placed.ShippingAddress = addr
	recs, err := eventstore.EncodeFor(orderEvents, []OrderEvent{{Type: OrderPlaced, Order: &placed}, {Type: CustomerChanged, Customer: &Customer{Email: email, Name: event.Plain("Ann")}}},
		func(e OrderEvent) string { return e.Type }, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.SchemaVersion != "v2" || strings.Contains(string(r.Data), "new@example.com") || strings.Contains(string(r.Data), "2 Side St") {
			t.Errorf("%s stored at %s as %s", r.Type, r.SchemaVersion, r.Data)
		}
	}
	s = OrderState{}
	for _, r := range recs {
		if s, err = orderAggregate.Apply(s, r); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.Customer.Email.Sealed.OpenWith(key); err != nil || got != "new@example.com" {
		t.Errorf("the folded email opens to %q, %v", got, err)
	}
	if got, err := s.ShippingAddress.Open(context.Background(), nil); err == nil || got.Line1 != "" {
		t.Errorf("a sealed address opened without keys: %+v, %v", got, err)
	}
}
