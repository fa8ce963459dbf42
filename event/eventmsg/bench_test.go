package eventmsg_test

import (
	"context"
	"testing"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
)

// BenchmarkDecodeAndPayload is a consumer's cost of one record before its
// handler runs (what internal/inbox does per event): the strict envelope
// decode and the payload's validation and decode. Its payload was
// validated once already, as a record read by several groups of one
// process is: the validation cache answers.
func BenchmarkDecodeAndPayload(b *testing.B) {
	e, err := event.New("order-service", event.FromRequest(event.NewID(), event.Metadata{UserID: "u-1", SessionID: "s-1"}),
		&event.InventoryReserved{OrderID: "o-1", Lines: []event.Line{{ProductID: "p-1", Quantity: 2}, {ProductID: "p-2", Quantity: 1}}})
	if err != nil {
		b.Fatal(err)
	}
	m, err := eventmsg.Encode(context.Background(), e)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		d, err := eventmsg.Decode(m)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.Payload(); err != nil {
			b.Fatal(err)
		}
	}
}
