package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/eventmart/eventmart/internal/jsonw"
)

// Marshal returns e's JSON form: json.Marshal(e), compact, HTML
// characters escaped.
//
// An envelope keeps the JSON it was decoded from (Decode) or built with
// (New), and Marshal returns those bytes as long as they are still e's
// JSON form, byte for byte: a service that records or forwards the
// envelopes it receives (audit, the order saga's log, webhooks) or
// publishes those it built (eventmsg.Encode) does not encode them again.
// Checking costs a copy of the fields and a comparison, a fifth of
// json.Marshal; a record some other producer wrote differently
// (whitespace, field order, escapes) fails it and is encoded. The bytes
// returned may be shared: callers must not modify them.
func (e *Envelope) Marshal() ([]byte, error) {
	if e.raw != nil && e.rawIsJSON() {
		return e.raw, nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("event: marshal envelope %s: %w", e.EventID, err)
	}
	return b, nil
}

// rawIsJSON reports whether e.raw is e's JSON form as json.Marshal
// writes it: the fields written as json.Marshal writes them, with e.Data
// as it is, give e.raw, and e.Data is compact with HTML characters
// escaped, as json.Marshal writes a json.RawMessage (known when New or
// NewJSON wrote e.raw: e.Data is then the data they wrote). Then e.Data
// is also valid JSON: it is the data of e.raw, which Decode or New found
// valid.
func (e *Envelope) rawIsJSON() bool {
	bp := scratch.Get().(*[]byte)
	b, ok := appendEnvelope((*bp)[:0], e)
	same := ok && bytes.Equal(b, e.raw) && (e.built || compactEscaped(e.Data))
	if cap(b) <= 64<<10 {
		*bp = b
		scratch.Put(bp)
	}
	return same
}

// scratch holds the buffers rawIsJSON writes into.
var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// appendEnvelope appends e's JSON form to b as json.Marshal writes it,
// but for e.Data, which it copies as it is. It reports false for an
// envelope it cannot write so (no data, a timestamp not in UTC or beyond
// year 9999): json.Marshal then.
func appendEnvelope(b []byte, e *Envelope) ([]byte, bool) {
	ts := e.Timestamp
	if len(e.Data) == 0 || ts.Location() != time.UTC || ts.Year() < 0 || ts.Year() > 9999 {
		return b, false
	}
	b = append(b, `{"eventId":`...)
	b = jsonw.AppendString(b, e.EventID)
	b = append(b, `,"eventType":`...)
	b = jsonw.AppendString(b, string(e.EventType))
	b = append(b, `,"eventVersion":`...)
	b = jsonw.AppendString(b, e.EventVersion)
	b = append(b, `,"timestamp":"`...)
	b = ts.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","source":`...)
	b = jsonw.AppendString(b, e.Source)
	b = append(b, `,"correlationId":`...)
	b = jsonw.AppendString(b, e.CorrelationID)
	b = append(b, `,"causationId":`...)
	b = jsonw.AppendString(b, e.CausationID)
	b = append(b, `,"data":`...)
	b = append(b, e.Data...)
	b = append(b, `,"metadata":{"userId":`...)
	b = jsonw.AppendString(b, e.Metadata.UserID)
	b = append(b, `,"sessionId":`...)
	b = jsonw.AppendString(b, e.Metadata.SessionID)
	return append(b, "}}"...), true
}

// compactEscaped reports whether the JSON value d is as json.Marshal
// writes a json.RawMessage: no whitespace outside strings, and no '<',
// '>', '&', U+2028 or U+2029 anywhere (it escapes them).
func compactEscaped(d []byte) bool {
	in := false // in a string
	for i := 0; i < len(d); i++ {
		switch c := d[i]; c {
		case '"':
			in = !in
		case '\\':
			i++ // in a string: the escaped character cannot end it
		case ' ', '\t', '\n', '\r':
			if !in {
				return false
			}
		case '<', '>', '&':
			return false
		case 0xE2:
			if i+2 < len(d) && d[i+1] == 0x80 && (d[i+2] == 0xA8 || d[i+2] == 0xA9) {
				return false
			}
		}
	}
	return true
}

// newJSON returns e's JSON form, built by New from the payload's JSON
// (json.Marshal's, so compact and escaped): kept as e.raw.
func newJSON(e *Envelope) []byte {
	n := len(e.Data) + len(e.EventID) + len(e.EventType) + len(e.EventVersion) + len(e.Source) + len(e.CorrelationID) +
		len(e.CausationID) + len(e.Metadata.UserID) + len(e.Metadata.SessionID) + 200
	b, ok := appendEnvelope(make([]byte, 0, n), e)
	if !ok {
		return nil
	}
	return b
}

