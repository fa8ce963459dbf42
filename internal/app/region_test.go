package app

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/internal/region"
)

// A standby refuses writes (logging in included) with a 503 naming the
// primary, lets reads through, and once promoted starts the held work, once, and
// accepts writes; demoted, it refuses them again.
func TestRegionGate(t *testing.T) {
	g := &regionGate{primary: "http://a.example:8080", log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	g.standby.Store(true)
	started := 0
	g.hold(func() { started++ })
	h := g.refuseWrites(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	do := func(method, path string) (int, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader("{}")))
		return w.Code, w.Body.String()
	}

	code, body := do("POST", "/api/v1/orders")
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || code != http.StatusServiceUnavailable ||
		e.Error.Code != "unavailable" || !strings.Contains(e.Error.Message, "http://a.example:8080") {
		t.Errorf("a write to a standby: %d %s; want 503 unavailable naming the primary", code, body)
	}
	for _, m := range []string{"PUT", "PATCH", "DELETE"} {
		if code, _ := do(m, "/api/v1/products/x"); code != http.StatusServiceUnavailable {
			t.Errorf("%s to a standby: %d, want 503", m, code)
		}
	}
	if code, _ := do("GET", "/api/v1/orders/x"); code != http.StatusNoContent {
		t.Errorf("a read from a standby: %d, want it served", code)
	}
	// Logging in writes its audit record: a standby's database is a
	// read-only replica, so the login goes to the primary too.
	if code, _ := do("POST", "/api/v1/auth/token"); code != http.StatusServiceUnavailable {
		t.Errorf("logging in to a standby: %d, want 503", code)
	}
	if started != 0 {
		t.Fatalf("held work started %d times before promotion", started)
	}

	g.set(region.State{Role: region.Primary, By: "test"})
	g.set(region.State{Role: region.Primary, By: "test again"})
	if started != 1 {
		t.Errorf("held work started %d times after two promotions, want once", started)
	}
	if code, _ := do("POST", "/api/v1/orders"); code != http.StatusNoContent {
		t.Errorf("a write to the promoted region: %d, want it served", code)
	}
	g.hold(func() { started++ })
	if started != 2 {
		t.Errorf("work held after promotion did not start at once")
	}

	g.set(region.State{Role: region.Standby, By: "test"})
	if code, _ := do("DELETE", "/api/v1/orders/x"); code != http.StatusServiceUnavailable {
		t.Errorf("a write to a demoted region: %d, want 503", code)
	}
}

// A standby forwards logins to the primary it names; a primary that does
// not answer is a 503 naming it, and a login forwarded by another standby
// is not forwarded again (two standbys would bounce it between them).
func TestRegionGateLoginForwarding(t *testing.T) {
	primary := "http://127.0.0.1:1" // nothing listens there
	u, _ := url.Parse(primary)
	g := &regionGate{primary: primary, toPrimary: primaryProxy(u), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	g.standby.Store(true)
	h := g.refuseWrites(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	for _, from := range []string{"", "b.example:8080"} {
		r := httptest.NewRequest("POST", "/api/v1/auth/token", strings.NewReader("{}"))
		if from != "" {
			r.Header.Set(headerFromStandby, from)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		want := "did not answer"
		if from != "" {
			want = "not forwarded again"
		}
		if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), primary) || !strings.Contains(w.Body.String(), want) ||
			w.Header().Get("Retry-After") == "" {
			t.Errorf("a login (from standby %q): %d %s; want 503 naming the primary, saying %q", from, w.Code, w.Body, want)
		}
	}
}
