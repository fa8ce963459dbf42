package cep

import (
	"encoding/json"
	"testing"
)

// A buffered event's stored form is json.Marshal's, byte for byte, whatever
// its strings and payload (spaces, HTML characters, escapes, not JSON at
// all), and reads back.
func TestBufferedEncodeAsJSON(t *testing.T) {
	for _, b := range []buffered{
		{T: 1, Topic: "order-events", Partition: 3, Offset: 42, ID: "0190-abc", Type: "OrderCreated", Payload: json.RawMessage(`{"orderId":"o1","n":1.5}`)},
		{T: -5, Topic: "t", ID: "id", Type: "X", Payload: json.RawMessage(" {\n \"a\" : [1, 2, {\"b\": \"x y\"}] }\t")},
		{T: 7, Topic: "t", ID: "id", Type: "X", Payload: json.RawMessage(`{"html":"<b>&amp;</b>","ls":"\u2028 ` + "\u2029" + `"}`)},
		{T: 7, Topic: "t\"q", ID: "ü\\", Type: "<X>", Payload: json.RawMessage(`{}`)},
		{T: 7, Topic: "t", ID: "id", Type: "X", Payload: json.RawMessage(`{"a":`)},
		{T: 7, Topic: "t", ID: "id", Type: "X"},
	} {
		want, _ := json.Marshal(&b)
		if got := b.encode(); string(got) != string(want) {
			t.Errorf("encode() = %s, json.Marshal %s", got, want)
		}
		if want == nil {
			continue
		}
		var back buffered
		if err := json.Unmarshal(b.encode(), &back); err != nil || back.T != b.T || back.ID != b.ID || back.Topic != b.Topic {
			t.Errorf("%s reads back as %+v: %v", b.encode(), back, err)
		}
	}
}
