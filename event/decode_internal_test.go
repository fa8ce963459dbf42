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
