package user_test

// The findings of issue #16 that concern accounts, replayed: brute force
// on login (2), tokens that outlive a password change or a logout (3),
// e-mail look-alikes, weak passwords and registration revealing accounts
// (6).

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/app"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/user"
)

// clock is a settable time for the services (app.Config.Now).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func withClock(c *clock) apptest.Option { return func(cfg *app.Config) { cfg.Now = c.Now } }

// try logs in from the client address xff (through the harness, whose
// peer is a trusted loopback proxy) and returns the status and
// Retry-After; status 0 if the request could not be sent.
func try(h *apptest.Harness, email, password, xff string) (int, string) {
	req, err := http.NewRequest("POST", h.Server.URL+"/api/v1/auth/token", strings.NewReader(fmt.Sprintf(`{"email":%q,"password":%q}`, email, password)))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// failAtOnce sends n failed logins concurrently (bcrypt is slow), the
// i-th for who(i) = email, client address, and requires a 401 for each.
// n must stay within the free failures of every key involved: a request
// refused as throttled would not be counted.
func failAtOnce(t *testing.T, h *apptest.Harness, n int, who func(i int) (string, string)) {
	t.Helper()
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			email, xff := who(i)
			statuses[i], _ = try(h, email, "a wrong guess", xff)
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d, want 401", i+1, s)
		}
	}
}

func loginFailures(h *apptest.Harness, reason string) int {
	return len(h.Events.All(func(e *event.Envelope) bool {
		if e.EventType != "LoginFailed" {
			return false
		}
		p, err := e.Payload()
		return err == nil && p.(*event.LoginFailed).Reason == reason
	}))
}

// Finding 2: 40 wrong passwords in 6.7 s, then the right one → 200.
func TestLoginIsThrottledPerAccount(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Now()}
	h := start(t, withClock(c))
	register(h, "ann@example.com", "Ann", "anns passphrase")
	// Each failure from another address: the account's own counter stops
	// it. Sent at once, they all count.
	failAtOnce(t, h, 5, func(i int) (string, string) { return "ann@example.com", fmt.Sprintf("203.0.113.%d", i) })
	if status, _ := try(h, "ann@example.com", "a wrong guess", "203.0.113.5"); status != 401 {
		t.Fatalf("6th failure: status %d, want 401", status)
	}
	// The sixth failure began a delay: even the right password waits.
	status, retry := try(h, "Ann@Example.com", "anns passphrase", "198.51.100.1")
	if status != http.StatusTooManyRequests || retry != "1" {
		t.Fatalf("after 6 failures: %d Retry-After %q, want 429 Retry-After 1", status, retry)
	}
	try(h, "ann@example.com", "anns passphrase", "198.51.100.1")
	h.Events.Wait(t, "LoginFailed", func(e *event.Envelope) bool { return strings.Contains(string(e.Data), "throttled") })
	// Once the delay is over the user gets in, and the counter starts over.
	c.Advance(time.Second)
	if status, _ := try(h, "ann@example.com", "anns passphrase", "198.51.100.1"); status != 200 {
		t.Fatalf("after the delay: status %d, want 200", status)
	}
	if status, _ := try(h, "ann@example.com", "a wrong guess", "198.51.100.1"); status != 401 {
		t.Errorf("a failure after a success: status %d, want 401 (counter reset)", status)
	}
	// An unknown email is throttled the same way, so throttling does not
	// tell which emails have accounts.
	failAtOnce(t, h, 5, func(int) (string, string) { return "nobody@example.com", "203.0.113.77" })
	try(h, "nobody@example.com", "a wrong guess", "203.0.113.77")
	if status, _ := try(h, "nobody@example.com", "a wrong guess", "203.0.113.78"); status != http.StatusTooManyRequests {
		t.Errorf("unknown email: status %d, want 429", status)
	}
	try(h, "nobody@example.com", "a wrong guess", "203.0.113.78")
	// One record per block, not per refused request: two blocks, four refusals.
	h.Eventually("two LoginFailed throttled", func() bool { return loginFailures(h, "throttled") == 2 })
}

// The delays double from the first wait up to the ceiling: an account
// waits at most a minute, so an attacker cannot lock a real user out for
// long.
func TestThrottleDelays(t *testing.T) {
	for _, c := range []struct {
		rule     string
		failures int
		want     time.Duration
	}{
		{"account", 5, 0}, {"account", 6, time.Second}, {"account", 7, 2 * time.Second}, {"account", 11, 32 * time.Second},
		{"account", 12, time.Minute}, {"account", 1000, time.Minute},
		{"address", 20, 0}, {"address", 21, time.Second}, {"address", 30, 512 * time.Second}, {"address", 31, 15 * time.Minute},
	} {
		if got := user.ThrottleDelay(c.rule, c.failures); got != c.want {
			t.Errorf("%s after %d failures: wait %v, want %v", c.rule, c.failures, got, c.want)
		}
	}
}

