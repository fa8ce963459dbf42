package event

import (
	"encoding/json"
	"sync"
	"time"
	"unicode/utf8"
)

// The quick check: a payload is checked against its schema in one pass
// over its bytes, without building a tree of it, before the JSON Schema
// library is asked. Decoding a payload into map[string]any and walking the
// schema over it was the largest single cost of a consuming process (a
// twelfth of the Go CPU of the distributed set), and a consumer in its own
// process validates every payload it reads.
//
// The check is conservative: it answers "valid" only when the library
// would, and "not sure" otherwise — for an invalid payload, and for any
// valid one it does not follow (a number with a fraction or an exponent
// where an integer is asked, an escaped object key, a leap second, a
// duplicate key, nesting deeper than maxQuickDepth): those go to the
// library, which has the last word and says why a payload is invalid. A
// schema using a keyword the check does not know is never checked quickly.
// FuzzQuickCheckIsSound holds it to that.

// quickType is a bit set of JSON Schema types.
type quickType uint8

const (
	qNull quickType = 1 << iota
	qBoolean
	qInteger // a number written without fraction or exponent
	qNumber
	qString
	qArray
	qObject
)

var quickTypeOf = map[string]quickType{
	"null": qNull, "boolean": qBoolean, "integer": qInteger, "number": qNumber,
	"string": qString, "array": qArray, "object": qObject,
}

// quickSchema is a schema of the subset the quick check follows: type,
// properties, required, additionalProperties: false, items (one schema),
// oneOf, format: date-time; annotations ($schema, $id, title, description)
// ignored.
type quickSchema struct {
	types    quickType // 0: any type
	props    map[string]quickProp
	required int  // how many properties are required (each has a bit)
	closed   bool // additionalProperties: false
	items    *quickSchema
	oneOf    []*quickSchema
	dateTime bool
}

type quickProp struct {
	s   *quickSchema
	bit uint64 // its bit among the required, or 0
}

// maxQuickDepth bounds the nesting the quick check follows.
const maxQuickDepth = 32

var quickSchemas sync.Map // quickKey -> *quickSchema, or nil when not followed

// quickKey names a schema in quickSchemas without building its file name
// on every payload checked.
type quickKey struct {
	t Type
	v string
}

// quickSchemaOf returns the quick form of the schema of t at version v,
// nil when the schema uses what the quick check does not follow.
func quickSchemaOf(t Type, v string) *quickSchema {
	if s, ok := quickSchemas.Load(quickKey{t, v}); ok {
		return s.(*quickSchema)
	}
	var s *quickSchema
	if b, ok := Schema(t, v); ok {
		var doc map[string]any
		if json.Unmarshal(b, &doc) == nil {
			s, _ = compileQuick(doc, 0)
		}
	}
	quickSchemas.Store(quickKey{t, v}, s)
	return s
}

// compileQuick compiles a schema object; ok is false when it uses a
// keyword, or a form of one, the quick check does not follow.
func compileQuick(doc map[string]any, depth int) (s *quickSchema, ok bool) {
	if depth > maxQuickDepth {
		return nil, false
	}
	s = &quickSchema{}
	var required []any
	for k, v := range doc {
		switch k {
		case "$schema", "$id", "title", "description":
		case "type":
			switch t := v.(type) {
			case string:
				if s.types, ok = quickTypeOf[t]; !ok {
					return nil, false
				}
			case []any:
				for _, e := range t {
					name, _ := e.(string)
					q, ok := quickTypeOf[name]
					if !ok {
						return nil, false
					}
					s.types |= q
				}
			default:
				return nil, false
			}
			if s.types&qNumber != 0 {
				s.types |= qInteger
			}
		case "properties":
			m, isMap := v.(map[string]any)
			if !isMap {
				return nil, false
			}
			s.props = make(map[string]quickProp, len(m))
			for name, sub := range m {
				subDoc, isMap := sub.(map[string]any)
				if !isMap {
					return nil, false
				}
				c, ok := compileQuick(subDoc, depth+1)
				if !ok {
					return nil, false
				}
				s.props[name] = quickProp{s: c}
			}
		case "required":
			if required, ok = v.([]any); !ok {
				return nil, false
			}
		case "additionalProperties":
			b, isBool := v.(bool)
			if !isBool {
				return nil, false
			}
			s.closed = !b
		case "items":
			subDoc, isMap := v.(map[string]any)
			if !isMap {
				return nil, false
			}
			if s.items, ok = compileQuick(subDoc, depth+1); !ok {
				return nil, false
			}
		case "oneOf":
			alts, isList := v.([]any)
			if !isList || len(alts) == 0 {
				return nil, false
			}
			for _, a := range alts {
				subDoc, isMap := a.(map[string]any)
				if !isMap {
					return nil, false
				}
				c, ok := compileQuick(subDoc, depth+1)
				if !ok {
					return nil, false
				}
				s.oneOf = append(s.oneOf, c)
			}
		case "format":
			if v != "date-time" {
				return nil, false
			}
			s.dateTime = true
		default:
			return nil, false
		}
	}
	if len(s.oneOf) > 0 && (s.types != 0 || s.props != nil || required != nil || s.closed || s.items != nil || s.dateTime) {
		return nil, false // oneOf beside other keywords: not in our schemas
	}
	if len(required) > 64 {
		return nil, false
	}
	for _, r := range required {
		name, isString := r.(string)
		if !isString {
			return nil, false
		}
		p, known := s.props[name]
		if !known {
			return nil, false // required but not described: not in our schemas
		}
		if p.bit != 0 {
			return nil, false // named twice
		}
		p.bit = 1 << s.required
		s.required++
		s.props[name] = p
	}
	return s, true
}

