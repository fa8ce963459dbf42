package payment_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/payment"
)

// provider wraps the simulated provider, counting calls per payment id and
// failing the first failCharges charges with a transient error.
type provider struct {
	payment.Simulated
	mu          sync.Mutex
	charges     map[string]int
	refunds     map[string]int
	failCharges int
}

func newProvider() *provider {
	return &provider{charges: map[string]int{}, refunds: map[string]int{}}
}

func (p *provider) Charge(ctx context.Context, r payment.ChargeRequest) (string, error) {
	p.mu.Lock()
	p.charges[r.PaymentID]++
	fail := p.failCharges > 0
	p.failCharges--
	p.mu.Unlock()
	if fail {
		return "", errors.New("provider: connection reset")
	}
	return p.Simulated.Charge(ctx, r)
}

func (p *provider) Refund(ctx context.Context, paymentID string, amountCents int64) error {
	p.mu.Lock()
	p.refunds[paymentID]++
	p.mu.Unlock()
	return p.Simulated.Refund(ctx, paymentID, amountCents)
}

func (p *provider) counts(paymentID string) (charges, refunds int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.charges[paymentID], p.refunds[paymentID]
}

type fixture struct {
	*apptest.Harness
	t        *testing.T
	provider *provider
}

func start(t *testing.T) *fixture {
	p := newProvider()
	return &fixture{Harness: apptest.Start(t, []service.Def{payment.DefWith(p)}), t: t, provider: p}
}

// vault stores number as userID's card and returns its token.
func (f *fixture) vault(userID, number string) string {
	var c payment.Card
	f.JSON("POST", "/api/v1/payments/cards", f.Token(userID, "customer"), map[string]string{"number": number}, http.StatusCreated, &c)
	return c.Token
}

// apply publishes one event as if another service had emitted it and waits
// until the payment service consumed it, so the next one arrives after it.
func (f *fixture) apply(source string, o event.Origin, p event.Payload) *event.Envelope {
	f.t.Helper()
	e := f.Publish(source, o, p)[0]
	f.Eventually(string(p.EventType())+" consumed", func() bool { return payment.Processed(f.App.Service("payment"), e.EventID) })
	return e
}

// publishTwice delivers the very same envelope twice, as an at-least-once bus may.
func (f *fixture) publishTwice(source string, o event.Origin, p event.Payload) *event.Envelope {
	f.t.Helper()
	e, err := event.New(source, o, p)
	if err != nil {
		f.t.Fatal(err)
	}
	for range 2 {
		m, err := eventmsg.Encode(context.Background(), e)
		if err != nil {
			f.t.Fatal(err)
		}
		if err := f.Bus.Publish(context.Background(), m); err != nil {
			f.t.Fatal(err)
		}
	}
	return e
}

func (f *fixture) payments(token, query string) []payment.Payment {
	f.t.Helper()
	var out struct{ Payments []payment.Payment }
	f.JSON("GET", "/api/v1/payments"+query, token, nil, http.StatusOK, &out)
	return out.Payments
}

// paymentOf returns the order's payment as its owner sees it, waiting for
// the given status.
func (f *fixture) paymentOf(userID, orderID, status string) payment.Payment {
	f.t.Helper()
	var got payment.Payment
	f.Eventually("payment "+status, func() bool {
		ps := f.payments(f.Token(userID, "customer"), "?orderId="+orderID)
		if len(ps) == 1 {
			got = ps[0]
		}
		return got.Status == status
	})
	return got
}

func (f *fixture) count(typ event.Type, orderID string) int {
	return len(f.Events.All(func(e *event.Envelope) bool { return e.EventType == typ && e.Key == orderID }))
}

func orderCreated(orderID, userID, cardToken string, cents int64) *event.OrderCreated {
	return &event.OrderCreated{
		OrderID: orderID, Customer: event.Customer{UserID: userID, Email: event.Plain(userID + "@example.com"), Name: event.Plain(userID)},
		Lines:      []event.OrderLine{{ProductID: "p1", SKU: "MUG", Name: "Mug", Quantity: 2, UnitPriceCents: cents / 2}},
		TotalCents: cents, Currency: "EUR", Payment: event.PaymentMethod{CardToken: cardToken, CardLast4: "4242"},
		ShippingAddress: event.PlainAddress(event.Address{Name: "Ann", Line1: "1 Main St", City: "Springfield", PostalCode: "12345", Country: "US"}),
	}
}

func reserved(orderID string) *event.InventoryReserved {
	return &event.InventoryReserved{OrderID: orderID, Lines: []event.Line{{ProductID: "p1", Quantity: 2}}}
}

func cancelled(orderID, userID string) *event.OrderCancelled {
	return &event.OrderCancelled{OrderID: orderID, UserID: userID, ReasonCode: "customer-cancelled", Reason: "The customer cancelled the order."}
}

