package inventory

import (
	"errors"
	"reflect"
	"testing"
)

// fold applies events to a fresh state, failing the test on an error.
func fold(t *testing.T, events ...StockEvent) StockState {
	t.Helper()
	var s StockState
	for _, e := range events {
		var err error
		if s, err = apply(s, e); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

var (
	registered = StockEvent{Type: StockRegistered}
	set5       = StockEvent{Type: StockAdjusted, Delta: 5, Reason: "set"}
	reserve    = func(order string, q int64) StockEvent {
		return StockEvent{Type: StockReserved, OrderID: order, Quantity: q}
	}
)

// Every command on every relevant state: the events decided, or why not.
func TestDecide(t *testing.T) {
	imported := StockState{OnHand: 9, Reserved: 3, Level: 7, Reservations: map[string]int64{"o1": 3}}
	for _, c := range []struct {
		name    string
		history []StockEvent
		cmd     StockCommand
		want    []StockEvent
		err     error
	}{
		{"register a new product", nil, StockCommand{Kind: Register}, []StockEvent{registered}, nil},
		{"register twice", []StockEvent{registered}, StockCommand{Kind: Register}, nil, nil},
		{"register after discontinued", []StockEvent{{Type: StockDiscontinued}}, StockCommand{Kind: Register}, nil, nil},

		{"set on an unknown product", nil, StockCommand{Kind: SetOnHand, OnHand: 5, Reason: "set"}, nil, ErrUnknownProduct},
		{"set", []StockEvent{registered}, StockCommand{Kind: SetOnHand, OnHand: 5, Reason: "set"}, []StockEvent{set5}, nil},
		{"set lower", []StockEvent{registered, set5}, StockCommand{Kind: SetOnHand, OnHand: 2, Reason: "set"},
			[]StockEvent{{Type: StockAdjusted, Delta: -3, Reason: "set"}}, nil},
		{"set the same value", []StockEvent{registered, set5}, StockCommand{Kind: SetOnHand, OnHand: 5}, nil, nil},
		{"set below the reserved", []StockEvent{registered, set5, reserve("o1", 4)}, StockCommand{Kind: SetOnHand, OnHand: 3}, nil, ErrBelowReserved},
		{"set to the reserved", []StockEvent{registered, set5, reserve("o1", 4)}, StockCommand{Kind: SetOnHand, OnHand: 4, Reason: "set"},
			[]StockEvent{{Type: StockAdjusted, Delta: -1, Reason: "set"}}, nil},

		{"reserve", []StockEvent{registered, set5}, StockCommand{Kind: Reserve, OrderID: "o1", Quantity: 5}, []StockEvent{reserve("o1", 5)}, nil},
		{"reserve more than available", []StockEvent{registered, set5, reserve("o1", 3)}, StockCommand{Kind: Reserve, OrderID: "o2", Quantity: 3}, nil, ErrNotEnoughStock},
		{"reserve with no stock", []StockEvent{registered}, StockCommand{Kind: Reserve, OrderID: "o1", Quantity: 1}, nil, ErrNotEnoughStock},
		{"reserve an unknown product", nil, StockCommand{Kind: Reserve, OrderID: "o1", Quantity: 1}, nil, ErrUnknownProduct},
		{"reserve a discontinued product", []StockEvent{registered, set5, {Type: StockDiscontinued}}, StockCommand{Kind: Reserve, OrderID: "o1", Quantity: 1}, nil, ErrDiscontinued},
		{"reserve nothing", []StockEvent{registered, set5}, StockCommand{Kind: Reserve, OrderID: "o1", Quantity: 0}, nil, ErrInvalidQuantity},
		{"reserve for an order that holds already (a duplicate)", []StockEvent{registered, set5, reserve("o1", 2)},
			StockCommand{Kind: Reserve, OrderID: "o1", Quantity: 2}, nil, nil},
		{"duplicate of a reservation that took the last unit", []StockEvent{registered, set5, reserve("o1", 5)},
			StockCommand{Kind: Reserve, OrderID: "o1", Quantity: 5}, nil, nil},

		{"release", []StockEvent{registered, set5, reserve("o1", 2)}, StockCommand{Kind: Release, OrderID: "o1", Reason: "timeout"},
			[]StockEvent{{Type: StockReleased, OrderID: "o1", Quantity: 2, Reason: "timeout"}}, nil},
		{"release twice", []StockEvent{registered, set5, reserve("o1", 2), {Type: StockReleased, OrderID: "o1", Quantity: 2}},
			StockCommand{Kind: Release, OrderID: "o1"}, nil, nil},
		{"release before the reservation", []StockEvent{registered, set5}, StockCommand{Kind: Release, OrderID: "o1"}, nil, nil},
		{"release after shipping", []StockEvent{registered, set5, reserve("o1", 2), {Type: StockShipped, OrderID: "o1", Quantity: 2}},
			StockCommand{Kind: Release, OrderID: "o1"}, nil, nil},
		{"release of an unknown product", nil, StockCommand{Kind: Release, OrderID: "o1"}, nil, ErrUnknownProduct},

		{"ship", []StockEvent{registered, set5, reserve("o1", 2)}, StockCommand{Kind: Ship, OrderID: "o1"},
			[]StockEvent{{Type: StockShipped, OrderID: "o1", Quantity: 2}}, nil},
		{"ship twice", []StockEvent{registered, set5, reserve("o1", 2), {Type: StockShipped, OrderID: "o1", Quantity: 2}},
			StockCommand{Kind: Ship, OrderID: "o1"}, nil, nil},
		{"ship after release", []StockEvent{registered, set5, reserve("o1", 2), {Type: StockReleased, OrderID: "o1", Quantity: 2}},
			StockCommand{Kind: Ship, OrderID: "o1"}, nil, nil},
		{"ship a discontinued product's hold", []StockEvent{registered, set5, reserve("o1", 2), {Type: StockDiscontinued}},
			StockCommand{Kind: Ship, OrderID: "o1"}, []StockEvent{{Type: StockShipped, OrderID: "o1", Quantity: 2}}, nil},
		{"ship a hold above the reserved stock gives what there is",
			[]StockEvent{{Type: StockImported, OnHand: 5, Reserved: 1, Reservations: map[string]int64{"o1": 2}}},
			StockCommand{Kind: Ship, OrderID: "o1"}, []StockEvent{{Type: StockShipped, OrderID: "o1", Quantity: 1}}, nil},

		{"discontinue", []StockEvent{registered}, StockCommand{Kind: Discontinue}, []StockEvent{{Type: StockDiscontinued}}, nil},
		{"discontinue an unknown product", nil, StockCommand{Kind: Discontinue}, []StockEvent{{Type: StockDiscontinued}}, nil},
		{"discontinue twice", []StockEvent{registered, {Type: StockDiscontinued}}, StockCommand{Kind: Discontinue}, nil, nil},

		{"import into an empty stream", nil, StockCommand{Kind: Import, Imported: imported},
			[]StockEvent{{Type: StockImported, OnHand: 9, Reserved: 3, Level: 7, Reservations: map[string]int64{"o1": 3}}}, nil},
		{"import again", []StockEvent{{Type: StockImported, OnHand: 9}}, StockCommand{Kind: Import, Imported: imported}, nil, nil},
		{"import into a stream of the new release", []StockEvent{registered}, StockCommand{Kind: Import, Imported: imported}, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := decide(fold(t, c.history...), c.cmd)
			if !errors.Is(err, c.err) || (c.err == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("decided %+v, want %+v", got, c.want)
			}
		})
	}
}

// Every event's effect on the state.
func TestApply(t *testing.T) {
	for _, c := range []struct {
		name   string
		events []StockEvent
		want   StockState
	}{
		{"nothing", nil, StockState{}},
		{"registered", []StockEvent{registered}, StockState{Known: true}},
		{"adjusted", []StockEvent{registered, set5}, StockState{Known: true, OnHand: 5, Level: 1}},
		{"reserved", []StockEvent{registered, set5, reserve("o1", 2), reserve("o2", 1)},
			StockState{Known: true, OnHand: 5, Reserved: 3, Level: 3, Reservations: map[string]int64{"o1": 2, "o2": 1}}},
		{"released", []StockEvent{registered, set5, reserve("o1", 2), reserve("o2", 1), {Type: StockReleased, OrderID: "o1", Quantity: 2}},
			StockState{Known: true, OnHand: 5, Reserved: 1, Level: 4, Reservations: map[string]int64{"o2": 1}}},
		{"shipped", []StockEvent{registered, set5, reserve("o1", 2), {Type: StockShipped, OrderID: "o1", Quantity: 2}},
			StockState{Known: true, OnHand: 3, Reserved: 0, Level: 3, Reservations: map[string]int64{}}},
		{"discontinued", []StockEvent{registered, set5, {Type: StockDiscontinued}}, StockState{Known: true, OnHand: 5, Level: 1, Discontinued: true}},
		{"discontinued first", []StockEvent{{Type: StockDiscontinued}}, StockState{Known: true, Discontinued: true}},
		{"imported, then reserved", []StockEvent{
			{Type: StockImported, OnHand: 9, Reserved: 3, Level: 7, Discontinued: false, Reservations: map[string]int64{"o1": 3}}, reserve("o2", 1)},
			StockState{Known: true, OnHand: 9, Reserved: 4, Level: 8, Reservations: map[string]int64{"o1": 3, "o2": 1}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := fold(t, c.events...); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("state %+v, want %+v", got, c.want)
			}
		})
	}
	if _, err := apply(StockState{}, StockEvent{Type: "StockStolen"}); err == nil {
		t.Fatal("an unknown event type applied")
	}
}

