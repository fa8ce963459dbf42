package outbox

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
)

// BenchmarkHeaders is the cost of an event's headers column, written by
// Add and read by the relay, by hand and through encoding/json (what both
// did before; the column is the same):
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
	col, err := encodeHeaders(m.Headers)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("write", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encodeHeaders(m.Headers); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("write/json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(m.Headers); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeHeaders([]byte(col)); err != nil { // the relay scans the column into a []byte of its own
				b.Fatal(err)
			}
		}
	})
	b.Run("read/json.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var hs []bus.Header
			if err := json.Unmarshal([]byte(col), &hs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// headerCases are headers encodeHeaders and decodeHeaders must treat as
// encoding/json does.
var headerCases = [][]bus.Header{
	nil,
	{},
	{{Key: "eventType", Value: []byte("OrderCreated")}, {Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}},
	{{Key: "k", Value: nil}, {Key: "e", Value: []byte{}}, {Key: "bin", Value: []byte{0, 0xff, '"', '\\', '\n'}}},
	{{Key: "a<b&c>", Value: []byte("x")}},           // escaped by json.Marshal: through it
	{{Key: "clé", Value: []byte("é")}},              // not ASCII
	{{Key: `q"uote`, Value: []byte("1")}},           // a quote in a key
	{{Key: `","Value":`, Value: []byte("trick")}},   // a key that looks like the separator
	{{Key: "", Value: []byte("no key")}},            // an empty key
	{{Key: "ce_time", Value: []byte("2026-12-07")}}, // an eventmsg name
}

// The column is json.Marshal's, and reads back as json.Unmarshal reads it.
func TestHeadersColumnIsJSONMarshal(t *testing.T) {
	for _, hs := range headerCases {
		col, err := encodeHeaders(hs)
		want, werr := json.Marshal(hs)
		if err != nil || werr != nil || col != string(want) {
			t.Errorf("encodeHeaders(%q) = %s, %v; json.Marshal: %s, %v", hs, col, err, want, werr)
		}
		got, err := decodeHeaders([]byte(col))
		var wantHs []bus.Header
		if uerr := json.Unmarshal(want, &wantHs); err != nil || uerr != nil || !reflect.DeepEqual(got, wantHs) {
			t.Errorf("decodeHeaders(%s) = %q, %v; json.Unmarshal: %q, %v", col, got, err, wantHs, uerr)
		}
	}
}

// FuzzDecodeHeaders: decodeHeaders accepts what json.Unmarshal accepts,
// with the same headers, and refuses what it refuses.
func FuzzDecodeHeaders(f *testing.F) {
	for _, hs := range headerCases {
		b, _ := json.Marshal(hs)
		f.Add(b)
		f.Add(bytes.Replace(b, []byte(`=="`), []byte(`==\n"`), 1))
	}
	f.Add([]byte(`[{"Key":"a","Value":"YQ=="}]x`))
	f.Add([]byte(`[{"key":"a","value":"YQ=="}]`))
	f.Add([]byte(` [{"Key":"a","Value":"YQ=="}]`))
	f.Fuzz(func(t *testing.T, col []byte) {
		got, err := decodeHeaders(bytes.Clone(col))
		var want []bus.Header
		werr := json.Unmarshal(col, &want)
		if (err == nil) != (werr == nil) {
			t.Fatalf("decodeHeaders(%q): %v; json.Unmarshal: %v", col, err, werr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeHeaders(%q) = %q; json.Unmarshal: %q", col, got, want)
		}
	})
}
