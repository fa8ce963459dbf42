package apptests

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/app"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/region"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/user"
)

// Two regions' processes: A primary, B a standby naming A. B starts with
// admin settings A's accounts do not match (it ensures no account: its
// database is the primary's replica); a login at B is forwarded to A,
// which records it and issues the token B then accepts (one signing key);
// a refresh goes the same way; a wrong password is A's 401; once A does not
// answer, a login at B is a 503 naming it. GET /api/v1/admin/region tells
// each process's role and what happens to logins.
func TestStandbyForwardsLoginsToThePrimary(t *testing.T) {
	admin := map[string]string{"email": "admin@example.com", "password": "primary admin passphrase"}
	a := apptest.Start(t, []service.Def{user.Def()}, apptest.Settings(map[string]string{
		"EVENTMART_ADMIN_EMAIL": admin["email"], "EVENTMART_ADMIN_PASSWORD": admin["password"],
		// The region that would be primary were A demoted, as regions.sh sets it.
		"EVENTMART_REGION_PRIMARY": "http://region-b.example:8080",
	}))
	b := apptest.Start(t, []service.Def{user.Def()}, apptest.Settings(map[string]string{
		"EVENTMART_REGION_ROLE": "standby", "EVENTMART_REGION_PRIMARY": a.Server.URL,
		// Not A's: a standby must start all the same, creating nothing.
		"EVENTMART_ADMIN_EMAIL": "other-admin@example.com", "EVENTMART_ADMIN_PASSWORD": "another admin passphrase",
	}), func(c *app.Config) {
		// A region cluster with no role recorded: B stays a standby.
		c.RegionWatch = func(ctx context.Context, _ func(region.State)) error { <-ctx.Done(); return nil }
	})

	var tok struct{ Token, RefreshToken string }
	b.JSON("POST", "/api/v1/auth/token", "", admin, http.StatusOK, &tok)
	a.Events.Wait(t, "UserLoggedIn", nil)
	if got := b.Events.All(func(e *event.Envelope) bool { return e.EventType == "UserLoggedIn" }); len(got) != 0 {
		t.Errorf("B published %d UserLoggedIn: the login must be recorded by the primary only", len(got))
	}

	// B's database holds no account: its admin settings ensured none.
	var users struct{ Users []struct{ Email string } }
	b.JSON("GET", "/api/v1/users", tok.Token, nil, http.StatusOK, &users)
	if len(users.Users) != 0 {
		t.Errorf("the standby's user service wrote %d account(s) at start: %+v", len(users.Users), users.Users)
	}

	type regionStatus struct {
		Role, Primary, WritesRefused, Logins, Bus string
		HeldWork                                  int
		Cluster                                   *json.RawMessage
	}
	var st regionStatus
	b.JSON("GET", "/api/v1/admin/region", tok.Token, nil, http.StatusOK, &st)
	if st.Role != "standby" || st.Primary != a.Server.URL || !strings.Contains(st.WritesRefused, a.Server.URL) ||
		st.Logins != "forwarded to the primary at "+a.Server.URL || st.HeldWork != 1 || st.Bus != "embedded" || st.Cluster != nil {
		t.Errorf("B's region status %+v; want standby naming A, logins forwarded, the user service's work held", st)
	}
	st = regionStatus{}
	a.JSON("GET", "/api/v1/admin/region", tok.Token, nil, http.StatusOK, &st)
	if st.Role != "primary" || st.Primary != "" || st.WritesRefused != "" || st.Logins != "served here" || st.HeldWork != 0 {
		t.Errorf("A's region status %+v; want primary (naming no other), logins served, nothing held", st)
	}
	if status, _, _ := b.Do("GET", "/api/v1/admin/region", b.Token("c1", "customer"), nil); status != http.StatusForbidden {
		t.Errorf("a customer read the region status: %d, want 403", status)
	}

	var refreshed struct{ Token string }
	b.JSON("POST", "/api/v1/auth/refresh", "", map[string]string{"refreshToken": tok.RefreshToken}, http.StatusOK, &refreshed)
	if refreshed.Token == "" {
		t.Error("a refresh at B returned no token")
	}
	b.JSON("POST", "/api/v1/auth/token", "", map[string]string{"email": "other-admin@example.com", "password": "another admin passphrase"},
		http.StatusUnauthorized, nil)
	a.Events.Wait(t, "LoginFailed", nil)

	// Other writes are still refused, naming A.
	status, _, body := b.Do("PATCH", "/api/v1/users/me", tok.Token, map[string]string{"name": "x"})
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), a.Server.URL) {
		t.Errorf("a write at B: %d %s; want 503 naming A", status, body)
	}

	a.Server.Close()
	status, hdr, body := b.Do("POST", "/api/v1/auth/token", "", admin)
	if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" ||
		!strings.Contains(string(body), a.Server.URL) || !strings.Contains(string(body), "did not answer") {
		t.Errorf("a login at B with A down: %d %s; want 503 naming A, with Retry-After", status, body)
	}
}
