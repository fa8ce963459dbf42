package console

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/eventmart/eventmart/event"
)

// The message browser finds a topic's records by key, by partition and
// offset, and the newest of all partitions, as envelopes.
func TestMessages(t *testing.T) {
	b := openBus(t)
	c := &Console{Bus: b}
	order := event.NewID()
	publish(t, b, event.Origin{}, &event.OrderCancelled{OrderID: order, UserID: "u1", ReasonCode: "timeout", Reason: "first"})
	for range 5 {
		publish(t, b, event.Origin{}, &event.OrderCancelled{OrderID: event.NewID(), UserID: "u2", ReasonCode: "timeout", Reason: "other"})
	}
	publish(t, b, event.Origin{}, &event.OrderCancelled{OrderID: order, UserID: "u1", ReasonCode: "timeout", Reason: "second"})
	get := func(q string) (int, []StreamEvent) {
		rec := httptest.NewRecorder()
		c.Messages(rec, httptest.NewRequest("GET", "/?"+q, nil))
		var body struct{ Messages []StreamEvent }
		json.Unmarshal(rec.Body.Bytes(), &body)
		return rec.Code, body.Messages
	}
	code, byKey := get("topic=order-events&key=" + order)
	if code != 200 || len(byKey) != 2 || byKey[0].Key != order || byKey[1].Offset <= byKey[0].Offset {
		t.Fatalf("by key: %d %+v", code, byKey)
	}
	code, byOffset := get("topic=order-events&partition=" + itoa(byKey[0].Partition) + "&offset=" + itoa64(byKey[0].Offset) + "&limit=1")
	if code != 200 || len(byOffset) != 1 || byOffset[0].EventID != byKey[0].EventID {
		t.Errorf("by offset: %d %+v", code, byOffset)
	}
	code, newest := get("topic=order-events&limit=3")
	found := false
	for _, m := range newest {
		found = found || m.EventID == byKey[1].EventID
	}
	if code != 200 || len(newest) != 3 || !found { // (the last published is among them; equal millisecond timestamps order by partition)
		t.Errorf("newest: %d, %d messages, the last published among them: %v", code, len(newest), found)
	}
	for _, bad := range []string{"topic=nope", "topic=order-events&offset=1", "topic=order-events&sort=x", "topic=order-events&from=yesterday"} {
		if code, _ := get(bad); code != 400 {
			t.Errorf("%s: %d, want 400", bad, code)
		}
	}
}

func itoa(n int32) string   { return itoa64(int64(n)) }
func itoa64(n int64) string { b, _ := json.Marshal(n); return string(b) }