func saga(id string) event.Origin {
	return event.FromRequest(id, event.Metadata{UserID: "u1"})
}

func TestVaultCard(t *testing.T) {
	f := start(t)
	tok := f.Token("u1", "customer")
	for _, c := range []struct{ number, last4, brand string }{
		{"4242 4242 4242 4242", "4242", "visa"},
		{"5555-5555-5555-4444", "4444", "mastercard"},
		{"378282246310005", "0005", "amex"},
		{"6011111111111117", "1117", "discover"},
	} {
		status, _, b := f.Do("POST", "/api/v1/payments/cards", tok, map[string]string{"number": c.number})
		var card payment.Card
		json.Unmarshal(b, &card)
		if status != http.StatusCreated || !strings.HasPrefix(card.Token, "tok_") || card.Last4 != c.last4 || card.Brand != c.brand {
			t.Errorf("%s: %d %s", c.number, status, b)
		}
		if strings.Contains(string(b), strings.NewReplacer(" ", "", "-", "").Replace(c.number)) {
			t.Errorf("the response shows the card number: %s", b)
		}
	}
	for _, c := range []struct {
		name, token, body string
		status            int
		code, msg         string
	}{
		{"anonymous", "", `{"number":"4242424242424242"}`, 401, "unauthorized", "authentication required"},
		{"luhn", tok, `{"number":"4242424242424241"}`, 400, "invalid", "card number is not valid"},
		{"too short", tok, `{"number":"42424242424"}`, 400, "invalid", "card number is not valid"},
		{"too long", tok, `{"number":"42424242424242424242"}`, 400, "invalid", "card number is not valid"},
		{"letters", tok, `{"number":"4242abcd42424242"}`, 400, "invalid", "card number is not valid"},
		{"missing", tok, `{}`, 400, "invalid", "number is required"},
		{"wrong type", tok, `{"number":4242424242424242}`, 400, "invalid", `"number" must be a string`},
		{"unknown field", tok, `{"number":"4242424242424242","cvc":"123"}`, 400, "invalid", `unknown field "cvc"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, _, b := f.Do("POST", "/api/v1/payments/cards", c.token, c.body)
			var eb httpx.ErrorBody
			json.Unmarshal(b, &eb)
			if status != c.status || eb.Error.Code != c.code || !strings.Contains(eb.Error.Message, c.msg) {
				t.Errorf("got %d %s, want %d %s containing %q", status, b, c.status, c.code, c.msg)
			}
		})
	}
}

func TestChargeOutcomes(t *testing.T) {
	f := start(t)
	for _, c := range []struct {
		card, status, code, reason string
	}{
		{payment.TestCardApproved, "processed", "", ""},
		{"5555555555554444", "processed", "", ""}, // any other valid card is approved
		{payment.TestCardDeclined, "failed", "card-declined", "Your card was declined."},
		{payment.TestCardInsufficientFunds, "failed", "insufficient-funds", "Your card has insufficient funds."},
	} {
		t.Run(c.card, func(t *testing.T) {
			orderID, corr := event.NewID(), event.NewID() // not the card number: events are searched for it below
			tok := f.vault("u1", c.card)
			created := f.Publish("order-service", saga(corr), orderCreated(orderID, "u1", tok, 2598))[0]
			res := f.Publish("inventory-service", created.Origin(), reserved(orderID))[0]

			init := f.Events.Wait(t, "PaymentInitiated", apptest.Keyed(orderID))
			pi, _ := init.Payload()
			if p := pi.(*event.PaymentInitiated); p.AmountCents != 2598 || p.Currency != "EUR" || p.UserID != "u1" || p.CardLast4 != c.card[12:] {
				t.Errorf("PaymentInitiated %+v", p)
			}
			if init.Source != "payment-service" || init.CorrelationID != corr || (init.CausationID != created.EventID && init.CausationID != res.EventID) {
				t.Errorf("PaymentInitiated envelope %+v", init)
			}
			got := f.paymentOf("u1", orderID, c.status)
			if got.ID == "" || got.AmountCents != 2598 || got.Currency != "EUR" || got.CardLast4 != c.card[12:] ||
				got.FailureCode != c.code || got.Reason != c.reason || got.CreatedAt.IsZero() || got.UpdatedAt.Location().String() != "UTC" {
				t.Errorf("payment %+v", got)
			}
			if c.status == "processed" {
				e := f.Events.Wait(t, "PaymentProcessed", apptest.Keyed(orderID))
				pl, _ := e.Payload()
				if p := pl.(*event.PaymentProcessed); p.AuthCode == "" || p.AuthCode != got.AuthCode || p.PaymentID != got.ID || e.CausationID != init.CausationID {
					t.Errorf("PaymentProcessed %+v (payment %+v)", p, got)
				}
			} else {
				e := f.Events.Wait(t, "PaymentFailed", apptest.Keyed(orderID))
				pl, _ := e.Payload()
				if p := pl.(*event.PaymentFailed); p.Code != c.code || p.Reason != c.reason || p.PaymentID != got.ID || got.AuthCode != "" {
					t.Errorf("PaymentFailed %+v (payment %+v)", p, got)
				}
			}
		})
	}
	// Cards never travel in events.
	for _, e := range f.Events.All(nil) {
		for _, n := range []string{payment.TestCardApproved, "5555555555554444", payment.TestCardDeclined} {
			if strings.Contains(string(e.Data), n) {
				t.Errorf("%s carries a card number: %s", e.EventType, e.Data)
			}
		}
	}
}

// TestEveryArrivalOrder applies OrderCreated, InventoryReserved and
// OrderCancelled in every order: the payment is charged exactly once when
// the first two came before the cancellation (and then refunded), never
// otherwise.
func TestEveryArrivalOrder(t *testing.T) {
	f := start(t)
	tok := f.vault("u1", payment.TestCardApproved)
	for _, order := range []string{"CRX", "RCX", "CXR", "RXC", "XCR", "XRC", "CR", "RC"} {
		t.Run(order, func(t *testing.T) {
			orderID := "order-" + order
			o := saga("corr-" + order)
			var cancel *event.Envelope
			for _, step := range order {
				switch step {
				case 'C':
					f.apply("order-service", o, orderCreated(orderID, "u1", tok, 1000))
				case 'R':
					f.apply("inventory-service", o, reserved(orderID))
				case 'X':
					cancel = f.apply("order-service", o, cancelled(orderID, "u1"))
				}
			}
			switch {
			case !strings.Contains(order, "X"):
				got := f.paymentOf("u1", orderID, "processed")
				if charges, refunds := f.provider.counts(got.ID); charges != 1 || refunds != 0 {
					t.Errorf("%d charges, %d refunds; want 1, 0", charges, refunds)
				}
			case order[2] == 'X':
				got := f.paymentOf("u1", orderID, "refunded")
				if charges, refunds := f.provider.counts(got.ID); charges != 1 || refunds != 1 {
					t.Errorf("%d charges, %d refunds; want 1, 1", charges, refunds)
				}
				e := f.Events.Wait(t, "PaymentRefunded", apptest.Keyed(orderID))
				pl, _ := e.Payload()
				if p := pl.(*event.PaymentRefunded); p.Reason != "customer-cancelled" || p.AmountCents != 1000 || e.CausationID != cancel.EventID {
					t.Errorf("PaymentRefunded %+v, causation %s", p, e.CausationID)
				}
				if got.Reason != "customer-cancelled" || got.AuthCode == "" {
					t.Errorf("payment %+v", got)
				}
				if n, m := f.count("PaymentInitiated", orderID), f.count("PaymentProcessed", orderID); n != 1 || m != 1 {
					t.Errorf("%d PaymentInitiated, %d PaymentProcessed; want 1 each", n, m)
				}
			default: // cancelled before it could be charged
				got := f.paymentOf("u1", orderID, "voided")
				if charges, refunds := f.provider.counts(got.ID); charges != 0 || refunds != 0 {
					t.Errorf("%d charges, %d refunds; want none", charges, refunds)
				}
				if got.AmountCents != 1000 || got.Reason != "customer-cancelled" {
					t.Errorf("payment %+v", got)
				}
			}
		})
	}
}

func TestDuplicateDeliveryChargesAndRefundsOnce(t *testing.T) {
	f := start(t)
	tok := f.vault("u1", payment.TestCardApproved)
	o := saga("corr-dup")
	f.publishTwice("order-service", o, orderCreated("o-dup", "u1", tok, 500))
	f.publishTwice("inventory-service", o, reserved("o-dup"))
	f.Events.Wait(t, "PaymentProcessed", apptest.Keyed("o-dup"))
	// A later event of the same topic and key lands after the duplicates in
	// their partition: once it is consumed, so are they.
	f.apply("order-service", o, orderCreated("o-dup", "u1", tok, 500))
	f.apply("inventory-service", o, reserved("o-dup"))
	got := f.paymentOf("u1", "o-dup", "processed")
	if charges, _ := f.provider.counts(got.ID); charges != 1 {
		t.Errorf("%d charges, want 1", charges)
	}

	f.publishTwice("order-service", o, cancelled("o-dup", "u1"))
	f.Events.Wait(t, "PaymentRefunded", apptest.Keyed("o-dup"))
	f.apply("order-service", o, cancelled("o-dup", "u1"))
	if _, refunds := f.provider.counts(got.ID); refunds != 1 {
		t.Errorf("%d refunds, want 1", refunds)
	}
	for _, typ := range []event.Type{"PaymentInitiated", "PaymentProcessed", "PaymentRefunded"} {
		if n := f.count(typ, "o-dup"); n != 1 {
			t.Errorf("%d %s events, want 1", n, typ)
		}
	}
}

func TestTransientProviderFailureIsRetried(t *testing.T) {
	f := start(t)
	f.provider.failCharges = 1
	tok := f.vault("u1", payment.TestCardApproved)
	o := saga("corr-retry")
	f.Publish("order-service", o, orderCreated("o-retry", "u1", tok, 700))
	f.Publish("inventory-service", o, reserved("o-retry"))
	f.Events.Wait(t, "PaymentProcessed", apptest.Keyed("o-retry"))
	got := f.paymentOf("u1", "o-retry", "processed")
	if charges, _ := f.provider.counts(got.ID); charges != 2 {
		t.Errorf("%d charge attempts, want 2 (one failed, one retried)", charges)
	}
	// The failed attempt's PaymentInitiated was rolled back with it.
	if n := f.count("PaymentInitiated", "o-retry"); n != 1 {
		t.Errorf("%d PaymentInitiated, want 1", n)
	}
}

func TestCancelAfterDeclineNeedsNoRefund(t *testing.T) {
	f := start(t)
	tok := f.vault("u1", payment.TestCardDeclined)
	o := saga("corr-decl")
	f.apply("order-service", o, orderCreated("o-decl", "u1", tok, 900))
	f.apply("inventory-service", o, reserved("o-decl"))
	c := cancelled("o-decl", "u1")
	c.ReasonCode = "payment-failed"
	f.apply("order-service", o, c)
	got := f.paymentOf("u1", "o-decl", "failed")
	if charges, refunds := f.provider.counts(got.ID); charges != 1 || refunds != 0 {
		t.Errorf("%d charges, %d refunds; want 1, 0", charges, refunds)
	}
	if got.FailureCode != "card-declined" {
		t.Errorf("payment %+v", got)
	}
}

func TestAnotherCustomersCardIsNotCharged(t *testing.T) {
	f := start(t)
	tok := f.vault("u1", payment.TestCardApproved)
	o := saga("corr-steal")
	f.Publish("order-service", o, orderCreated("o-steal", "u2", tok, 900))
	f.Publish("inventory-service", o, reserved("o-steal"))
	e := f.Events.Wait(t, "PaymentFailed", apptest.Keyed("o-steal"))
	pl, _ := e.Payload()
	if p := pl.(*event.PaymentFailed); p.Code != "card-not-found" {
		t.Errorf("PaymentFailed %+v", p)
	}
	got := f.paymentOf("u2", "o-steal", "failed")
	if charges, _ := f.provider.counts(got.ID); charges != 0 {
		t.Errorf("%d charges, want 0", charges)
	}
}

func TestListPaymentsAuthorization(t *testing.T) {
	f := start(t)
	tok := f.vault("u1", payment.TestCardApproved)
	for i := range 2 {
		orderID := fmt.Sprintf("o-auth-%d", i)
		f.Publish("order-service", saga("c"), orderCreated(orderID, "u1", tok, 100))
		f.Publish("inventory-service", saga("c"), reserved(orderID))
		f.paymentOf("u1", orderID, "processed")
	}
	owner, other, admin := f.Token("u1", "customer"), f.Token("u2", "customer"), f.Token("admin-1", "admin")
	if ps := f.payments(owner, "?orderId=o-auth-0"); len(ps) != 1 || ps[0].OrderID != "o-auth-0" || ps[0].UserID != "u1" {
		t.Errorf("owner sees %+v", ps)
	}
	if ps := f.payments(owner, ""); len(ps) != 2 {
		t.Errorf("owner's list %+v", ps)
	}
	if ps := f.payments(other, "?orderId=o-auth-0"); len(ps) != 0 {
		t.Errorf("another customer sees %+v", ps)
	}
	if ps := f.payments(other, ""); len(ps) != 0 {
		t.Errorf("another customer's list %+v", ps)
	}
	if ps := f.payments(admin, "?orderId=o-auth-0"); len(ps) != 1 {
		t.Errorf("admin sees %+v", ps)
	}
	if ps := f.payments(owner, "?limit=1"); len(ps) != 1 {
		t.Errorf("limit=1 gives %d payments", len(ps))
	}
	for _, c := range []struct {
		path, token string
		status      int
		msg         string
	}{
		{"/api/v1/payments?orderId=o-auth-0", "", 401, "authentication required"},
		{"/api/v1/payments?limit=0", owner, 400, "limit"},
		{"/api/v1/payments?offset=x", owner, 400, "offset"},
	} {
		status, _, b := f.Do("GET", c.path, c.token, nil)
		if status != c.status || !strings.Contains(string(b), c.msg) {
			t.Errorf("GET %s: %d %s", c.path, status, b)
		}
	}
}