// quickValid reports whether data is one JSON value that s certainly
// accepts; false means "not sure".
func quickValid(s *quickSchema, data []byte) bool {
	q := quickScan{b: data}
	q.space()
	if !q.value(s, 0) {
		return false
	}
	q.space()
	return q.i == len(q.b)
}

// quickScan walks a JSON document once.
type quickScan struct {
	b []byte
	i int
}

func (q *quickScan) space() {
	for q.i < len(q.b) {
		switch q.b[q.i] {
		case ' ', '\t', '\n', '\r':
			q.i++
		default:
			return
		}
	}
}

// kind returns the type of the value at q.i, by its first byte (a number
// counts as qNumber), or 0.
func (q *quickScan) kind() quickType {
	if q.i >= len(q.b) {
		return 0
	}
	switch c := q.b[q.i]; {
	case c == '{':
		return qObject
	case c == '[':
		return qArray
	case c == '"':
		return qString
	case c == 't' || c == 'f':
		return qBoolean
	case c == 'n':
		return qNull
	case c == '-' || c >= '0' && c <= '9':
		return qNumber
	}
	return 0
}

// value checks the value at q.i against s (nil: any value) and moves past
// it.
func (q *quickScan) value(s *quickSchema, depth int) bool {
	if depth > maxQuickDepth {
		return false
	}
	k := q.kind()
	if s != nil && len(s.oneOf) > 0 {
		// Exactly one alternative must accept the value: go on only when
		// all but one refuse it outright — its type, or an object's keys
		// (a personal value is a string or a sealed object, a sealed
		// address one of two closed objects) — and check that one.
		var only *quickSchema
		for _, a := range s.oneOf {
			if a.types != 0 && a.types&k == 0 && !(k == qNumber && a.types&qInteger != 0) {
				continue // refuses the type
			}
			if k == qObject && q.refusesKeys(a, depth) {
				continue
			}
			if only != nil {
				return false
			}
			only = a
		}
		if only == nil {
			return false
		}
		s = only
	}
	switch k {
	case qObject:
		return q.accepts(s, qObject) && q.object(s, depth)
	case qArray:
		if !q.accepts(s, qArray) {
			return false
		}
		var items *quickSchema
		if s != nil {
			items = s.items
		}
		return q.array(items, depth)
	case qString:
		if !q.accepts(s, qString) {
			return false
		}
		start := q.i + 1
		plain, ok := q.str()
		if !ok {
			return false
		}
		if s != nil && s.dateTime && !(plain && quickDateTime(q.b[start:q.i-1])) {
			return false
		}
		return true
	case qBoolean:
		return q.accepts(s, qBoolean) && (q.lit("true") || q.lit("false"))
	case qNull:
		return q.accepts(s, qNull) && q.lit("null")
	case qNumber:
		integer, ok := q.number()
		if !ok {
			return false
		}
		if integer {
			return q.accepts(s, qInteger)
		}
		return q.accepts(s, qNumber)
	}
	return false
}

// accepts reports whether s allows type t (for qInteger: an integer or
// any number).
func (q *quickScan) accepts(s *quickSchema, t quickType) bool {
	return s == nil || s.types == 0 || s.types&t != 0
}

func (q *quickScan) object(s *quickSchema, depth int) bool {
	var seen uint64 // the required properties met
	required := 0
	ok := q.members(func(key []byte) bool {
		var sub *quickSchema
		if s != nil {
			p, known := s.props[string(key)]
			switch {
			case known && p.bit != 0:
				if seen&p.bit != 0 {
					return false // named twice: not followed
				}
				seen |= p.bit
				required++
			case known || !s.closed:
				// Named twice, each value is checked; the library keeps
				// the last.
			default:
				return false // not allowed
			}
			sub = p.s
		}
		return q.value(sub, depth+1)
	})
	return ok && (s == nil || required == s.required)
}

// refusesKeys reports whether s certainly refuses the object at q.i for
// its keys alone: one s does not allow, or a required one missing. It
// does not move q; an object it cannot read is not refused.
func (q *quickScan) refusesKeys(s *quickSchema, depth int) bool {
	if !s.closed && s.required == 0 {
		return false
	}
	r := quickScan{b: q.b, i: q.i}
	var seen uint64
	required, refused := 0, false
	ok := r.members(func(key []byte) bool {
		p, known := s.props[string(key)]
		if !known && s.closed {
			refused = true
			return false
		}
		if p.bit != 0 && seen&p.bit == 0 {
			seen |= p.bit
			required++
		}
		return r.value(nil, depth+1)
	})
	return refused || ok && required < s.required
}

