package payment

import (
	"errors"
	"reflect"
	"testing"
)

// fold applies commands to the zero payment in turn, as the handlers do
// (refused commands change nothing), and returns the state and every event.
func fold(t *testing.T, cmds ...LedgerCommand) (PaymentState, []LedgerEvent) {
	t.Helper()
	var s PaymentState
	var all []LedgerEvent
	for _, c := range cmds {
		evs, err := decide(s, c)
		if err != nil {
			continue
		}
		for _, e := range evs {
			if s, err = apply(s, e); err != nil {
				t.Fatalf("apply %s: %v", e.Type, err)
			}
		}
		all = append(all, evs...)
	}
	return s, all
}

var (
	noteOrder   = LedgerCommand{Kind: NoteOrder, OrderID: "o1", UserID: "u1", AmountCents: 5000, Currency: "EUR", CardToken: "tok_1", CardLast4: "4242"}
	noteReserve = LedgerCommand{Kind: NoteReservation, OrderID: "o1"}
	noteCancel  = LedgerCommand{Kind: NoteCancellation, OrderID: "o1", UserID: "u1", Reason: "timeout"}
	capture     = LedgerCommand{Kind: Capture, AuthCode: "AUTH1", CardLast4: "4242"}
	decline     = LedgerCommand{Kind: Decline, Code: "insufficient-funds", Reason: "Declined.", CardLast4: "4242"}
)

func refund(cents int64) LedgerCommand {
	return LedgerCommand{Kind: Refund, AmountCents: cents, Reason: "timeout"}
}

func types(evs []LedgerEvent) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

func TestLedgerDecide(t *testing.T) {
	charged, _ := fold(t, noteOrder, noteReserve, capture)
	for _, c := range []struct {
		name  string
		given []LedgerCommand
		cmd   LedgerCommand
		want  []string
		err   error
	}{
		{"first input: the order", nil, noteOrder, []string{OrderNoted}, nil},
		{"the order twice", []LedgerCommand{noteOrder}, noteOrder, []string{}, nil},
		{"the reservation twice", []LedgerCommand{noteReserve}, noteReserve, []string{}, nil},
		{"the cancellation twice", []LedgerCommand{noteCancel}, noteCancel, []string{}, nil},
		{"capture when ready", []LedgerCommand{noteOrder, noteReserve}, capture, []string{ChargeAuthorised, ChargeCaptured}, nil},
		{"decline when ready", []LedgerCommand{noteOrder, noteReserve}, decline, []string{ChargeAuthorised, ChargeDeclined}, nil},
		{"capture without the reservation", []LedgerCommand{noteOrder}, capture, nil, ErrNotReadyToCharge},
		{"capture without the order", []LedgerCommand{noteReserve}, capture, nil, ErrNotReadyToCharge},
		{"capture at most once", []LedgerCommand{noteOrder, noteReserve, capture}, capture, []string{}, nil},
		{"a decline after a capture changes nothing", []LedgerCommand{noteOrder, noteReserve, capture}, decline, []string{}, nil},
		{"a capture after a decline changes nothing", []LedgerCommand{noteOrder, noteReserve, decline}, capture, []string{}, nil},
		{"no capture of a voided payment", []LedgerCommand{noteCancel, noteOrder, noteReserve}, capture, []string{}, nil},
		{"refund the balance", []LedgerCommand{noteOrder, noteReserve, capture}, refund(5000), []string{ChargeRefunded}, nil},
		{"refund part", []LedgerCommand{noteOrder, noteReserve, capture}, refund(1000), []string{ChargeRefunded}, nil},
		{"refund more than captured", []LedgerCommand{noteOrder, noteReserve, capture}, refund(5001), nil, ErrRefundExceedsCaptured},
		{"refund twice", []LedgerCommand{noteOrder, noteReserve, capture, refund(5000)}, refund(5000), nil, ErrRefundExceedsCaptured},
		{"refund of the rest after a part", []LedgerCommand{noteOrder, noteReserve, capture, refund(1000)}, refund(4001), nil, ErrRefundExceedsCaptured},
		{"refund with nothing captured", []LedgerCommand{noteOrder, noteReserve, decline}, refund(1), nil, ErrRefundExceedsCaptured},
		{"refund of nothing", []LedgerCommand{noteOrder, noteReserve, capture}, refund(0), nil, ErrInvalidAmount},
		{"import starts a stream", nil, LedgerCommand{Kind: ImportRow, Imported: charged}, []string{LedgerImported}, nil},
		{"import into a stream changes nothing", []LedgerCommand{noteOrder}, LedgerCommand{Kind: ImportRow, Imported: charged}, []string{}, nil},
		{"unknown command", nil, LedgerCommand{Kind: 99}, nil, ErrUnknownLedgerCommand},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, _ := fold(t, c.given...)
			evs, err := decide(s, c.cmd)
			if !errors.Is(err, c.err) {
				t.Fatalf("error %v, want %v", err, c.err)
			}
			if c.err == nil && !reflect.DeepEqual(types(evs), c.want) {
				t.Errorf("events %v, want %v", types(evs), c.want)
			}
		})
	}
}

