package apptest

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
)

// PoisonRecord is a malformed record for a topic and the reason a
// consumer's dead letter must give for it.
type PoisonRecord struct {
	Kind   string
	Msg    *bus.Message
	Reason string // a substring of the dead letter's error
}

// Poison returns, for topic, one record of each kind of bad input a
// producer outside our control could write: random bytes, JSON that is
// not an envelope, an unknown eventType, an unsupported eventVersion of a
// type the topic carries, and an envelope over event.MaxEnvelopeSize
// (but under Kafka's default 1 MB record limit). Each has key
// "poison-<kind>-<tag>" and the headers such a producer would plausibly
// set; tag keeps records of several calls apart.
func Poison(topic event.Topic, tag string) []PoisonRecord {
	var typ event.Type
	for _, s := range event.Catalog() {
		if s.Topic == topic {
			typ = s.Type
			break
		}
	}
	envelope := func(eventType, version, data string) []byte {
		return []byte(fmt.Sprintf(`{"eventId":"01a20e4e-0000-7000-8000-%012d","eventType":%q,"eventVersion":%q,"timestamp":"2026-11-24T12:00:00Z",`+
			`"source":"poison","correlationId":"poison-%s","causationId":"poison-%s","data":%s,"metadata":{"userId":"","sessionId":""}}`,
			len(tag), eventType, version, tag, tag, data))
	}
	hdr := func(eventType, version string) []bus.Header {
		return []bus.Header{{Key: eventmsg.HeaderEventType, Value: []byte(eventType)}, {Key: eventmsg.HeaderEventVersion, Value: []byte(version)}}
	}
	random := bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef, 0x00, 0xff}, 50)
	huge := envelope(string(typ), "v1", `{"padding":"`+strings.Repeat("x", event.MaxEnvelopeSize)+`"}`)
	recs := []PoisonRecord{
		{"random-bytes", &bus.Message{Value: random}, "malformed JSON"},
		{"not-an-envelope", &bus.Message{Value: []byte(`{"hello":"world","n":[1,2,3]}`), Headers: hdr(string(typ), "v1")}, "unknown field"},
		{"unknown-type", &bus.Message{Value: envelope("OrderTeleported", "v1", `{}`), Headers: hdr("OrderTeleported", "v1")}, "unknown event type"},
		{"unsupported-version", &bus.Message{Value: envelope(string(typ), "v99", `{}`), Headers: hdr(string(typ), "v99")}, "unsupported event version"},
		{"oversized", &bus.Message{Value: huge, Headers: hdr(string(typ), "v1")}, "byte limit"},
	}
	for _, r := range recs {
		r.Msg.Topic = string(topic)
		r.Msg.Key = []byte("poison-" + r.Kind + "-" + tag)
	}
	return recs
}
