package httpx

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// strictNames walks the JSON document b, already known to be valid and to
// decode into a value of type t, and refuses what encoding/json forgives:
// an object key that names a field of t in another case only, and a key
// given twice in one object. t is nil where the value's shape is not
// declared (interfaces, raw messages, custom unmarshalers): only
// duplicates are checked there. It scans b in place: request bodies are
// on the order path, and json.Decoder.Token allocates per token.
func strictNames(b []byte, t reflect.Type) error {
	w := &walker{b: b}
	return w.value(t)
}

type walker struct {
	b []byte
	i int
}

// peek skips white space and returns the next byte, 0 at the end.
func (w *walker) peek() byte {
	for w.i < len(w.b) {
		switch c := w.b[w.i]; c {
		case ' ', '\t', '\n', '\r':
			w.i++
		default:
			return c
		}
	}
	return 0
}

func (w *walker) value(t reflect.Type) error {
	switch w.peek() {
	case '{':
		return w.object(t)
	case '[':
		return w.array(t)
	case '"':
		w.str()
	default: // a number, true, false or null
		for w.i < len(w.b) {
			switch w.b[w.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return nil
			}
			w.i++
		}
	}
	return nil
}

// str skips a string starting at w.i and returns its raw contents, and
// whether they hold an escape.
func (w *walker) str() ([]byte, bool) {
	start := w.i + 1
	escaped := false
	for w.i++; w.i < len(w.b); w.i++ {
		switch w.b[w.i] {
		case '\\':
			escaped = true
			w.i++
		case '"':
			w.i++
			return w.b[start : w.i-1], escaped
		}
	}
	return w.b[start:], escaped
}

func (w *walker) object(t reflect.Type) error {
	t = declared(t)
	var fields map[string]reflect.Type
	var elem reflect.Type
	if t != nil && t.Kind() == reflect.Struct {
		fields = fieldsOf(t)
	} else if t != nil && t.Kind() == reflect.Map {
		elem = t.Elem()
	}
	var buf [16][]byte
	seen := buf[:0] // objects are small: a slice beats a map
	w.i++           // {
	for {
		switch w.peek() {
		case '}', 0:
			w.i++
			return nil
		case ',':
			w.i++
			w.peek()
		}
		k, escaped := w.str()
		if escaped { // rare: decode it (keys are compared unescaped)
			var s string
			if err := json.Unmarshal(w.b[w.i-len(k)-2:w.i], &s); err != nil {
				return err
			}
			k = []byte(s)
		}
		for _, s := range seen {
			if bytes.Equal(s, k) {
				return fmt.Errorf("duplicate field %q", k)
			}
		}
		seen = append(seen, k)
		next := elem
		if fields != nil {
			ft, ok := fields[string(k)] // no allocation: the compiler looks up the bytes
			if !ok {
				return fmt.Errorf("unknown field %q%s (field names are case-sensitive)", k, suggestion(fields, string(k)))
			}
			next = ft
		}
		w.peek()
		w.i++ // :
		if err := w.value(next); err != nil {
			return err
		}
	}
}

func (w *walker) array(t reflect.Type) error {
	t = declared(t)
	var elem reflect.Type
	if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		elem = t.Elem()
	}
	w.i++ // [
	for {
		switch w.peek() {
		case ']', 0:
			w.i++
			return nil
		case ',':
			w.i++
		}
		if err := w.value(elem); err != nil {
			return err
		}
	}
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// declared is t without pointers, or nil if t decodes itself or is not
// known.
func declared(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() == reflect.Interface {
		return nil
	}
	if p := reflect.PointerTo(t); p.Implements(jsonUnmarshaler) || p.Implements(textUnmarshaler) {
		return nil
	}
	return t
}

func suggestion(fields map[string]reflect.Type, k string) string {
	for name := range fields {
		if strings.EqualFold(name, k) {
			return fmt.Sprintf("; did you mean %q?", name)
		}
	}
	return ""
}

// fieldCache holds the JSON field names of each struct type decoded.
var fieldCache sync.Map // reflect.Type → map[string]reflect.Type

// fieldsOf returns the JSON names of struct type t's fields, as
// encoding/json sees them (tags, untagged exported names, embedded
// structs' fields promoted), with their types.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	addFields(m, t)
	fieldCache.Store(t, m)
	return m
}

func addFields(m map[string]reflect.Type, t reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				addFields(m, ft)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, ok := m[name]; !ok { // the outer struct's field wins
			m[name] = f.Type
		}
	}
}