func TestLoginIsThrottledPerClientAddress(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Now()}
	h := start(t, withClock(c))
	register(h, "bob@example.com", "Bob", "bobs passphrase")
	// One client trying one password on many accounts.
	failAtOnce(t, h, 20, func(i int) (string, string) { return fmt.Sprintf("user%d@example.com", i), "203.0.113.9" })
	if status, _ := try(h, "user20@example.com", "a wrong guess", "203.0.113.9"); status != 401 {
		t.Fatalf("21st failure: status %d, want 401", status)
	}
	if status, retry := try(h, "bob@example.com", "bobs passphrase", "203.0.113.9"); status != http.StatusTooManyRequests || retry != "1" {
		t.Errorf("the address after 21 failures: %d Retry-After %q, want 429 Retry-After 1", status, retry)
	}
	// Bob from elsewhere is not affected.
	if status, _ := try(h, "bob@example.com", "bobs passphrase", "198.51.100.7"); status != 200 {
		t.Errorf("another address: status %d, want 200", status)
	}
}

// X-Forwarded-For is believed only from a trusted proxy: a client cannot
// make up addresses to escape the address counter.
func TestForwardedForFromUntrustedPeerIsIgnored(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Now()}
	h := start(t, withClock(c), apptest.Settings(map[string]string{"EVENTMART_TRUSTED_PROXIES": "10.0.0.0/8"}))
	failAtOnce(t, h, 20, func(i int) (string, string) { return fmt.Sprintf("u%d@example.com", i), fmt.Sprintf("203.0.113.%d", i) })
	try(h, "u20@example.com", "a wrong guess", "203.0.113.20")
	if status, _ := try(h, "u99@example.com", "a wrong guess", "198.51.100.1"); status != http.StatusTooManyRequests {
		t.Errorf("status %d, want 429: the made-up addresses all counted as the peer's", status)
	}
}

// An email no account can have is refused before any work (bcrypt) or
// record: a megabyte of it stores nothing.
func TestLoginWithAnOverlongEmailStoresNothing(t *testing.T) {
	t.Parallel()
	h := start(t)
	long := strings.Repeat("a", 1_000_000) + "@example.com"
	s, _, b := h.Do("POST", "/api/v1/auth/token", "", map[string]any{"email": long, "password": "a wrong guess"})
	wantError(t, s, b, 400, "invalid", "at most 254")
	if status, _ := try(h, "x@example.com", "a wrong guess", ""); status != 401 {
		t.Fatalf("a plain failure: %d", status)
	}
	e := h.Events.Wait(t, "LoginFailed", nil)
	if len(e.Data) > 1000 || len(h.Events.All(func(e *event.Envelope) bool { return e.EventType == "LoginFailed" })) != 1 {
		t.Errorf("LoginFailed records: want only the plain failure's, got %s", e.Data)
	}
}

// tokens logs in and returns the whole answer.
func tokens(h *apptest.Harness, email, password string) user.TokenResponse {
	h.T.Helper()
	var tok user.TokenResponse
	h.JSON("POST", "/api/v1/auth/token", "", map[string]any{"email": email, "password": password}, http.StatusOK, &tok)
	return tok
}

func status(h *apptest.Harness, method, path, token string, body any) int {
	h.T.Helper()
	s, _, _ := h.Do(method, path, token, body)
	return s
}

