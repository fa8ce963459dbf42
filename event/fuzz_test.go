package event_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/event"
)

// validEnvelope is a well-formed envelope as a producer writes it.
const validEnvelope = `{"eventId":"0190f1c2-7a3b-7c4d-8e5f-0123456789ab","eventType":"OrderCreated","eventVersion":"v1",` +
	`"timestamp":"2026-03-01T12:34:56.789012Z","source":"order-service","correlationId":"req-1","causationId":"req-1",` +
	`"data":{"orderId":"o1","items":[{"productId":"p1","quantity":2}],"note":"<b>&</b>"},"metadata":{"userId":"u1","sessionId":"s1"}}`

// FuzzDecode checks that Decode never panics, that whatever it accepts
// survives Marshal and a second Decode unchanged, that Marshal writes what
// json.Marshal writes (whether it returns the bytes decoded or encodes),
// and that whatever it rejects is rejected as an invalid envelope.
func FuzzDecode(f *testing.F) {
	seeds := []string{
		validEnvelope,
		// Truncated.
		validEnvelope[:len(validEnvelope)/2],
		validEnvelope[:len(validEnvelope)-1],
		"",
		"{",
		// Wrong types.
		strings.Replace(validEnvelope, `"eventVersion":"v1"`, `"eventVersion":1`, 1),
		strings.Replace(validEnvelope, `"data":{`, `"data":[{`, 1) + "]",
		strings.Replace(validEnvelope, `"metadata":{"userId":"u1","sessionId":"s1"}`, `"metadata":"u1"`, 1),
		strings.Replace(validEnvelope, `"metadata":{"userId":"u1","sessionId":"s1"}`, `"metadata":null`, 1),
		strings.Replace(validEnvelope, `"timestamp":"2026-03-01T12:34:56.789012Z"`, `"timestamp":1700000000`, 1),
		strings.Replace(validEnvelope, `"timestamp":"2026-03-01T12:34:56.789012Z"`, `"timestamp":"2026-03-01T12:34:56+14:00"`, 1),
		`[]`, `null`, `"x"`, `42`,
		// Unknown fields, top-level and in metadata; trailing data.
		strings.Replace(validEnvelope, `"source"`, `"extra":true,"source"`, 1),
		strings.Replace(validEnvelope, `"sessionId":"s1"`, `"sessionId":"s1","ip":"1.2.3.4"`, 1),
		validEnvelope + `{}`,
		validEnvelope + ` x`,
		validEnvelope + "\n\t ",
		// Huge strings.
		strings.Replace(validEnvelope, `"source":"order-service"`, `"source":"`+strings.Repeat("s", 4<<10)+`"`, 1),
		strings.Replace(validEnvelope, `"note":"<b>&</b>"`, `"note":"`+strings.Repeat("<\u2028", 512)+`"`, 1),
		// Non-UTF-8.
		strings.Replace(validEnvelope, `"source":"order-service"`, "\"source\":\"ord\xff\xfeer\"", 1),
		strings.Replace(validEnvelope, `"note":"<b>&</b>"`, "\"note\":\"\xc3\x28\"", 1),
		"\xef\xbb\xbf" + validEnvelope,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := event.Decode(b)
		if err != nil {
			if e != nil {
				t.Errorf("Decode returned an envelope and an error: %v", err)
			}
			if !errors.Is(err, event.ErrInvalidEnvelope) {
				t.Fatalf("Decode error %v (%T) does not wrap ErrInvalidEnvelope", err, err)
			}
			return
		}
		out, err := e.Marshal()
		if err != nil {
			t.Fatalf("Decode accepted %q but Marshal fails: %v", b, err)
		}
		if want, err := json.Marshal(e); err != nil || !bytes.Equal(out, want) {
			t.Fatalf("Marshal of %q gives\n%s\njson.Marshal\n%s (%v)", b, out, want, err)
		}
		e2, err := event.Decode(out)
		if err != nil {
			t.Fatalf("Decode accepted %q but rejects its own Marshal %q: %v", b, out, err)
		}
		switch {
		case e.EventID != e2.EventID, e.EventType != e2.EventType, e.EventVersion != e2.EventVersion,
			!e.Timestamp.Equal(e2.Timestamp), e.Source != e2.Source, e.CorrelationID != e2.CorrelationID,
			e.CausationID != e2.CausationID, e.Metadata != e2.Metadata:
			t.Fatalf("round trip changed the envelope:\n first %+v\nsecond %+v", e, e2)
		}
		if d1, d2 := canonical(t, e.Data), canonical(t, e2.Data); !bytes.Equal(d1, d2) {
			t.Fatalf("round trip changed data:\n first %s\nsecond %s", d1, d2)
		}
	})
}

// canonical compacts JSON and applies the HTML escaping Marshal applies to
// raw messages, so data that differs only in insignificant ways compares equal.
func canonical(t *testing.T, b []byte) []byte {
	var c, h bytes.Buffer
	if err := json.Compact(&c, b); err != nil {
		t.Fatalf("data %q is not valid JSON: %v", b, err)
	}
	json.HTMLEscape(&h, c.Bytes())
	return h.Bytes()
}
