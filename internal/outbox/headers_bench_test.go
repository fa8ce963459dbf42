package outbox

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
)

// BenchmarkHeaders is the cost of an event's headers column, written by
// Add and read by the relay, in the compact form written now and in the
// JSON form written before (still read):
//
//	go test -run '^$' -bench Headers -benchmem ./internal/outbox/
func BenchmarkHeaders(b *testing.B) {
	e, err := event.New("order-service", event.FromRequest(event.NewID(), event.Metadata{UserID: "u-1"}),
		&event.OrderConfirmed{OrderID: "o-1", UserID: "u-1", PaymentID: "p-1", TotalCents: 1200, Currency: "EUR"})
	if err != nil {
		b.Fatal(err)
	}
	m, err := eventmsg.Encode(context.Background(), e)
	if err != nil {
		b.Fatal(err)
	}
	compact, err := encodeHeaders(m.Headers)
	if err != nil {
		b.Fatal(err)
	}
	old, err := json.Marshal(m.Headers)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("write/compact", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encodeHeaders(m.Headers); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("write/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(m.Headers); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, c := range []struct {
		name string
		col  string
	}{{"read/compact", compact}, {"read/json", string(old)}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				col := []byte(c.col) // the relay scans the column into a []byte of its own
				if _, err := decodeHeaders(col); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
