package event_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/eventmart/eventmart/event"
)

func TestBound(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{strings.Repeat("a", 10), 10, strings.Repeat("a", 10)},
		{strings.Repeat("a", 30), 20, strings.Repeat("a", 20-len(event.TruncatedMark)) + event.TruncatedMark},
		// Not cut inside a character: é is two bytes.
		{strings.Repeat("é", 20), 20, strings.Repeat("é", 3) + event.TruncatedMark}, // the mark is 14 bytes
	} {
		got := event.Bound(c.in, c.max)
		if got != c.want || len(got) > c.max || !utf8.ValidString(got) {
			t.Errorf("Bound(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}

// New bounds the request fields of security events, whoever built them.
func TestNewBoundsSecurityEvents(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	for _, p := range []event.Payload{
		&event.LoginFailed{Account: huge + "@example.com", Email: event.Plain(huge + "@example.com"), Reason: "invalid-credentials"},
		&event.AccessDenied{Method: huge, Path: "/" + huge, Status: 401, Reason: "r"},
		&event.AdminActionPerformed{AdminID: "a1", Method: huge, Path: "/" + huge, Status: 200},
	} {
		e, err := event.New("test", event.Origin{}, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(e.Data) > 1024 || len(e.Key) > event.MaxEmail || !strings.Contains(string(e.Data), event.TruncatedMark) {
			t.Errorf("%s: %d bytes, key of %d: %.100s", p.EventType(), len(e.Data), len(e.Key), e.Data)
		}
	}
}
