package eventstore

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/jsonw"
)

// Encode turns a service's domain events into store events: each gets a new
// id, its type (typeOf), schemaVersion, its JSON as data, meta and time at.
func Encode[E any](events []E, typeOf func(E) string, schemaVersion string, meta json.RawMessage, at time.Time) ([]Event, error) {
	out := make([]Event, len(events))
	for i, e := range events {
		data, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("eventstore: encode %s: %w", typeOf(e), err)
		}
		out[i] = Event{ID: event.NewID(), Type: typeOf(e), SchemaVersion: schemaVersion, Data: data, Metadata: meta, Time: at}
	}
	return out, nil
}

// Decode reads e's data into a domain event of type E. A stored event of
// another schema version than the code's is refused: DecodeFrom upcasts it
// through a Catalog first.
func Decode[E any](e Event, schemaVersion string) (E, error) {
	var d E
	if e.SchemaVersion != schemaVersion {
		return d, fmt.Errorf("eventstore: %s event of schema %s, want %s", e.Type, e.SchemaVersion, schemaVersion)
	}
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return d, fmt.Errorf("eventstore: %s event: %w", e.Type, err)
	}
	return d, nil
}

// OriginMetadata is what a domain event records of its cause: the
// correlation and causation ids and the user of the origin o, for history
// reads.
func OriginMetadata(o event.Origin) json.RawMessage {
	// Written by hand, as json.Marshal writes the struct of the three
	// (omitempty): it is written with every domain event.
	b := make([]byte, 0, len(o.CorrelationID)+len(o.CausationID)+len(o.Metadata.UserID)+len(`{"correlationId":"","causationId":"","userId":""}`))
	b = append(b, '{')
	for _, f := range [...]struct{ name, value string }{
		{`"correlationId":`, o.CorrelationID}, {`"causationId":`, o.CausationID}, {`"userId":`, o.Metadata.UserID},
	} {
		if f.value == "" {
			continue
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, f.name...)
		b = jsonw.AppendString(b, f.value)
	}
	return append(b, '}')
}
