package eventmsg_test

import (
	"context"
	"testing"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
)

// BenchmarkDecodeAndPayload is a consumer's cost of one record before its
// handler runs (what internal/inbox does per event): the strict envelope
// decode and the payload's validation and decode. Its payload was
// validated once already, as a record read by several groups of one
// process is: the validation cache answers.
func BenchmarkDecodeAndPayload(b *testing.B) {
	m := inventoryReserved(b)
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

// BenchmarkDecodeRecordElevenGroups is that cost for one record of the
// embedded log's tail read by eleven consumer groups, per record: the
// envelope decoded once for all of them in both; the payload decoded
// (validated, unmarshalled) by each group in "afresh", as the inbox did
// before DecodeRecord, and once for all in "shared".
func BenchmarkDecodeRecordElevenGroups(b *testing.B) {
	const groups = 11
	m := inventoryReserved(b)
	for _, shared := range []bool{false, true} {
		name := map[bool]string{false: "afresh", true: "shared"}[shared]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rec := *m // a new record of the tail, with a memo of its own
				bus.NewMemo(&rec)
				for range groups {
					r, err := eventmsg.DecodeRecord(&rec)
					if err != nil {
						b.Fatal(err)
					}
					if !shared {
						if _, err := r.Envelope.Payload(); err != nil {
							b.Fatal(err)
						}
						continue
					}
					if _, err := r.Payload(); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// inventoryReserved is the record of an InventoryReserved of two lines.
func inventoryReserved(b *testing.B) *bus.Message {
	e, err := event.New("order-service", event.FromRequest(event.NewID(), event.Metadata{UserID: "u-1", SessionID: "s-1"}),
		&event.InventoryReserved{OrderID: "o-1", Lines: []event.Line{{ProductID: "p-1", Quantity: 2}, {ProductID: "p-2", Quantity: 1}}})
	if err != nil {
		b.Fatal(err)
	}
	m, err := eventmsg.Encode(context.Background(), e)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkEncode is a producer's cost of one event's record once New
// built it (what outbox.Add does per event): its JSON, key and headers.
//
//	go test -run '^$' -bench Encode -benchmem ./event/eventmsg/
func BenchmarkEncode(b *testing.B) {
	e, err := event.New("order-service", event.FromRequest(event.NewID(), event.Metadata{UserID: "u-1", SessionID: "s-1"}),
		&event.InventoryReserved{OrderID: "o-1", Lines: []event.Line{{ProductID: "p-1", Quantity: 2}, {ProductID: "p-2", Quantity: 1}}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := eventmsg.Encode(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
}
