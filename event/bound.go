package event

import "unicode/utf8"

// Bounds of the fields of security events that are copied from requests.
// Whoever sends a request chooses them, anonymously for some, and the
// audit trail keeps them for years: a record must cost a small constant
// whatever was sent (issue #16).
const (
	MaxEmail  = 254 // RFC 5321's longest address
	MaxPath   = 512
	MaxMethod = 16
)

// TruncatedMark ends a field that was cut to its bound, so that a reader
// of the record knows it saw only the beginning.
const TruncatedMark = "…[truncated]"

// Bound returns s if it has at most max bytes, else its beginning cut at a
// character boundary and ended with TruncatedMark, max bytes at most in
// all.
func Bound(s string, max int) string {
	if len(s) <= max {
		return s
	}
	n := max - len(TruncatedMark)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + TruncatedMark
}

// bounded is a payload with fields copied from requests; New bounds them
// before it encodes the payload, whoever built it.
type bounded interface{ bound() }

// A sealed Email was bounded by its producer before sealing (the user
// service: it is an account's own email, already at most MaxEmail).
func (p *LoginFailed) bound() {
	p.Account, p.Email.Clear = Bound(p.Account, MaxEmail), Bound(p.Email.Clear, MaxEmail)
}

func (p *AccessDenied) bound() {
	p.Method, p.Path = Bound(p.Method, MaxMethod), Bound(p.Path, MaxPath)
}

func (p *AdminActionPerformed) bound() {
	p.Method, p.Path = Bound(p.Method, MaxMethod), Bound(p.Path, MaxPath)
}
