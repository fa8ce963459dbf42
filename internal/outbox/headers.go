package outbox

import (
	"bytes"
	"encoding/base64"
	"encoding/json"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/jsonw"
)

// The headers column holds a row's message headers as json.Marshal of
// []bus.Header writes them, values in base64:
//
//	[{"Key":"eventType","Value":"T3JkZXJDcmVhdGVk"},…]
//
// The format is the one every release wrote and read: rows wait in an
// outbox across upgrades and rollbacks, and during a rolling upgrade
// instances of two releases relay the same table. What changed is the
// cost: both ways are written by hand for the form json.Marshal gives
// (no reflection; one allocation for all the values of a row read), and
// anything else — a key json.Marshal would escape, a column some other
// writer laid out differently — goes through encoding/json as before.

// encodeHeaders returns the headers column of hs: json.Marshal(hs).
func encodeHeaders(hs []bus.Header) (string, error) {
	n := 2
	for _, h := range hs {
		if !jsonw.Plain(h.Key) {
			b, err := json.Marshal(hs)
			return string(b), err
		}
		n += len(h.Key) + base64.StdEncoding.EncodedLen(len(h.Value)) + len(`{"Key":"","Value":""},`)
	}
	if hs == nil {
		return "null", nil
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, h := range hs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"Key":"`...)
		b = append(b, h.Key...)
		if h.Value == nil {
			b = append(b, `","Value":null}`...)
			continue
		}
		b = append(b, `","Value":"`...)
		b = base64.StdEncoding.AppendEncode(b, h.Value)
		b = append(b, `"}`...)
	}
	return string(append(b, ']')), nil
}

// decodeHeaders parses a headers column (see encodeHeaders). A column in
// json.Marshal's form is cut apart by hand: its keys are the constant
// names of eventmsg where they are one of those, and its values are
// decoded into one buffer; any other goes through json.Unmarshal.
func decodeHeaders(col []byte) ([]bus.Header, error) {
	if hs, ok := cutHeaders(col); ok {
		return hs, nil
	}
	var hs []bus.Header
	if err := json.Unmarshal(col, &hs); err != nil {
		return nil, err
	}
	return hs, nil
}

// cutHeaders parses col in the form encodeHeaders writes by hand; false
// for anything else (json.Unmarshal then decides).
func cutHeaders(col []byte) ([]bus.Header, bool) {
	if string(col) == "null" {
		return nil, true
	}
	if len(col) < 2 || col[0] != '[' || col[len(col)-1] != ']' {
		return nil, false
	}
	body := col[1 : len(col)-1]
	if len(body) == 0 {
		return []bus.Header{}, true
	}
	hs := make([]bus.Header, 0, 16)
	values := make([]byte, 0, base64.StdEncoding.DecodedLen(len(body)))
	for len(body) > 0 {
		if len(hs) > 0 {
			if body[0] != ',' {
				return nil, false
			}
			body = body[1:]
		}
		var key, value []byte
		var ok bool
		if body, ok = bytes.CutPrefix(body, []byte(`{"Key":"`)); !ok {
			return nil, false
		}
		if key, body, ok = bytes.Cut(body, []byte(`","Value":`)); !ok || !jsonw.Plain(string(key)) {
			return nil, false
		}
		k, known := headerKeys[string(key)] // no allocation to look up
		if !known {
			k = string(key)
		}
		if rest, isNull := bytes.CutPrefix(body, []byte(`null}`)); isNull {
			hs, body = append(hs, bus.Header{Key: k}), rest
			continue
		}
		if body, ok = bytes.CutPrefix(body, []byte(`"`)); !ok {
			return nil, false
		}
		// base64 skips line breaks, which a JSON string cannot hold raw.
		if value, body, ok = bytes.Cut(body, []byte(`"}`)); !ok || bytes.ContainsAny(value, "\r\n") {
			return nil, false
		}
		start := len(values)
		values = values[:start+base64.StdEncoding.DecodedLen(len(value))]
		n, err := base64.StdEncoding.Decode(values[start:], value)
		if err != nil {
			return nil, false
		}
		values = values[:start+n]
		hs = append(hs, bus.Header{Key: k, Value: values[start : start+n : start+n]})
	}
	return hs, true
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
