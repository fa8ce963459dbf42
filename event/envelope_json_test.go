package event_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/event"
)

// TestMarshalIsJSONMarshal: Marshal writes what json.Marshal writes, byte
// for byte, for envelopes built by New, decoded from their own JSON,
// decoded from JSON another producer wrote differently, and changed after
// either.
func TestMarshalIsJSONMarshal(t *testing.T) {
	built, err := event.New("order-service", event.FromRequest("corr-<1>", event.Metadata{UserID: "u1", SessionID: "s&1"}),
		&event.InventoryAdjusted{ProductID: "p<1>", Delta: 3, Reason: "é \u2028 & <b>"})
	if err != nil {
		t.Fatal(err)
	}
	own, err := built.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	envs := map[string]func() *event.Envelope{
		"built":   func() *event.Envelope { return built },
		"decoded": func() *event.Envelope { return decode(t, own) },
	}
	for name, doc := range map[string]string{
		"whitespace":     strings.Replace(validEnvelope, `"data":{`, "\"data\": {\n ", 1),
		"field order":    strings.Replace(validEnvelope, `"source":"order-service",`, ``, 1)[:len(validEnvelope)-len(`"source":"order-service",`)-1] + `,"source":"order-service"}`,
		"offset time":    strings.Replace(validEnvelope, `"2026-03-01T12:34:56.789012Z"`, `"2026-03-01T14:34:56.789012+02:00"`, 1),
		"html unescaped": validEnvelope, // its data holds "<b>&</b>"
		"escapes":        strings.Replace(validEnvelope, `"source":"order-service"`, `"source":"order\u002dservice"`, 1),
		"not utf-8":      strings.Replace(validEnvelope, `"source":"order-service"`, "\"source\":\"ord\xff\xfeer\"", 1),
		"no metadata":    strings.Replace(validEnvelope, `,"metadata":{"userId":"u1","sessionId":"s1"}`, ``, 1),
		"u2028 in data":  strings.Replace(validEnvelope, `"note":"<b>&</b>"`, "\"note\":\"a\u2028b\"", 1),
	} {
		envs[name] = func() *event.Envelope { return decode(t, []byte(doc)) }
	}
	changes := map[string]func(e *event.Envelope){
		"unchanged":   func(*event.Envelope) {},
		"eventId":     func(e *event.Envelope) { e.EventID = event.NewID() },
		"type":        func(e *event.Envelope) { e.EventType = "OrderShipped" },
		"version":     func(e *event.Envelope) { e.EventVersion = "v9" },
		"timestamp":   func(e *event.Envelope) { e.Timestamp = e.Timestamp.Add(time.Microsecond) },
		"local time":  func(e *event.Envelope) { e.Timestamp = e.Timestamp.In(time.FixedZone("X", 3600)) },
		"source":      func(e *event.Envelope) { e.Source = "other" },
		"correlation": func(e *event.Envelope) { e.CorrelationID = "c2" },
		"causation":   func(e *event.Envelope) { e.CausationID = "c3" },
		"data":        func(e *event.Envelope) { e.Data = json.RawMessage(`{"a": 1}`) },
		"user":        func(e *event.Envelope) { e.Metadata.UserID = "u2" },
		"session":     func(e *event.Envelope) { e.Metadata.SessionID = "" },
		"key":         func(e *event.Envelope) { e.Key, e.Partition, e.Offset = "k2", 3, 7 },
	}
	for name, env := range envs {
		for change, f := range changes {
			e := env()
			c := *e // built is shared by the cases: change a copy
			f(&c)
			got, err := c.Marshal()
			if err != nil {
				t.Fatalf("%s, %s: %v", name, change, err)
			}
			want, err := json.Marshal(&c)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s, %s: Marshal gives\n%s\njson.Marshal\n%s", name, change, got, want)
			}
		}
	}
}

