package eventstore_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/eventstore"
)

type moved struct {
	Kind string `json:"-"`
	N    int    `json:"n"`
}

func TestEncodeDecode(t *testing.T) {
	at := time.Date(2026, 12, 6, 10, 2, 13, 0, time.UTC)
	meta := eventstore.OriginMetadata(event.Origin{CorrelationID: "c1", CausationID: "e0", Metadata: event.Metadata{UserID: "u1"}})
	if string(meta) != `{"correlationId":"c1","causationId":"e0","userId":"u1"}` {
		t.Fatalf("metadata %s", meta)
	}
	evs, err := eventstore.Encode([]moved{{"Moved", 1}, {"Moved", 2}}, func(m moved) string { return m.Kind }, "v1", meta, at)
	if err != nil || len(evs) != 2 || evs[0].ID == evs[1].ID || evs[1].Type != "Moved" || evs[1].SchemaVersion != "v1" ||
		string(evs[1].Data) != `{"n":2}` || !evs[1].Time.Equal(at) || string(evs[1].Metadata) != string(meta) {
		t.Fatalf("encode = %+v, %v", evs, err)
	}
	m, err := eventstore.Decode[moved](evs[1], "v1")
	if err != nil || m.N != 2 {
		t.Fatalf("decode = %+v, %v", m, err)
	}
	if _, err := eventstore.Decode[moved](evs[1], "v2"); err == nil || !strings.Contains(err.Error(), "schema v1, want v2") {
		t.Fatalf("decode of another schema version: %v", err)
	}
	if _, err := eventstore.Decode[moved](eventstore.Event{Type: "Moved", SchemaVersion: "v1", Data: json.RawMessage(`{"n":"x"}`)}, "v1"); err == nil {
		t.Fatal("decode of bad data did not fail")
	}
}

// TestOriginMetadataIsJSONMarshal: the metadata is what json.Marshal
// writes of its three fields (omitempty), whatever they hold.
func TestOriginMetadataIsJSONMarshal(t *testing.T) {
	for _, o := range []event.Origin{
		{}, {CorrelationID: "c1"}, {CausationID: "e0"}, {Metadata: event.Metadata{UserID: "u1", SessionID: "s1"}},
		{CorrelationID: "c<1>&\"\\\n", CausationID: "é\u2028\xff", Metadata: event.Metadata{UserID: "u1"}},
	} {
		want, err := json.Marshal(struct {
			CorrelationID string `json:"correlationId,omitempty"`
			CausationID   string `json:"causationId,omitempty"`
			UserID        string `json:"userId,omitempty"`
		}{o.CorrelationID, o.CausationID, o.Metadata.UserID})
		if err != nil {
			t.Fatal(err)
		}
		if got := eventstore.OriginMetadata(o); string(got) != string(want) {
			t.Errorf("OriginMetadata(%+v) = %s, want %s", o, got, want)
		}
	}
}
