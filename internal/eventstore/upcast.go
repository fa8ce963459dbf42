package eventstore

import (
	"encoding/json"
	"fmt"
	"time"
)

// Upcaster turns the stored payload of one domain event type at schema
// version From into its payload at version To. It is pure: no I/O, no
// clock, and it sees one event alone (what an older version did not record
// cannot be derived from the stream here).
type Upcaster struct {
	Type     string // the domain event type, e.g. "StockAdjusted"
	From, To string // "v1" → "v2"
	Up       func(data json.RawMessage) (json.RawMessage, error)
}

// Catalog is the schema versions of one kind of stream's domain events and
// the upcasters from their older versions, declared beside the event types
// (inventory/stock.go, payment/ledger.go). Every type is at the catalog's
// base version until an upcaster moves it on: a type's current version —
// the one the code writes and reads — is the end of its chain.
//
// Contract: reading a stored event of an older version runs its chain, one
// step per version, before decoding (Load, ReadStream, ReadCategory and
// ReadAll return events as stored; the catalog's DecodeFrom upcasts). An
// event already at its type's current version is decoded as it is — a map
// lookup, no copy, no reflection — so a catalog without upcasters costs
// nothing on the hot path. Stored events are never rewritten.
type Catalog struct {
	base    string
	current map[string]string        // type → version at the end of its chain, for types with one
	steps   map[catalogStep]Upcaster // (type, from) → the step
	chain   []Upcaster
}

type catalogStep struct{ typ, from string }

// NewCatalog returns the catalog whose types are at base ("v1") unless
// chain upcasts them further. Each (Type, From) may appear once; a chain's
// versions must not loop. Both are checked by Check, which a test of each
// catalog calls, rather than refused here: catalogs are package variables.
func NewCatalog(base string, chain ...Upcaster) *Catalog {
	c := &Catalog{base: base, current: map[string]string{}, steps: map[catalogStep]Upcaster{}, chain: chain}
	for _, u := range chain {
		c.steps[catalogStep{u.Type, u.From}] = u
	}
	for _, u := range chain {
		// The end of the chain: the To no step leaves from.
		v := u.To
		for i := 0; i <= len(chain); i++ {
			next, ok := c.steps[catalogStep{u.Type, v}]
			if !ok {
				break
			}
			v = next.To
		}
		c.current[u.Type] = v
	}
	return c
}

// Check reports a malformed chain: a step declared twice, a step without
// a function, one that loops, or one that does not start at the base
// version or at another step's end.
func (c *Catalog) Check() error {
	chain := c.chain
	seen := map[catalogStep]bool{}
	for _, u := range chain {
		k := catalogStep{u.Type, u.From}
		switch {
		case seen[k]:
			return fmt.Errorf("eventstore: two upcasters of %s from %s", u.Type, u.From)
		case u.Up == nil || u.Type == "" || u.From == "" || u.To == "" || u.From == u.To:
			return fmt.Errorf("eventstore: upcaster of %s from %s to %s is incomplete", u.Type, u.From, u.To)
		}
		seen[k] = true
	}
	for _, u := range chain {
		if u.From == c.base {
			continue
		}
		found := false
		for _, o := range chain {
			found = found || (o.Type == u.Type && o.To == u.From)
		}
		if !found {
			return fmt.Errorf("eventstore: upcaster of %s from %s: no version leads to %s", u.Type, u.From, u.From)
		}
	}
	for _, u := range chain {
		v, steps := u.From, 0
		for ; steps <= len(chain); steps++ {
			next, ok := c.steps[catalogStep{u.Type, v}]
			if !ok {
				break
			}
			v = next.To
		}
		if steps > len(chain) {
			return fmt.Errorf("eventstore: the upcasters of %s loop", u.Type)
		}
	}
	return nil
}

// Version returns the schema version at which the code writes and reads
// events of type typ.
func (c *Catalog) Version(typ string) string {
	if v, ok := c.current[typ]; ok {
		return v
	}
	return c.base
}

// Upcast returns e with its payload at its type's current version, running
// the chain from its stored version; e itself when it is current. A stored
// version no chain leads from (a newer one, written by a later release) is
// an error.
func (c *Catalog) Upcast(e Event) (Event, error) {
	want := c.Version(e.Type)
	for steps := 0; e.SchemaVersion != want; steps++ {
		u, ok := c.steps[catalogStep{e.Type, e.SchemaVersion}]
		if !ok || steps > len(c.steps) {
			return e, fmt.Errorf("eventstore: %s event of schema %s, want %s: no upcaster", e.Type, e.SchemaVersion, want)
		}
		data, err := u.Up(e.Data)
		if err != nil {
			return e, fmt.Errorf("eventstore: upcast %s event from %s to %s: %w", e.Type, u.From, u.To, err)
		}
		e.Data, e.SchemaVersion = data, u.To
	}
	return e, nil
}

// DecodeFrom reads e's data into a domain event of type E after upcasting
// it to its type's current version in c.
func DecodeFrom[E any](c *Catalog, e Event) (E, error) {
	e, err := c.Upcast(e)
	if err != nil {
		var d E
		return d, err
	}
	return Decode[E](e, e.SchemaVersion)
}

// EncodeFor is Encode with each event at its type's current version in c.
func EncodeFor[E any](c *Catalog, events []E, typeOf func(E) string, meta json.RawMessage, at time.Time) ([]Event, error) {
	out, err := Encode(events, typeOf, c.base, meta, at)
	if err != nil {
		return nil, err
	}
	if len(c.current) > 0 {
		for i := range out {
			out[i].SchemaVersion = c.Version(out[i].Type)
		}
	}
	return out, nil
}