// TestMarshalReturnsTheJSONDecodedOrBuilt: Marshal of an envelope decoded
// from its own JSON form returns the very bytes decoded, and of an
// envelope New built the bytes New wrote, every time: nothing is encoded
// again (see Marshal).
func TestMarshalReturnsTheJSONDecodedOrBuilt(t *testing.T) {
	built, err := event.New("order-service", event.FromRequest("corr-1", event.Metadata{UserID: "u1"}),
		&event.InventoryAdjusted{ProductID: "p1", Delta: 3, Reason: "<restock>"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := built.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := built.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if &first[0] != &again[0] {
		t.Errorf("Marshal of a built envelope encoded it again")
	}
	b := bytes.Clone(first)
	got, err := decode(t, b).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if &got[0] != &b[0] || len(got) != len(b) {
		t.Errorf("Marshal of a decoded envelope gave %d bytes of its own, not the %d decoded", len(got), len(b))
	}
}

func decode(t *testing.T, b []byte) *event.Envelope {
	t.Helper()
	e, err := event.Decode(b)
	if err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return e
}

// BenchmarkMarshal is Marshal of an envelope as a service gets it:
// decoded from a record ("decoded": the audit trail, the order saga's
// log) or built by New ("built": eventmsg.Encode), against json.Marshal,
// which Marshal was before it returned the JSON kept:
//
//	go test -run '^$' -bench Marshal -benchmem ./event/
func BenchmarkMarshal(b *testing.B) {
	built, err := event.New("order-service", event.FromRequest(event.NewID(), event.Metadata{UserID: "u-1", SessionID: "s-1"}),
		&event.InventoryReserved{OrderID: "o-1", Lines: []event.Line{{ProductID: "p-1", Quantity: 2}, {ProductID: "p-2", Quantity: 1}},
			Levels: []event.StockLevel{{ProductID: "p-1", Available: 8}, {ProductID: "p-2", Available: 3}}})
	if err != nil {
		b.Fatal(err)
	}
	own, err := built.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	decoded, err := event.Decode(own)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		marshal func() ([]byte, error)
	}{
		{"decoded", decoded.Marshal},
		{"built", built.Marshal},
		{"json.Marshal", func() ([]byte, error) { return json.Marshal(decoded) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(own)))
			for b.Loop() {
				if _, err := c.marshal(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestNewJSON: NewJSON builds the envelope New would build of the payload
// whose JSON it is given, Marshal then returns the JSON without encoding
// it again, and (under the tests) JSON that does not match the schema or
// is not as json.Marshal writes it is refused.
func TestNewJSON(t *testing.T) {
	p := &event.AuditBlockRecorded{Chain: "audit", PrevHash: strings.Repeat("a", 64), Hash: strings.Repeat("b", 64), Part: 1, Parts: 1,
		Records: []event.AuditBlockRecord{{Seq: 1, EventID: event.NewID(), Type: "OrderCreated", Topic: "order-events", Key: "o<1>",
			Envelope: json.RawMessage(`{"eventId":"x","data":{"note":"\u003cb\u003e"}}`)}}}
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	o := event.Origin{CorrelationID: "audit-block-1-1", CausationID: "audit-block-1-1"}
	e, err := event.NewJSON("audit-service", o, p.EventType(), "audit", data)
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := event.Lookup(p.EventType())
	if e.EventVersion != spec.Version || e.Key != "audit" || e.CorrelationID != o.CorrelationID || e.CausationID != o.CausationID ||
		e.Source != "audit-service" || !bytes.Equal(e.Data, data) || len(e.EventID) != 36 || time.Since(e.Timestamp) > time.Minute {
		t.Errorf("NewJSON built %+v", e)
	}
	got, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(e)
	if !bytes.Equal(got, want) {
		t.Errorf("Marshal gives\n%s\njson.Marshal\n%s", got, want)
	}
	if again, _ := e.Marshal(); &again[0] != &got[0] {
		t.Errorf("Marshal encoded the envelope again")
	}
	if got, err := event.Decode(got); err != nil {
		t.Error(err)
	} else if _, err := got.Payload(); err != nil {
		t.Errorf("the payload does not decode: %v", err)
	}
	for name, bad := range map[string]string{
		"not compact":   strings.Replace(string(data), `"chain":`, `"chain": `, 1),
		"not escaped":   strings.Replace(string(data), `o\u003c1\u003e`, `o<1>`, 1),
		"schema":        `{"chain":1}`,
		"not an object": `[]`,
	} {
		if bad == string(data) {
			t.Fatalf("%s: the case changes nothing", name)
		}
		if _, err := event.NewJSON("audit-service", o, p.EventType(), "audit", []byte(bad)); err == nil {
			t.Errorf("%s: NewJSON accepted %s", name, bad)
		}
	}
}

// BenchmarkDecode is Decode of a record as Eventmart publishes it (the
// form Marshal writes: cut apart without the decoder) and of the same
// envelope in another form (a space after the data: the decoder's pass,
// which every record took before):
//
//	go test -run '^$' -bench BenchmarkDecode -benchmem ./event/
func BenchmarkDecode(b *testing.B) {
	e, err := event.New("order-service", event.FromRequest(event.NewID(), event.Metadata{UserID: "u-1", SessionID: "s-1"}),
		&event.InventoryReserved{OrderID: "o-1", Lines: []event.Line{{ProductID: "p-1", Quantity: 2}, {ProductID: "p-2", Quantity: 1}},
			Levels: []event.StockLevel{{ProductID: "p-1", Available: 8}, {ProductID: "p-2", Available: 3}}})
	if err != nil {
		b.Fatal(err)
	}
	own, err := e.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	other := bytes.Replace(own, []byte(`,"metadata"`), []byte(` ,"metadata"`), 1)
	for name, doc := range map[string][]byte{"marshalled": own, "other": other} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				if _, err := event.Decode(doc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzMarshalAfterChange: Marshal writes what json.Marshal writes, byte for
// byte, and fails where it fails (data that is not JSON, a year past
// 9999), for an envelope decoded from any document and then changed in one
// field to any value.
func FuzzMarshalAfterChange(f *testing.F) {
	own, err := event.New("order-service", event.FromRequest("corr-1", event.Metadata{UserID: "u1"}),
		&event.InventoryAdjusted{ProductID: "p1", Delta: 3, Reason: "restock"})
	if err != nil {
		f.Fatal(err)
	}
	doc, err := own.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	for i, s := range []string{"x", "<b>&</b>", "a\u2028b", "ord\xff\xfeer", "tab\there", "", `{"a":1}`, `{"a": 1}`,
		`{"n":"<"}`, `not json`, `[1]`, "\"\\u003c\"", "0123456789"} {
		f.Add(doc, uint8(i), s)
		f.Add([]byte(validEnvelope), uint8(i), s)
	}
	f.Fuzz(func(t *testing.T, b []byte, field uint8, s string) {
		e, err := event.Decode(b)
		if err != nil {
			return
		}
		switch field % 11 {
		case 0:
			e.EventID = s
		case 1:
			e.EventType = event.Type(s)
		case 2:
			e.EventVersion = s
		case 3:
			e.Source = s
		case 4:
			e.CorrelationID = s
		case 5:
			e.CausationID = s
		case 6:
			e.Metadata.UserID = s
		case 7:
			e.Metadata.SessionID = s
		case 8:
			e.Data = json.RawMessage(s)
		case 9: // past year 9999 for a long s
			e.Timestamp = e.Timestamp.AddDate(1000*len(s), 0, 0)
		case 10:
			e.Timestamp = e.Timestamp.In(time.FixedZone(s, (len(s)%50-25)*15*60))
		}
		got, err := e.Marshal()
		want, wantErr := json.Marshal(e)
		if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("field %d set to %q: Marshal gives\n%s (%v)\njson.Marshal\n%s (%v)", field%11, s, got, err, want, wantErr)
		}
	})
}
