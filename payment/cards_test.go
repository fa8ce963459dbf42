package payment_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/payment"
)

// vaultStatus vaults number as userID's card and returns the status and
// the card answered.
func (f *fixture) vaultStatus(userID, number string) (int, payment.Card) {
	f.t.Helper()
	status, _, b := f.Do("POST", "/api/v1/payments/cards", f.Token(userID, "customer"), map[string]string{"number": number})
	var c payment.Card
	if err := json.Unmarshal(b, &c); err != nil || c.Token == "" {
		f.t.Fatalf("vault: %d %s", status, b)
	}
	return status, c
}

// cardRows counts the payment service's rows of cards of userID.
func (f *fixture) cardRows(userID string) int {
	f.t.Helper()
	var n int
	if err := f.App.DB(payment.Name).QueryRow(context.Background(), `SELECT COUNT(*) FROM cards WHERE user_id = ?`, userID).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// charge runs an order of userID paid with token through the payment
// saga and returns the event that ended it (PaymentProcessed or
// PaymentFailed).
func (f *fixture) charge(orderID, userID, token string) *event.Envelope {
	f.t.Helper()
	created := f.Publish("order-service", saga("corr-"+orderID), orderCreated(orderID, userID, token, 1000))[0]
	f.Publish("inventory-service", created.Origin(), reserved(orderID))
	var end *event.Envelope
	f.Eventually("the payment of "+orderID, func() bool {
		for _, e := range f.Events.All(func(e *event.Envelope) bool {
			return e.Key == orderID && (e.EventType == "PaymentProcessed" || e.EventType == "PaymentFailed")
		}) {
			end = e
		}
		return end != nil
	})
	return end
}

// A card its customer vaulted before answers the same token (200), from
// memory or, after a restart, from the database, without a new row;
// another customer's same card and another card are new cards (201).
// Orders paid with the reused token both charge, also after the keys
// rotate.
func TestVaultingACardAgainAnswersItsToken(t *testing.T) {
	k1 := strings.Repeat("1", 64)
	f := &fixture{Harness: apptest.Start(t, []service.Def{payment.DefWith(newProvider())},
		apptest.Settings(map[string]string{"EVENTMART_CARD_KEYS": "k1:" + k1})), t: t}
	svc := func() service.Service { return f.App.Service(payment.Name) }
	status, first := f.vaultStatus("u1", payment.TestCardApproved)
	if status != http.StatusCreated || first.Last4 != "4242" || first.Brand != "visa" {
		t.Fatalf("first vaulting: %d %+v, want 201", status, first)
	}
	if status, again := f.vaultStatus("u1", "4242 4242 4242 4242"); status != http.StatusOK || again != first {
		t.Errorf("the same card again: %d %+v, want 200 %+v", status, again, first)
	}
	if n := f.cardRows("u1"); n != 1 {
		t.Errorf("%d rows of u1's cards, want 1", n)
	}
	if status, other := f.vaultStatus("u2", payment.TestCardApproved); status != http.StatusCreated || other.Token == first.Token {
		t.Errorf("another customer's same card: %d %+v, want 201 and a token of its own", status, other)
	}
	status, mc := f.vaultStatus("u1", "5555555555554444")
	if status != http.StatusCreated || mc.Token == first.Token || mc.Last4 != "4444" || mc.Brand != "mastercard" {
		t.Errorf("another card: %d %+v, want 201 and a token of its own", status, mc)
	}
	if n := f.cardRows("u1"); n != 2 {
		t.Errorf("%d rows of u1's cards, want 2", n)
	}

	// Two orders with the reused token both charge the card.
	for _, id := range []string{"o-reused-1", "o-reused-2"} {
		if e := f.charge(id, "u1", first.Token); e.EventType != "PaymentProcessed" {
			t.Errorf("order %s: %s, want PaymentProcessed", id, e.EventType)
		}
	}

	// After a restart the memory is empty: the database answers.
	f.Restart()
	if n := payment.RememberedCards(svc()); n != 0 {
		t.Fatalf("%d cards remembered after a restart", n)
	}
	if status, again := f.vaultStatus("u1", payment.TestCardApproved); status != http.StatusOK || again != first {
		t.Errorf("the same card after a restart: %d %+v, want 200 %+v", status, again, first)
	}
	if n := payment.RememberedCards(svc()); n != 1 {
		t.Errorf("%d cards remembered after a look-up, want 1", n)
	}

	// Key rotation re-seals the numbers; the fingerprint, keyed by the
	// first key, still finds the card, which still charges.
	k2 := hex.EncodeToString(bytes.Repeat([]byte{7}, 32))
	f.Restart(apptest.Settings(map[string]string{"EVENTMART_CARD_KEYS": "k1:" + k1 + ",k2:" + k2}))
	if status, again := f.vaultStatus("u1", payment.TestCardApproved); status != http.StatusOK || again != first {
		t.Errorf("the same card after rotation: %d %+v, want 200 %+v", status, again, first)
	}
	if e := f.charge("o-rotated", "u1", first.Token); e.EventType != "PaymentProcessed" {
		t.Errorf("after rotation: %s, want PaymentProcessed", e.EventType)
	}
	if n := f.cardRows("u1"); n != 2 {
		t.Errorf("%d rows of u1's cards, want 2", n)
	}
}

// A card row that is gone (deleted by hand: Eventmart deletes none) is
// not answered again once a charge found it missing: the customer's next
// vaulting stores the card anew.
func TestVaultingAfterTheCardRowIsGone(t *testing.T) {
	f := start(t)
	_, first := f.vaultStatus("u1", payment.TestCardApproved)
	if _, err := f.App.DB(payment.Name).Exec(context.Background(), `DELETE FROM cards WHERE token = ?`, first.Token); err != nil {
		t.Fatal(err)
	}
	e := f.charge("o-gone", "u1", first.Token)
	if p, _ := e.Payload(); e.EventType != "PaymentFailed" || p.(*event.PaymentFailed).Code != "card-not-found" {
		t.Fatalf("charge of a deleted card: %s %+v, want PaymentFailed card-not-found", e.EventType, p)
	}
	status, again := f.vaultStatus("u1", payment.TestCardApproved)
	if status != http.StatusCreated || again.Token == first.Token {
		t.Fatalf("vaulting after the row went: %d %+v, want 201 and a new token", status, again)
	}
	if e := f.charge("o-anew", "u1", again.Token); e.EventType != "PaymentProcessed" {
		t.Errorf("the card vaulted anew: %s, want PaymentProcessed", e.EventType)
	}
}

// Two payment instances on one PostgreSQL database vaulting the same new
// card at the same moment answer the same card, one 201 and one 200, and
// store one row; an insert racing a vaulting that won answers the
// winner's card.
func TestInstancesVaultTheSameNewCardAtOnce(t *testing.T) {
	defs := []service.Def{payment.DefWith(newProvider())}
	f := &fixture{Harness: apptest.Start(t, defs, apptest.OnPostgres(t, defs)), t: t}
	instances := []http.Handler{f.App.Handler(), f.StartInstance().Handler()}
	cards := []string{payment.TestCardApproved, "5555555555554444", "378282246310005", "6011111111111117", "4000056655665556", "5200828282828210"}
	for _, number := range cards {
		user := "u-" + number
		tok := f.Token(user, "customer")
		var wg sync.WaitGroup
		start := make(chan struct{})
		statuses, answers := make([]int, 2), make([]payment.Card, 2)
		for i, h := range instances {
			wg.Go(func() {
				<-start
				r := httptest.NewRequest("POST", "/api/v1/payments/cards", strings.NewReader(`{"number":"`+number+`"}`))
				r.Header.Set("Content-Type", "application/json")
				r.Header.Set("Authorization", "Bearer "+tok)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				statuses[i] = w.Code
				if err := json.Unmarshal(w.Body.Bytes(), &answers[i]); err != nil {
					t.Errorf("instance %d: %d %s", i+1, w.Code, w.Body)
				}
			})
		}
		close(start)
		wg.Wait()
		if statuses[0]+statuses[1] != http.StatusOK+http.StatusCreated || answers[0] != answers[1] || answers[0].Token == "" {
			t.Errorf("card %s: %v %+v, want one 201 and one 200 with the same card", number, statuses, answers)
		}
		if n := f.cardRows(user); n != 1 {
			t.Errorf("card %s: %d rows, want 1", number, n)
		}
		// The loser's insert, past the memory and the look-up.
		card, created, err := payment.InsertCard(context.Background(), f.App.Service(payment.Name), user, number)
		if err != nil || created || card != answers[0] {
			t.Errorf("card %s: an insert racing the winner: %+v created %v %v, want %+v", number, card, created, err, answers[0])
		}
	}
}
