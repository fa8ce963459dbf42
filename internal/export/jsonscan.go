package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"time"
	"unsafe"

	"github.com/eventmart/eventmart/event"
)

// The export reads a few fields of millions of small JSON documents it
// knows to be valid (the producer built them with encoding/json and checked
// them against their schema): walking the top level of a document and
// slicing out values costs a tenth of encoding/json's reflection, which
// would be most of an export's time.

var errScan = errors.New("export: malformed JSON")

// eachField calls fn with every key (still quoted) and raw value of the
// JSON object b, in order, until fn returns false.
func eachField(b []byte, fn func(key, value []byte) bool) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errScan
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil
	}
	for i < len(b) {
		if b[i] != '"' {
			return errScan
		}
		end := skipString(b, i)
		if end < 0 {
			return errScan
		}
		key := b[i:end]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return errScan
		}
		i = skipSpace(b, i+1)
		end = skipValue(b, i)
		if end < 0 {
			return errScan
		}
		if !fn(key, b[i:end]) {
			return nil
		}
		i = skipSpace(b, end)
		if i >= len(b) {
			return errScan
		}
		if b[i] == '}' {
			return nil
		}
		if b[i] != ',' {
			return errScan
		}
		i = skipSpace(b, i+1)
	}
	return errScan
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] ('"').
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipString(b, j) - 1
				if j < 0 {
					return -1
				}
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\t' && b[j] != '\r' {
			j++
		}
		return j
	}
}

// unquote returns the string the JSON string literal v holds. Without
// escapes (nearly always) the string shares v's memory instead of copying
// it: v must not change afterwards.
func unquote(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return unsafe.String(unsafe.SliceData(v[1:]), len(v)-2), true
	}
	var s string
	return s, json.Unmarshal(v, &s) == nil
}

// decodeEnvelope reads the envelope JSON b, which a producer validated. It
// fails on what is not an envelope at all; it does not validate. e's
// strings and Data share b's memory (one allocation per record, not ten):
// b must not change afterwards.
func decodeEnvelope(b []byte, e *event.Envelope) error {
	var err error
	ok := true
	scanErr := eachField(b, func(k, v []byte) bool {
		switch string(k) {
		case `"eventId"`:
			e.EventID, ok = unquote(v)
		case `"eventType"`:
			var s string
			s, ok = unquote(v)
			e.EventType = event.Type(s)
		case `"eventVersion"`:
			e.EventVersion, ok = unquote(v)
		case `"timestamp"`:
			var s string
			if s, ok = unquote(v); ok {
				e.Timestamp, err = time.Parse(time.RFC3339Nano, s)
				ok = err == nil
			}
		case `"source"`:
			e.Source, ok = unquote(v)
		case `"correlationId"`:
			e.CorrelationID, ok = unquote(v)
		case `"causationId"`:
			e.CausationID, ok = unquote(v)
		case `"data"`:
			e.Data = json.RawMessage(v[:len(v):len(v)])
		case `"metadata"`:
			ok = eachField(v, func(k, v []byte) bool {
				switch string(k) {
				case `"userId"`:
					e.Metadata.UserID, ok = unquote(v)
				case `"sessionId"`:
					e.Metadata.SessionID, ok = unquote(v)
				}
				return ok
			}) == nil && ok
		}
		return ok
	})
	if scanErr != nil || !ok || e.EventID == "" || e.EventType == "" || e.Data == nil {
		return errors.Join(errScan, err)
	}
	return nil
}

// scalar returns the typed value of the JSON scalar v as kind k wants it:
// a string, an int64, a bool, or a time as Unix microseconds; ok is false
// for null or a value of another kind.
func scalar(v []byte, f typedField) (s string, n int64, b bool, ok bool) {
	switch f.kind {
	case kindString:
		s, ok = unquote(v)
	case kindInt:
		var err error
		n, err = strconv.ParseInt(string(v), 10, 64)
		ok = err == nil
	case kindBool:
		b, ok = string(v) == "true", string(v) == "true" || string(v) == "false"
	case kindTime:
		var str string
		if str, ok = unquote(v); ok {
			t, err := time.Parse(time.RFC3339Nano, str)
			n, ok = t.UnixMicro(), err == nil
		}
	}
	return
}