// Commands arriving in any order, and again, as the order topics deliver
// them (the partitions of different topics keep no common order, and the
// bus delivers at least once): whatever the order, decide followed by
// apply never breaks the invariants (0 ≤ reserved ≤ on hand, reserved =
// the sum of the holds), a command repeated changes nothing, and no hold
// outlives a release or shipment that came after it. (A release before its
// reservation leaves the reservation standing on the stream: the order's
// tombstone in the reservations table stops that reservation upstream.)
func TestCommandsInAnyOrderAndRepeated(t *testing.T) {
	cmds := []StockCommand{
		{Kind: Reserve, OrderID: "o1", Quantity: 2},
		{Kind: Reserve, OrderID: "o2", Quantity: 2},
		{Kind: Release, OrderID: "o1", Reason: "timeout"},
		{Kind: Ship, OrderID: "o2"},
		{Kind: SetOnHand, OnHand: 6, Reason: "set"},
		{Kind: Discontinue},
	}
	perms := permutations(len(cmds))
	for _, p := range perms {
		s := fold(t, registered, set5)
		for _, i := range p {
			for k := range 2 { // each command delivered twice
				evs, err := decide(s, cmds[i])
				if k == 1 && len(evs) > 0 {
					t.Fatalf("order %v: command %d repeated decided %+v", p, i, evs)
				}
				if err != nil && !errors.Is(err, ErrNotEnoughStock) && !errors.Is(err, ErrDiscontinued) && !errors.Is(err, ErrBelowReserved) {
					t.Fatalf("order %v: %v", p, err)
				}
				for _, e := range evs {
					if s, err = apply(s, e); err != nil {
						t.Fatal(err)
					}
				}
				var held int64
				for _, q := range s.Reservations {
					held += q
				}
				if s.Reserved < 0 || s.Reserved > s.OnHand || held != s.Reserved {
					t.Fatalf("order %v: broken invariant %+v", p, s)
				}
			}
		}
		if _, held := s.Reservations["o1"]; held && before(p, 0, 2) {
			t.Fatalf("order %v: o1 holds %+v after its release", p, s.Reservations)
		}
		if _, held := s.Reservations["o2"]; held && before(p, 1, 3) {
			t.Fatalf("order %v: o2 holds %+v after its shipment", p, s.Reservations)
		}
	}
}

// before reports whether a comes before b in p.
func before(p []int, a, b int) bool {
	for _, i := range p {
		if i == a {
			return true
		}
		if i == b {
			return false
		}
	}
	return false
}

func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int{}, p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}
