package payment

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Provider is the payment provider (a card processor).
//
// Both calls must be idempotent per payment id: the service calls them
// inside the transaction that records their outcome, so a batch rolled
// back after the call repeats it with the same id, and the provider must
// answer as before without charging or refunding again (real providers do
// this with an idempotency key).
type Provider interface {
	// Charge charges the card. A decline is a *DeclineError; any other
	// error is a transient failure and the charge will be retried.
	Charge(ctx context.Context, r ChargeRequest) (authCode string, err error)
	// Refund gives back the whole charge of paymentID. Any error is
	// treated as transient and the refund is retried.
	Refund(ctx context.Context, paymentID string, amountCents int64) error
}

// ChargeRequest is one charge.
type ChargeRequest struct {
	PaymentID   string // the idempotency key
	CardNumber  string
	AmountCents int64
	Currency    string
}

// DeclineError is a charge the provider refused: a business outcome
// (PaymentFailed), not a failure to retry.
type DeclineError struct {
	Code   string // for programs, e.g. "card-declined"
	Reason string // for people, e.g. "Your card was declined."
}

func (e *DeclineError) Error() string { return "payment: declined: " + e.Code + ": " + e.Reason }

// The simulated provider's test cards (the well-known ones).
const (
	TestCardApproved          = "4242424242424242"
	TestCardDeclined          = "4000000000000002"
	TestCardInsufficientFunds = "4000000000009995"
)

// Simulated is a stand-in provider. TestCardDeclined is declined
// ("card-declined"), TestCardInsufficientFunds too ("insufficient-funds");
// every other card is approved, with an authorisation code derived from the
// payment id. It keeps no state, so it is idempotent by construction: the
// same request always gets the same answer. Refunds always succeed.
type Simulated struct{}

// Charge implements Provider.
func (Simulated) Charge(ctx context.Context, r ChargeRequest) (string, error) {
	switch {
	case r.AmountCents <= 0:
		return "", &DeclineError{Code: "invalid-amount", Reason: "The amount must be positive."}
	case r.CardNumber == TestCardDeclined:
		return "", &DeclineError{Code: "card-declined", Reason: "Your card was declined."}
	case r.CardNumber == TestCardInsufficientFunds:
		return "", &DeclineError{Code: "insufficient-funds", Reason: "Your card has insufficient funds."}
	}
	sum := sha256.Sum256([]byte(r.PaymentID))
	return "AUTH-" + strings.ToUpper(hex.EncodeToString(sum[:3])), nil
}

// Refund implements Provider.
func (Simulated) Refund(ctx context.Context, paymentID string, amountCents int64) error {
	if amountCents <= 0 {
		return fmt.Errorf("payment: simulated provider: refund of %d cents", amountCents)
	}
	return nil
}

// normalizeCardNumber strips spaces and dashes and checks the result is
// 12 to 19 digits passing the Luhn check.
func normalizeCardNumber(s string) (string, bool) {
	n := strings.NewReplacer(" ", "", "-", "").Replace(s)
	if len(n) < 12 || len(n) > 19 {
		return "", false
	}
	sum := 0
	for i := 0; i < len(n); i++ {
		c := n[len(n)-1-i]
		if c < '0' || c > '9' {
			return "", false
		}
		d := int(c - '0')
		if i%2 == 1 { // every second digit from the right is doubled
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return n, sum%10 == 0
}

// cardBrand names a card's network from its leading digits.
func cardBrand(n string) string {
	prefix := func(lo, hi string) bool {
		p := n[:len(lo)]
		return p >= lo && p <= hi
	}
	switch {
	case strings.HasPrefix(n, "4"):
		return "visa"
	case prefix("51", "55"), prefix("2221", "2720"):
		return "mastercard"
	case strings.HasPrefix(n, "34"), strings.HasPrefix(n, "37"):
		return "amex"
	case strings.HasPrefix(n, "6011"), strings.HasPrefix(n, "65"), prefix("644", "649"):
		return "discover"
	}
	return "unknown"
}