// members moves past the object at q.i, calling member with each key
// (not escaped) once q is at its value, which member must move past;
// false means a key or member was not followed, or the object is not
// well formed.
func (q *quickScan) members(member func(key []byte) bool) bool {
	if q.empty('}') {
		return true
	}
	for {
		if q.kind() != qString {
			return false
		}
		start := q.i + 1
		plain, ok := q.str()
		if !ok || !plain {
			return false // an escaped key: not followed
		}
		key := q.b[start : q.i-1]
		q.space()
		if q.i >= len(q.b) || q.b[q.i] != ':' {
			return false
		}
		q.i++
		q.space()
		if !member(key) {
			return false
		}
		if more, ok := q.next('}'); !more {
			return ok
		}
	}
}

func (q *quickScan) array(items *quickSchema, depth int) bool {
	if q.empty(']') {
		return true
	}
	for {
		if !q.value(items, depth+1) {
			return false
		}
		if more, ok := q.next(']'); !more {
			return ok
		}
	}
}

// empty moves past the opening of the object or array at q.i and reports
// whether close follows at once (then past it too).
func (q *quickScan) empty(close byte) bool {
	q.i++
	q.space()
	if q.i < len(q.b) && q.b[q.i] == close {
		q.i++
		return true
	}
	return false
}

// next moves past what follows a member or an element: a comma, another
// one to come (more), or close, the end; ok is false for anything else.
func (q *quickScan) next(close byte) (more, ok bool) {
	q.space()
	if q.i >= len(q.b) {
		return false, false
	}
	switch q.b[q.i] {
	case ',':
		q.i++
		q.space()
		return true, true
	case close:
		q.i++
		return false, true
	}
	return false, false
}

// str moves past the string at q.i; plain says it has no escapes.
// Invalid UTF-8 or a control character is "not sure".
func (q *quickScan) str() (plain, ok bool) {
	q.i++ // "
	plain = true
	for q.i < len(q.b) {
		c := q.b[q.i]
		switch {
		case c == '"':
			q.i++
			return plain, true
		case c == '\\':
			plain = false
			if q.i+1 >= len(q.b) {
				return false, false
			}
			switch q.b[q.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				q.i += 2
			case 'u':
				if q.i+6 > len(q.b) {
					return false, false
				}
				for _, h := range q.b[q.i+2 : q.i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false, false
					}
				}
				q.i += 6
			default:
				return false, false
			}
		case c < 0x20:
			return false, false
		case c < utf8.RuneSelf:
			q.i++
		default:
			r, n := utf8.DecodeRune(q.b[q.i:])
			if r == utf8.RuneError && n <= 1 {
				return false, false
			}
			q.i += n
		}
	}
	return false, false
}

func (q *quickScan) lit(s string) bool {
	if len(q.b)-q.i < len(s) || string(q.b[q.i:q.i+len(s)]) != s {
		return false
	}
	q.i += len(s)
	return true
}

// number moves past the number at q.i (RFC 8259's grammar); integer says
// it has neither fraction nor exponent.
func (q *quickScan) number() (integer, ok bool) {
	digits := func() int {
		n := 0
		for q.i < len(q.b) && q.b[q.i] >= '0' && q.b[q.i] <= '9' {
			q.i++
			n++
		}
		return n
	}
	if q.b[q.i] == '-' {
		q.i++
	}
	if q.i < len(q.b) && q.b[q.i] == '0' {
		q.i++
	} else if digits() == 0 {
		return false, false
	}
	integer = true
	if q.i < len(q.b) && q.b[q.i] == '.' {
		q.i++
		if digits() == 0 {
			return false, false
		}
		integer = false
	}
	if q.i < len(q.b) && (q.b[q.i] == 'e' || q.b[q.i] == 'E') {
		q.i++
		if q.i < len(q.b) && (q.b[q.i] == '+' || q.b[q.i] == '-') {
			q.i++
		}
		if digits() == 0 {
			return false, false
		}
		integer = false
	}
	return integer, true
}

// quickDateTime reports whether s is an RFC 3339 date-time of the form
// 2006-01-02T15:04:05[.fraction](Z|±hh:mm) that draft-07's date-time
// format accepts; a leap second, a lower-case t or z, or any other form is
// "not sure".
func quickDateTime(s []byte) bool {
	if len(s) < 20 || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return false
	}
	if _, err := time.Parse("2006-01-02", string(s[:10])); err != nil {
		return false
	}
	two := func(b []byte, max int) bool {
		return b[0] >= '0' && b[0] <= '9' && b[1] >= '0' && b[1] <= '9' && int(b[0]-'0')*10+int(b[1]-'0') <= max
	}
	if !two(s[11:13], 23) || !two(s[14:16], 59) || !two(s[17:19], 59) {
		return false
	}
	rest := s[19:]
	if len(rest) > 0 && rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 1 {
			return false
		}
		rest = rest[n:]
	}
	if len(rest) == 1 && rest[0] == 'Z' {
		return true
	}
	return len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':' && two(rest[1:3], 23) && two(rest[4:6], 59)
}
