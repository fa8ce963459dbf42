// Package exporttest seeds a bus with the events of orders, for the tests
// and benchmarks of export, import and reports.
package exporttest

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/bus/embedded"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
)

// Start is when the first seeded order is placed: two hours before a
// midnight, so the seeded events span several hours and two days.
var Start = time.Date(2026, 12, 1, 22, 0, 0, 0, time.UTC)

// OpenBus opens an embedded log in a temporary directory with the ADR's topics.
func OpenBus(t testing.TB) *embedded.Bus {
	t.Helper()
	return OpenBusAt(t, filepath.Join(t.TempDir(), "eventlog.db"))
}

// OpenBusAt opens the embedded log at path with the ADR's topics; the test
// closes it at the end.
func OpenBusAt(t testing.TB, path string) *embedded.Bus {
	t.Helper()
	b, err := embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	var topics []bus.TopicConfig
	for _, ts := range event.Topics {
		topics = append(topics, bus.TopicConfig{Name: string(ts.Name), Partitions: ts.Partitions, Retention: ts.Retention})
	}
	if _, err := b.EnsureTopics(context.Background(), topics); err != nil {
		t.Fatal(err)
	}
	return b
}

// Order i's fate, by i: every 10th is cancelled for lack of stock, every
// 7th (of the rest) is refunded after shipping, the others ship; order i
// is placed at Start + i*step, in EUR when i is even and USD when odd.
func fate(i int) (cancelled, refunded bool) {
	return i%10 == 9, i%10 != 9 && i%7 == 3
}

// Seed publishes the events of n orders, placed step apart from Start:
// OrderCreated, then InventoryReservationFailed and OrderCancelled, or
// PaymentProcessed, OrderConfirmed, ShippingCreated, ShippingDispatched,
// OrderShipped and, for some, PaymentRefunded. It returns how many events
// it published.
func Seed(t testing.TB, b bus.Publisher, n int, step time.Duration) int {
	t.Helper()
	return SeedPrefixed(t, b, n, step, "")
}

// SeedPrefixed is Seed publishing to the catalog's topics with prefix
// before their names (test topics on a shared cluster).
func SeedPrefixed(t testing.TB, b bus.Publisher, n int, step time.Duration, prefix string) int {
	t.Helper()
	ctx := context.Background()
	var msgs []*bus.Message
	total := 0
	flush := func() {
		if err := b.Publish(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
		total += len(msgs)
		msgs = msgs[:0]
	}
	for i := range n {
		at := Start.Add(time.Duration(i) * step)
		orderID := fmt.Sprintf("00000000-0000-7000-8000-%012d", i)
		userID := fmt.Sprintf("00000000-0000-7000-9000-%012d", i%50)
		cur := "EUR"
		if i%2 == 1 {
			cur = "USD"
		}
		product := fmt.Sprintf("00000000-0000-7000-a000-%012d", i%13)
		lines := []event.OrderLine{{ProductID: product, SKU: fmt.Sprintf("SKU-%d", i%13), Name: "Product", Quantity: int64(1 + i%3), UnitPriceCents: 1000 + int64(i%13)*100}}
		amount := lines[0].Quantity * lines[0].UnitPriceCents
		md := event.Metadata{UserID: userID}
		var chain []event.Payload
		chain = append(chain, &event.OrderCreated{OrderID: orderID, Customer: event.Customer{UserID: userID, Email: event.Plain("c@example.com"), Name: event.Plain("C")},
			Lines: lines, TotalCents: amount, Currency: cur, Payment: event.PaymentMethod{CardToken: "tok", CardLast4: "4242"},
			ShippingAddress: event.PlainAddress(event.Address{Name: "C", Line1: "1 Street", City: "Town", PostalCode: "1000", Country: "DE"}), PlacedAt: at})
		cancelled, refunded := fate(i)
		if cancelled {
			chain = append(chain, &event.InventoryReservationFailed{OrderID: orderID, Reason: "out of stock", Shortages: []event.Shortage{{ProductID: product, Requested: 1}}},
				&event.OrderCancelled{OrderID: orderID, UserID: userID, ReasonCode: "out-of-stock", Reason: "out of stock"})
		} else {
			pay := fmt.Sprintf("00000000-0000-7000-b000-%012d", i)
			ship := fmt.Sprintf("00000000-0000-7000-c000-%012d", i)
			chain = append(chain,
				&event.PaymentProcessed{PaymentID: pay, OrderID: orderID, UserID: userID, AmountCents: amount, Currency: cur, AuthCode: "A1"},
				&event.OrderConfirmed{OrderID: orderID, UserID: userID, PaymentID: pay, TotalCents: amount, Currency: cur},
				&event.ShippingCreated{ShipmentID: ship, OrderID: orderID, UserID: userID, Carrier: "simulated", TrackingNumber: "T" + orderID[24:],
					Address: event.PlainAddress(event.Address{Name: "C", Line1: "1 Street", City: "Town", PostalCode: "1000", Country: "DE"})},
				&event.ShippingDispatched{ShipmentID: ship, OrderID: orderID, UserID: userID, TrackingNumber: "T" + orderID[24:]},
				&event.OrderShipped{OrderID: orderID, UserID: userID, ShipmentID: ship, TrackingNumber: "T" + orderID[24:]})
			if refunded {
				chain = append(chain, &event.PaymentRefunded{PaymentID: pay, OrderID: orderID, UserID: userID, AmountCents: amount, Currency: cur, Reason: "returned"})
			}
		}
		origin := event.FromRequest(fmt.Sprintf("00000000-0000-7000-d000-%012d", i), md)
		for j, p := range chain {
			e, err := event.New("seed", origin, p)
			if err != nil {
				t.Fatal(err)
			}
			e.Timestamp = at.Add(time.Duration(j) * time.Second)
			origin = e.Origin()
			m, err := eventmsg.Encode(ctx, e)
			if err != nil {
				t.Fatal(err)
			}
			m.Topic = prefix + m.Topic
			msgs = append(msgs, m)
		}
		if len(msgs) >= 2000 {
			flush()
		}
	}
	flush()
	return total
}
