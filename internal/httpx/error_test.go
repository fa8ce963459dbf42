package httpx_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/internal/httpx"
)

// TestErrorOfAnUnavailableDatabase: a database that went away answers 503
// "unavailable" with Retry-After, not 500 (which a client does not retry);
// a handler's own Retry-After is kept; a bug stays a 500 without one.
// (sqldb's TestUnavailableTellsALostDatabaseFromARefusedStatement gets
// such errors from a real server.)
func TestErrorOfAnUnavailableDatabase(t *testing.T) {
	restarting := fmt.Errorf("order: read order: %w", &pgconn.PgError{Severity: "FATAL", Code: "57P03", Message: "the database system is shutting down"})
	shed := eventmart.Errorf(eventmart.EUNAVAILABLE, "too many orders in progress")
	for _, c := range []struct {
		name       string
		err        error
		set        string // the handler's Retry-After
		status     int
		code       string
		retryAfter string
	}{
		{"database restarting", restarting, "", 503, eventmart.EUNAVAILABLE, "1"},
		{"shed with the handler's wait", shed, "7", 503, eventmart.EUNAVAILABLE, "7"},
		{"shed", shed, "", 503, eventmart.EUNAVAILABLE, "1"},
		{"a bug", fmt.Errorf("order: %w", &pgconn.PgError{Code: "42P01", Message: `relation "orders" does not exist`}), "", 500, eventmart.EINTERNAL, ""},
	} {
		w := httptest.NewRecorder()
		if c.set != "" {
			w.Header().Set("Retry-After", c.set)
		}
		httpx.Error(w, httptest.NewRequest("POST", "/api/v1/orders", nil), c.err)
		var body httpx.ErrorBody
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s: body %q: %v", c.name, w.Body, err)
		}
		if w.Code != c.status || body.Error.Code != c.code || w.Header().Get("Retry-After") != c.retryAfter {
			t.Errorf("%s: %d %q, Retry-After %q; want %d %q, Retry-After %q", c.name, w.Code, body.Error.Code, w.Header().Get("Retry-After"), c.status, c.code, c.retryAfter)
		}
		if c.code == eventmart.EUNAVAILABLE && c.err == restarting && body.Error.Message == "internal error" {
			t.Errorf("%s: message %q, want one that says the database is unavailable", c.name, body.Error.Message)
		}
	}
}