// Finding 3: a stolen token changed the password without the current one,
// old tokens stayed valid after a password change, and there was no
// logout or revocation.
func TestSessionsEnd(t *testing.T) {
	t.Parallel()
	h := start(t)
	u := register(h, "cat@example.com", "Cat", "cats like boxes")
	a := tokens(h, "cat@example.com", "cats like boxes")
	b := tokens(h, "cat@example.com", "cats like boxes")
	if a.RefreshToken == "" || !a.RefreshExpiresAt.After(a.ExpiresAt) {
		t.Fatalf("login answer %+v: want a refresh token outliving the access token", a)
	}

	// The current password is required, and must be right.
	if s := status(h, "PATCH", "/api/v1/users/me", a.Token, map[string]any{"password": "a brand new phrase"}); s != 400 {
		t.Errorf("password change without currentPassword: %d, want 400", s)
	}
	if s := status(h, "PATCH", "/api/v1/users/me", a.Token, map[string]any{"email": "evil@example.com", "currentPassword": "a wrong guess"}); s != 403 {
		t.Errorf("email change with a wrong currentPassword: %d, want 403", s)
	}
	h.JSON("PATCH", "/api/v1/users/me", a.Token, map[string]any{"password": "a brand new phrase", "currentPassword": "cats like boxes"}, 200, nil)
	// The other session ends; the one that changed the password goes on.
	if s := status(h, "GET", "/api/v1/users/me", b.Token, nil); s != 401 {
		t.Errorf("other session after the password change: %d, want 401", s)
	}
	if s := status(h, "POST", "/api/v1/auth/refresh", "", map[string]any{"refreshToken": b.RefreshToken}); s != 401 {
		t.Errorf("other session's refresh after the password change: %d, want 401", s)
	}
	h.JSON("GET", "/api/v1/users/me", a.Token, nil, 200, nil)

	// Refresh: a new access token of the same session; tokens are not
	// interchangeable.
	var r user.TokenResponse
	h.JSON("POST", "/api/v1/auth/refresh", "", map[string]any{"refreshToken": a.RefreshToken}, 200, &r)
	if r.Token == "" || r.RefreshToken != a.RefreshToken || !r.RefreshExpiresAt.Equal(a.RefreshExpiresAt) {
		t.Errorf("refresh answer %+v", r)
	}
	h.JSON("GET", "/api/v1/users/me", r.Token, nil, 200, nil)
	if s := status(h, "GET", "/api/v1/users/me", a.RefreshToken, nil); s != 401 {
		t.Errorf("a refresh token as an access token: %d, want 401", s)
	}
	if s := status(h, "POST", "/api/v1/auth/refresh", "", map[string]any{"refreshToken": a.Token}); s != 401 {
		t.Errorf("an access token as a refresh token: %d, want 401", s)
	}

	// Logout ends the session: both of its access tokens and its refresh token.
	if s := status(h, "POST", "/api/v1/auth/logout", a.Token, nil); s != 204 {
		t.Fatalf("logout: %d, want 204", s)
	}
	for _, tok := range []string{a.Token, r.Token} {
		if s := status(h, "GET", "/api/v1/users/me", tok, nil); s != 401 {
			t.Errorf("after logout: %d, want 401", s)
		}
	}
	if s := status(h, "POST", "/api/v1/auth/refresh", "", map[string]any{"refreshToken": a.RefreshToken}); s != 401 {
		t.Errorf("refresh after logout: %d, want 401", s)
	}

	// An admin revokes every session; a login right after works.
	c := tokens(h, "cat@example.com", "a brand new phrase")
	other := register(h, "dog@example.com", "Dog", "dogs like sticks")
	dog := tokens(h, "dog@example.com", "dogs like sticks")
	if s := status(h, "DELETE", "/api/v1/users/"+u.ID+"/sessions", dog.Token, nil); s != 404 {
		t.Errorf("a customer revoking another's sessions: %d, want 404", s)
	}
	if s := status(h, "DELETE", "/api/v1/users/"+u.ID+"/sessions", h.Token("admin-1", "admin"), nil); s != 204 {
		t.Fatalf("admin revocation: %d, want 204", s)
	}
	if s := status(h, "GET", "/api/v1/users/me", c.Token, nil); s != 401 {
		t.Errorf("after the admin's revocation: %d, want 401", s)
	}
	h.JSON("GET", "/api/v1/users/me", dog.Token, nil, 200, nil) // another user's session goes on
	d := tokens(h, "cat@example.com", "a brand new phrase")
	h.JSON("GET", "/api/v1/users/me", d.Token, nil, 200, nil)

	// Deactivation ends every session.
	h.JSON("DELETE", "/api/v1/users/me", dog.Token, nil, 200, nil)
	if s := status(h, "POST", "/api/v1/auth/refresh", "", map[string]any{"refreshToken": dog.RefreshToken}); s != 401 {
		t.Errorf("refresh after deactivation: %d, want 401", s)
	}

	h.Events.Wait(t, "SessionsRevoked", func(e *event.Envelope) bool {
		return e.Key == other.ID && strings.Contains(string(e.Data), "deactivated")
	})
	h.Events.Wait(t, "SessionsRevoked", func(e *event.Envelope) bool { return e.Key == u.ID && strings.Contains(string(e.Data), `"revoked"`) })
	reasons := map[string]int{}
	for _, e := range h.Events.All(func(e *event.Envelope) bool { return e.EventType == "SessionsRevoked" }) {
		reasons[payload[*event.SessionsRevoked](t, e).Reason]++
	}
	for _, r := range []string{"password-changed", "logout", "revoked", "deactivated"} {
		if reasons[r] != 1 {
			t.Errorf("SessionsRevoked reasons %v, want one %s", reasons, r)
		}
	}
}

