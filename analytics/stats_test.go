package analytics

import (
	"encoding/json"
	"testing"
)

// Counters are encoded as json.Marshal encodes them, byte for byte, what
// ever their names (escapes, HTML characters, non-ASCII, invalid UTF-8),
// and decode back.
func TestCountersEncodeAsJSON(t *testing.T) {
	for _, c := range []Counters{nil, {}, {cEvents: 1},
		{"orders|EUR": 3, "orderValue|EUR": -120, cFunnel + "|order": 1 << 62, "productQty|p-1": 0},
		{"productQty|a\"b\\c": 1, "productQty|<b>&amp;": 2, "productQty|ünï": 3, "productQty|\x01\n\t": 4, "productQty|\xff\xfe": 5, "productQty|\u2028": 6},
	} {
		got, err := statsAggregator{}.Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(c)
		if string(got) != string(want) {
			t.Errorf("Encode(%v) = %s, json.Marshal %s", c, got, want)
		}
		back, err := statsAggregator{}.Decode(got)
		if err != nil || len(back) != len(c) {
			t.Errorf("Decode(%s) = %v, %v", got, back, err)
		}
	}
}
