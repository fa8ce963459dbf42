// Package jsonw writes JSON by hand exactly as encoding/json's Marshal
// writes it, for the hot paths that build documents field by field (event
// envelopes, audit blocks, stored events, counters) without reflection.
package jsonw

import "encoding/json"

// AppendString appends s as a JSON string as json.Marshal writes it: as it
// is between quotes when Plain, else through json.Marshal (escapes,
// invalid UTF-8 replaced).
func AppendString(b []byte, s string) []byte {
	if !Plain(s) {
		q, _ := json.Marshal(s) // a string always marshals
		return append(b, q...)
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// Plain reports whether s is ASCII that json.Marshal writes as it is
// between quotes: no control character below 0x20, quote, backslash or
// HTML character it escapes ('<', '>', '&'). Other text may be written
// as it is too (valid UTF-8 mostly is): Plain does not tell.
func Plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
