package outbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event/eventmsg"
)

// The headers column holds a row's message headers in one of two forms:
//
//   - compact (written since session 11): each header as its key and its
//     value, each preceded by its length in bytes in decimal and a colon,
//     one after the other: "9:eventType12:OrderCreated12:eventVersion2:v3…".
//     No headers is "".
//   - JSON (written before, and still for headers compact cannot hold):
//     json.Marshal of []bus.Header, values in base64:
//     [{"Key":"eventType","Value":"T3JkZXJDcmVhdGVk"},…].
//
// A JSON document starts with '[' (or is "null"), a compact one with a
// digit, so readers tell them apart by the first byte: rows written by a
// release before this one, which may wait in an outbox across an upgrade,
// are read as they were. Compact is written for every header whose key
// and value are valid UTF-8 without NUL, which a TEXT column takes on
// PostgreSQL; any other (a record key in another encoding) is written as
// JSON. Compact costs a tenth of the CPU of JSON both ways: no
// reflection, no base64, and one allocation for all the values of a row
// when read.

// encodeHeaders returns the headers column of hs.
func encodeHeaders(hs []bus.Header) (string, error) {
	n := 0
	for _, h := range hs {
		if !textSafe(h.Key) || !textSafe(h.Value) {
			b, err := json.Marshal(hs)
			return string(b), err
		}
		n += len(h.Key) + len(h.Value) + 8
	}
	var b strings.Builder
	b.Grow(n)
	for _, h := range hs {
		b.WriteString(strconv.Itoa(len(h.Key)))
		b.WriteByte(':')
		b.WriteString(h.Key)
		b.WriteString(strconv.Itoa(len(h.Value)))
		b.WriteByte(':')
		b.Write(h.Value)
	}
	return b.String(), nil
}

// textSafe reports whether s can be written as it is to a TEXT column:
// valid UTF-8 without NUL.
func textSafe[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 || c >= utf8.RuneSelf {
			return !hasNUL(s) && utf8.Valid([]byte(s))
		}
	}
	return true
}

func hasNUL[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

// decodeHeaders parses a headers column in either form (see
// encodeHeaders). The values of a compact one share col's bytes (col is
// the scanned column, a copy of its own), and its keys are the constant
// names of eventmsg where they are one of those: no allocation per header.
func decodeHeaders(col []byte) ([]bus.Header, error) {
	if len(col) == 0 {
		return nil, nil
	}
	if c := col[0]; c < '0' || c > '9' {
		var hs []bus.Header
		if err := json.Unmarshal(col, &hs); err != nil {
			return nil, err
		}
		return hs, nil
	}
	hs := make([]bus.Header, 0, 16)
	for len(col) > 0 {
		var key, value []byte
		var err error
		if key, col, err = cutField(col); err != nil {
			return nil, err
		}
		if value, col, err = cutField(col); err != nil {
			return nil, err
		}
		k, ok := headerKeys[string(key)] // no allocation to look up
		if !ok {
			k = string(key)
		}
		hs = append(hs, bus.Header{Key: k, Value: value[:len(value):len(value)]})
	}
	return hs, nil
}

// errMalformed is returned for a compact headers column that does not parse.
var errMalformed = errors.New("malformed compact headers")

// cutField cuts the first length-prefixed field off b.
func cutField(b []byte) (field, rest []byte, err error) {
	n := 0
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + int(b[i]-'0')
		if n > len(b) {
			return nil, nil, errMalformed
		}
	}
	if i == 0 || i == len(b) || b[i] != ':' || n > len(b)-i-1 {
		return nil, nil, fmt.Errorf("%w at %q", errMalformed, b[:min(len(b), 20)])
	}
	b = b[i+1:]
	return b[:n], b[n:], nil
}

// headerKeys are the header names eventmsg.Encode writes, so that reading
// a row does not allocate them.
var headerKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		eventmsg.HeaderEventType, eventmsg.HeaderEventVersion, eventmsg.HeaderEventID, eventmsg.HeaderCorrelationID,
		eventmsg.HeaderCausationID, eventmsg.HeaderSource, eventmsg.HeaderTraceparent, eventmsg.HeaderTracestate,
		eventmsg.HeaderCESpecVersion, eventmsg.HeaderCEID, eventmsg.HeaderCESource, eventmsg.HeaderCEType, eventmsg.HeaderCETime,
		eventmsg.HeaderCESubject, eventmsg.HeaderCECorrelationID, eventmsg.HeaderCECausationID, eventmsg.HeaderContentType,
	} {
		m[k] = k
	}
	return m
}()
