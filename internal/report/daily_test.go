package report_test

import (
	"testing"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/report"
)

// The report counts each event id once, only in its period, and keeps
// currencies apart.
func TestDailyCountsEachEventOnceInItsPeriod(t *testing.T) {
	day := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	b := report.NewBuilder(day, day.AddDate(0, 0, 1))
	add := func(at time.Time, p event.Payload) *event.Envelope {
		e, err := event.New("test", event.Origin{}, p)
		if err != nil {
			t.Fatal(err)
		}
		e.Timestamp = at
		if err := b.Add(e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	paid := add(day.Add(time.Hour), &event.PaymentProcessed{PaymentID: "p1", OrderID: "o1", UserID: "u", AmountCents: 1250, Currency: "EUR", AuthCode: "a"})
	if err := b.Add(paid); err != nil { // a re-import or replay of the same event
		t.Fatal(err)
	}
	add(day.Add(2*time.Hour), &event.PaymentProcessed{PaymentID: "p2", OrderID: "o2", UserID: "u", AmountCents: 700, Currency: "USD", AuthCode: "a"})
	add(day.Add(-time.Second), &event.PaymentProcessed{PaymentID: "p0", OrderID: "o0", UserID: "u", AmountCents: 999, Currency: "EUR", AuthCode: "a"})
	add(day.AddDate(0, 0, 1), &event.PaymentRefunded{PaymentID: "p1", OrderID: "o1", UserID: "u", AmountCents: 1250, Currency: "EUR", Reason: "r"})
	add(day.Add(3*time.Hour), &event.OrderCancelled{OrderID: "o3", UserID: "u", ReasonCode: "payment-failed", Reason: "declined"})
	d := b.Report()
	if len(d.Revenue) != 2 || d.Revenue[0] != (report.Money{Currency: "EUR", Count: 1, AmountCents: 1250}) || d.Revenue[1] != (report.Money{Currency: "USD", Count: 1, AmountCents: 700}) {
		t.Errorf("revenue %+v", d.Revenue)
	}
	if len(d.Refunds) != 0 || d.Events != 3 || len(d.Cancellations) != 1 || d.Cancellations[0].Reason != "payment-failed" {
		t.Errorf("report %+v", d)
	}
}