// Finding 6: two accounts for café@ composed and decomposed; zero-width
// and look-alike characters accepted.
func TestEmailsAreNormalised(t *testing.T) {
	t.Parallel()
	h := start(t)
	composed, decomposed := "caf\u00e9@example.com", "cafe\u0301@example.com"
	u := register(h, composed, "Café", "cats like boxes")
	if u.Email != composed {
		t.Errorf("email %q, want NFC %q", u.Email, composed)
	}
	register(h, decomposed, "Cafe", "another passphrase") // answered as a new one…
	var list struct{ Users []user.User }
	h.JSON("GET", "/api/v1/users", h.Token("admin-1", "admin"), nil, 200, &list)
	if len(list.Users) != 1 {
		t.Errorf("%d accounts, want 1: the decomposed address is the same", len(list.Users))
	}
	tokens(h, decomposed, "cats like boxes") // …and it logs in to the one account
	for _, c := range []struct{ name, email, msg string }{
		{"zero-width space", "ann\u200b@example.com", "invisible"},
		{"zero-width joiner in the domain", "ann@exam\u200dple.com", "invisible"},
		{"Hangul filler", "ann\u3164@example.com", "invisible"},
		{"Cyrillic a in a Latin name", "p\u0430ypal@example.com", "mix writing systems"},
		{"Greek omicron in a Latin domain", "ann@g\u03bfogle.com", "mix writing systems"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, _, b := h.Do("POST", "/api/v1/users", "", map[string]any{"email": c.email, "name": "X", "password": "a fine passphrase"})
			wantError(t, s, b, 400, "invalid", c.msg)
		})
	}
	// One script per part is fine, and so is Japanese's mix.
	register(h, "иван@пример.рф", "Иван", "a fine passphrase")
	register(h, "山田たろう@example.jp", "Taro", "a fine passphrase")
}

// Finding 6: eight spaces or "aaaaaaaa" accepted as passwords.
func TestWeakPasswordsAreRefused(t *testing.T) {
	t.Parallel()
	h := start(t)
	for _, pw := range []string{"        ", "aaaaaaaa", "abcdefghi", "qwertzuiop", "19841984", "Eel12345", "eel@example"} {
		s, _, b := h.Do("POST", "/api/v1/users", "", map[string]any{"email": "eel@example.com", "name": "Eel", "password": pw})
		if s != 400 || !strings.Contains(string(b), "password") {
			t.Errorf("password %q: %d %s, want 400 about the password", pw, s, b)
		}
	}
	register(h, "eel@example.com", "Eel", "eels slither at dusk")
}

// Finding 6: registration revealed which emails have accounts (409 naming
// the address).
func TestRegistrationDoesNotRevealAccounts(t *testing.T) {
	t.Parallel()
	h := start(t)
	taken := register(h, "fox@example.com", "Fox", "foxes are quick")
	s1, hd1, b1 := h.Do("POST", "/api/v1/users", "", map[string]any{"email": "Fox@Example.com", "name": "Mallory", "password": "another passphrase"})
	s2, hd2, b2 := h.Do("POST", "/api/v1/users", "", map[string]any{"email": "newt@example.com", "name": "Mallory", "password": "another passphrase"})
	if s1 != s2 || s1 != 201 || (hd1.Get("Location") == "") != (hd2.Get("Location") == "") {
		t.Errorf("taken: %d %s; new: %d %s — want the same answer", s1, b1, s2, b2)
	}
	if strings.Contains(string(b1), taken.ID) || strings.Contains(string(b1), "exists") {
		t.Errorf("answer for a taken email %s reveals the account", b1)
	}
	h.Events.Wait(t, "RegistrationRepeated", apptest.Keyed(taken.ID))
	tokens(h, "fox@example.com", "foxes are quick") // the account is untouched
	if s := status(h, "POST", "/api/v1/auth/token", "", map[string]any{"email": "fox@example.com", "password": "another passphrase"}); s != 401 {
		t.Errorf("the second registration's password: %d, want 401", s)
	}
}
