// Package schemagen derives the JSON Schema of every event payload in the
// catalog from its Go type, so the schemas in event/schemas cannot drift
// from the code (a test compares them).
//
// The mapping: a struct is an object with additionalProperties false (a
// closed content model, under which adding an optional field is a
// backward-compatible change); each field is a property named by its json
// tag, required unless the tag says omitempty; string, bool and integer
// kinds map to their JSON types, time.Time to a date-time string,
// json.RawMessage to an object (the only embedded JSON is an envelope), a slice
// to an array that may be null (a nil slice marshals as null), a nested
// struct to an inline object, event.Personal to a string or a sealed object
// and event.PersonalAddress to an address or a sealed object (oneOf).
package schemagen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/eventmart/eventmart/event"
)

// Generate returns the schema document of payload type t (a struct type)
// as event type typ at version v.
func Generate(typ event.Type, v string, t reflect.Type) ([]byte, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	body, err := schemaOf(t, string(typ))
	if err != nil {
		return nil, fmt.Errorf("schemagen: %s %s: %w", typ, v, err)
	}
	doc := obj{
		{"$schema", event.SchemaDialect},
		{"$id", "https://eventmart.dev/schemas/" + event.SchemaFile(typ, v)},
		{"title", fmt.Sprintf("%s %s", typ, v)},
	}
	doc = append(doc, body...)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("schemagen: %s %s: %w", typ, v, err)
	}
	return buf.Bytes(), nil
}

// All returns the schema of every event type at every version, by file
// name (event.SchemaFile).
func All() (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, spec := range event.Catalog() {
		for _, v := range spec.Versions() {
			b, err := Generate(spec.Type, v, reflect.TypeOf(spec.NewAt(v)))
			if err != nil {
				return nil, err
			}
			out[event.SchemaFile(spec.Type, v)] = b
		}
	}
	return out, nil
}

// Write writes All into dir and removes other *.json files there; it
// returns the names of the files it changed or removed.
func Write(dir string) ([]string, error) {
	all, err := All()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("schemagen: %w", err)
	}
	var changed []string
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		path := filepath.Join(dir, n)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, all[n]) {
			continue
		}
		if err := os.WriteFile(path, all[n], 0o644); err != nil {
			return nil, fmt.Errorf("schemagen: %w", err)
		}
		changed = append(changed, n)
	}
	existing, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("schemagen: %w", err)
	}
	for _, p := range existing {
		if _, ok := all[filepath.Base(p)]; !ok {
			if err := os.Remove(p); err != nil {
				return nil, fmt.Errorf("schemagen: %w", err)
			}
			changed = append(changed, filepath.Base(p))
		}
	}
	return changed, nil
}

var (
	timeType     = reflect.TypeOf(time.Time{})
	rawType      = reflect.TypeOf(json.RawMessage{})
	personalType = reflect.TypeOf(event.Personal{})
	addressType  = reflect.TypeOf(event.PersonalAddress{})
	sealedType   = reflect.TypeOf(event.Sealed{})
)

func schemaOf(t reflect.Type, where string) (obj, error) {
	switch {
	case t == timeType:
		return obj{{"type", "string"}, {"format", "date-time"}}, nil
	case t == rawType:
		// Embedded JSON (AuditRecorded.envelope: a recorded envelope, byte
		// for byte): an object, not described further.
		return obj{{"type", "object"}}, nil
	case t == personalType:
		// A personal field: in clear (upcast from a version before
		// sealing) or sealed with its user's key (docs/security.md).
		sealed, err := structSchema(sealedType, where)
		if err != nil {
			return nil, err
		}
		return obj{{"oneOf", []any{obj{{"type", "string"}}, sealed}}}, nil
	case t == addressType:
		// A postal address: in clear (upcast from a version before
		// sealing) or sealed whole with its user's key.
		clear, err := structSchema(reflect.TypeOf(event.Address{}), where)
		if err != nil {
			return nil, err
		}
		sealed, err := structSchema(sealedType, where)
		if err != nil {
			return nil, err
		}
		return obj{{"oneOf", []any{clear, sealed}}}, nil
	case t.Kind() == reflect.String:
		return obj{{"type", "string"}}, nil
	case t.Kind() == reflect.Bool:
		return obj{{"type", "boolean"}}, nil
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return obj{{"type", "integer"}}, nil
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return obj{{"type", "number"}}, nil
	case t.Kind() == reflect.Slice:
		items, err := schemaOf(t.Elem(), where+"[]")
		if err != nil {
			return nil, err
		}
		return obj{{"type", []string{"array", "null"}}, {"items", items}}, nil
	case t.Kind() == reflect.Struct:
		return structSchema(t, where)
	}
	return nil, fmt.Errorf("%s: Go type %s has no JSON Schema mapping", where, t)
}

func structSchema(t reflect.Type, where string) (obj, error) {
	props := obj{}
	required := []string{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		s, err := schemaOf(f.Type, where+"."+name)
		if err != nil {
			return nil, err
		}
		props = append(props, kv{name, s})
		if !strings.Contains(","+opts+",", ",omitempty,") {
			required = append(required, name)
		}
	}
	return obj{
		{"type", "object"},
		{"properties", props},
		{"required", required},
		{"additionalProperties", false},
	}, nil
}

// obj is a JSON object that keeps its keys in order.
type obj []kv

type kv struct {
	k string
	v any
}

// MarshalJSON writes the members in order.
func (o obj) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, err := json.Marshal(m.k)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(m.v)
		if err != nil {
			return nil, err
		}
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}
