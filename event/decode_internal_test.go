package event

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzDecodePathsAgree: whatever Decode's one-pass path (decodeValid)
// accepts, its precise path (decodePrecisely) accepts as the same envelope,
// so the fast path changes no verdict and no error.
func FuzzDecodePathsAgree(f *testing.F) {
	valid := `{"eventId":"0190f1c2-7a3b-7c4d-8e5f-0123456789ab","eventType":"OrderCreated","eventVersion":"v1",` +
		`"timestamp":"2026-03-01T12:34:56.789012Z","source":"order-service","correlationId":"req-1","causationId":"req-1",` +
		`"data":{"orderId":"o1"},"metadata":{"userId":"u1","sessionId":"s1"}}`
	for _, s := range []string{
		valid,
		strings.Replace(valid, `"metadata":{"userId":"u1","sessionId":"s1"}`, `"metadata":null`, 1),
		strings.Replace(valid, `,"metadata":{"userId":"u1","sessionId":"s1"}`, ``, 1),
		strings.Replace(valid, `"sessionId":"s1"`, `"sessionId":"s1","ip":"1"`, 1),
		strings.Replace(valid, `"eventId":"0190f1c2-7a3b-7c4d-8e5f-0123456789ab"`, `"eventId":null`, 1),
		strings.Replace(valid, `"data":{"orderId":"o1"}`, `"data":null`, 1),
		strings.Replace(valid, `"source":"order-service"`, `"source":""`, 1),
		strings.Replace(valid, `"eventId":"0190f1c2-7a3b-7c4d-8e5f-0123456789ab"`, `"EVENTID":"0190f1c2-7a3b-7c4d-8e5f-0123456789ab"`, 1),
		strings.Replace(valid, `2026-03-01T12:34:56.789012Z`, `0000-12-31T23:00:00-02:00`, 1),
		valid + ` `, valid + `{}`,
		// The form Marshal writes, cut apart without the decoder (cutCanonical), and near misses.
		strings.Replace(valid, `"data":{"orderId":"o1"}`, `"data":{"n":",\"metadata\":{\"userId\":\"x\",\"sessionId\":\"y\"}}"}`, 1),
		strings.Replace(valid, `"data":{"orderId":"o1"}`, `"data":{"a":{"b":[1,2,{}]},"c":"}}"}`, 1),
		strings.Replace(valid, `"data":{"orderId":"o1"}`, `"data":{"orderId":"o1"}}`, 1),
		strings.Replace(valid, `"data":{"orderId":"o1"}`, `"data":{}`, 1),
		strings.Replace(valid, `"userId":"u1","sessionId":"s1"`, `"userId":"","sessionId":""`, 1),
		strings.Replace(valid, `"userId":"u1"`, `"userId":"u\"1"`, 1),
		strings.Replace(valid, `"source":"order-service"`, `"source":"order-servicé"`, 1),
		strings.Replace(valid, `"source":"order-service"`, `"source":"order\u002dservice"`, 1),
		strings.Replace(valid, `"timestamp":"2026-03-01T12:34:56.789012Z"`, `"timestamp":"2026-03-01T12:34:56.789012+01:00"`, 1),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := decodeValid(b)
		precise, err := decodePrecisely(b)
		if ok && (err != nil || !reflect.DeepEqual(fast, precise)) {
			t.Fatalf("%q: one pass gave %+v, the precise path %+v, %v", b, fast, precise, err)
		}
	})
}

// TestMarshalledEnvelopesAreCut: the envelopes Marshal writes, which are
// the records Eventmart publishes, take cutCanonical's path, not the
// decoder's, and their data is the record's bytes, not a copy.
func TestMarshalledEnvelopesAreCut(t *testing.T) {
	for _, md := range []Metadata{{}, {UserID: "u-1", SessionID: "s-1"}} {
		e, err := New("order-service", FromRequest("corr-1", md), &InventoryAdjusted{ProductID: "p-1", Delta: -2, Reason: "sold"})
		if err != nil {
			t.Fatal(err)
		}
		b, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		f, ok := cutCanonical(b)
		if !ok {
			t.Fatalf("%s was not cut apart", b)
		}
		if f.EventID != e.EventID || f.EventType != string(e.EventType) || f.Source != e.Source || *f.Metadata != md ||
			string(f.Data) != string(e.Data) || &f.Data[0] != &b[len(b)-len(f.Data)-len(`,"metadata":{"userId":"","sessionId":""}}`)-len(md.UserID)-len(md.SessionID)] {
			t.Errorf("%s cut into %+v", b, f)
		}
	}
}