// NewJSON is New for a payload whose JSON the caller wrote itself, as
// json.Marshal writes it (compact, HTML characters escaped), for a
// payload too large to pay encoding/json's reflection and scanning
// (an audit block: hundreds of kilobytes): the envelope of an event of
// type t at its catalog version, keyed key, holding data as it is. data
// is trusted as New trusts the payloads it marshals: it is validated
// against the schema only when ValidateBuilt is on (under `go test`),
// which also checks that it is compact and escaped; it is not recorded as
// valid for the consumers of the process (see the package doc), which
// would hash it.
func NewJSON(source string, o Origin, t Type, key string, data []byte) (*Envelope, error) {
	spec, ok := Lookup(t)
	if !ok {
		return nil, fmt.Errorf("event: %w: %q", ErrUnknownType, t)
	}
	if ValidateBuilt.Load() {
		if err := ValidatePayload(spec.Type, spec.Version, data); err != nil {
			return nil, err
		}
		if !compactEscaped(data) {
			return nil, fmt.Errorf("event: %w: %s: the JSON is not as json.Marshal writes it (compact, HTML characters escaped)", ErrInvalidPayload, t)
		}
	}
	e := newEnvelope(spec, source, o, data, key)
	// Data the caller got wrong outside the tests is not taken for
	// compact: Marshal checks it, and encodes the envelope if it is not.
	e.raw, e.built = newJSON(e), compactEscaped(data)
	return e, nil
}

// cutCanonical cuts b, an envelope in the form Marshal writes it with
// every string printable ASCII without escapes, into its fields: no
// reflection, and no copy of the data (e.Data is b's). It reports false
// for any other form (decodeValid then decodes it), and for data that is
// not one valid JSON object; the fields are not checked (see
// envelopeFields.envelope). Such a document decodes to these fields
// whatever decoder reads it, so the two paths agree
// (FuzzDecodePathsAgree).
func cutCanonical(b []byte) (envelopeFields, bool) {
	var f envelopeFields
	p, ok := 0, true
	lit := func(s string) {
		if ok = ok && len(b)-p >= len(s) && string(b[p:p+len(s)]) == s; ok {
			p += len(s)
		}
	}
	str := func() string { // a plain string's content, b[p] its first byte
		start := p
		for ; ok && p < len(b) && b[p] != '"'; p++ {
			ok = plain(b[p])
		}
		if ok = ok && p < len(b); !ok {
			return ""
		}
		p++ // the closing quote
		return string(b[start : p-1])
	}
	lit(`{"eventId":"`)
	f.EventID = str()
	lit(`,"eventType":"`)
	f.EventType = str()
	lit(`,"eventVersion":"`)
	f.EventVersion = str()
	lit(`,"timestamp":"`)
	f.Timestamp = str()
	lit(`,"source":"`)
	f.Source = str()
	lit(`,"correlationId":"`)
	f.CorrelationID = str()
	lit(`,"causationId":"`)
	f.CausationID = str()
	lit(`,"data":`)
	if !ok {
		return f, false
	}
	// The metadata, from the end: `,"metadata":{"userId":"U","sessionId":"S"}}`.
	end := len(b)
	back := func(s string) {
		if ok = ok && end-p >= len(s) && string(b[end-len(s):end]) == s; ok {
			end -= len(s)
		}
	}
	backStr := func() string { // a plain string's content, b[end] its closing quote
		stop := end
		for ; ok && end > p && b[end-1] != '"'; end-- {
			ok = plain(b[end-1])
		}
		return string(b[end:stop])
	}
	back(`"}}`)
	session := backStr()
	back(`","sessionId":"`)
	user := backStr()
	back(`,"metadata":{"userId":"`)
	if !ok {
		return f, false
	}
	f.Metadata = &Metadata{UserID: user, SessionID: session}
	f.Data = b[p:end:end]
	if len(f.Data) < 2 || f.Data[0] != '{' || f.Data[len(f.Data)-1] != '}' || !json.Valid(f.Data) {
		return f, false
	}
	return f, true
}

// plain reports whether c stands for itself in a JSON string, whatever
// reads it: printable ASCII other than the quote and the backslash.
func plain(c byte) bool { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\' }