func TestLedgerApply(t *testing.T) {
	for _, c := range []struct {
		name                       string
		cmds                       []LedgerCommand
		status                     string
		captured, refunded, amount int64
	}{
		{"awaiting the reservation", []LedgerCommand{noteOrder}, StatusAwaiting, 0, 0, 5000},
		{"processed", []LedgerCommand{noteOrder, noteReserve, capture}, StatusProcessed, 5000, 0, 5000},
		{"failed", []LedgerCommand{noteOrder, noteReserve, decline}, StatusFailed, 0, 0, 5000},
		{"voided before the order", []LedgerCommand{noteCancel, noteOrder}, StatusVoided, 0, 0, 5000},
		{"voided before the charge", []LedgerCommand{noteOrder, noteCancel, noteReserve}, StatusVoided, 0, 0, 5000},
		{"refunded after the charge", []LedgerCommand{noteOrder, noteReserve, capture, noteCancel, refund(5000)}, StatusRefunded, 5000, 5000, 5000},
		{"partly refunded stays processed", []LedgerCommand{noteOrder, noteReserve, capture, refund(2000)}, StatusProcessed, 5000, 2000, 5000},
		{"cancelled after a decline", []LedgerCommand{noteOrder, noteReserve, decline, noteCancel}, StatusFailed, 0, 0, 5000},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, _ := fold(t, c.cmds...)
			if s.Status != c.status || s.CapturedCents != c.captured || s.RefundedCents != c.refunded || s.AmountCents != c.amount {
				t.Errorf("%+v, want %s captured %d refunded %d of %d", s, c.status, c.captured, c.refunded, c.amount)
			}
			if s.Balance() != c.captured-c.refunded || s.Balance() < 0 {
				t.Errorf("balance %d", s.Balance())
			}
		})
	}
	s, _ := fold(t, noteOrder, noteReserve, capture)
	imported, _ := fold(t, LedgerCommand{Kind: ImportRow, Imported: s})
	if !reflect.DeepEqual(imported, s) {
		t.Errorf("imported %+v, want %+v", imported, s)
	}
	if _, err := apply(PaymentState{}, LedgerEvent{Type: "Nope"}); !errors.Is(err, errUnknownLedgerEventType) {
		t.Errorf("unknown event: %v", err)
	}
}

// The saga's three inputs arrive on different topics, so in any order, and
// each may be delivered again; the handler charges when it can after each
// note (as command does). Every order ends in one state: charged once and,
// if cancelled after the charge, refunded once — and a cancellation first
// means never charged.
func TestLedgerAnyArrivalOrderAndDuplicates(t *testing.T) {
	inputs := []LedgerCommand{noteOrder, noteReserve, noteCancel}
	perms := [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	for _, p := range perms {
		for dup := range 3 {
			var s PaymentState
			var all []LedgerEvent
			var run func(c LedgerCommand)
			run = func(c LedgerCommand) {
				evs, err := decide(s, c)
				if err != nil {
					t.Fatalf("%v: %v", p, err)
				}
				for _, e := range evs {
					s, _ = apply(s, e)
				}
				all = append(all, evs...)
				if len(evs) > 0 && s.readyToCharge() {
					run(capture)
				} else if len(evs) > 0 && c.Kind == NoteCancellation && s.Balance() > 0 {
					run(refund(s.Balance()))
				}
			}
			order := append(append([]int{}, p...), p[dup]) // one input delivered twice
			for _, i := range order {
				run(inputs[i])
			}
			n := map[string]int{}
			for _, e := range all {
				n[e.Type]++
			}
			cancelledFirst := p[2] != 2 // the cancellation came before the charge could happen
			switch {
			case cancelledFirst && (s.Status != StatusVoided || n[ChargeCaptured] != 0):
				t.Errorf("%v: %+v %v, want voided and never charged", order, s, types(all))
			case !cancelledFirst && (s.Status != StatusRefunded || n[ChargeCaptured] != 1 || n[ChargeRefunded] != 1):
				t.Errorf("%v: %+v %v, want charged and refunded once", order, s, types(all))
			}
			if s.Balance() != 0 || n[OrderNoted] != 1 || n[ReservationNoted] != 1 || n[CancellationNoted] != 1 {
				t.Errorf("%v: balance %d, events %v", order, s.Balance(), types(all))
			}
		}
	}
}

func TestLedgerEventsCatalog(t *testing.T) {
	if err := ledgerEvents.Check(); err != nil {
		t.Fatal(err)
	}
}
