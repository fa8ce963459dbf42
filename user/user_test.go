package user_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/settings"
	"github.com/eventmart/eventmart/user"
)

func start(t *testing.T, opts ...apptest.Option) *apptest.Harness {
	return apptest.Start(t, []service.Def{user.Def()}, opts...)
}

// register creates a customer and returns it.
func register(h *apptest.Harness, email, name, password string) user.User {
	h.T.Helper()
	var u user.User
	h.JSON("POST", "/api/v1/users", "", map[string]any{"email": email, "name": name, "password": password}, http.StatusCreated, &u)
	return u
}

// login returns a token for email and password.
func login(h *apptest.Harness, email, password string) string {
	h.T.Helper()
	var tok user.TokenResponse
	h.JSON("POST", "/api/v1/auth/token", "", map[string]any{"email": email, "password": password}, http.StatusOK, &tok)
	return tok.Token
}

// wantError checks an error response's status, code and message.
func wantError(t *testing.T, status int, b []byte, wantStatus int, code, msg string) {
	t.Helper()
	var eb httpx.ErrorBody
	json.Unmarshal(b, &eb)
	if status != wantStatus || eb.Error.Code != code || !strings.Contains(eb.Error.Message, msg) {
		t.Errorf("got %d %s, want %d %s containing %q", status, b, wantStatus, code, msg)
	}
}

func payload[T event.Payload](t *testing.T, e *event.Envelope) T {
	t.Helper()
	p, err := e.Payload()
	if err != nil {
		t.Fatal(err)
	}
	return p.(T)
}

// ofType matches envelopes of one type and key.
func ofType(typ event.Type, key string) func(*event.Envelope) bool {
	return func(e *event.Envelope) bool { return e.EventType == typ && e.Key == key }
}

func TestRegisterThenLogIn(t *testing.T) {
	t.Parallel()
	h := start(t)
	status, hdr, b := h.Do("POST", "/api/v1/users", "", map[string]any{"email": "  Ann@Example.COM ", "name": " Ann ", "password": "correct horse battery"})
	if status != http.StatusCreated {
		t.Fatalf("register: %d %s", status, b)
	}
	if strings.Contains(string(b), "password") || strings.Contains(string(b), "$2a$") {
		t.Errorf("response shows the password or its hash: %s", b)
	}
	var u user.User
	json.Unmarshal(b, &u)
	if u.ID == "" || u.Email != "ann@example.com" || u.Name != "Ann" || u.Role != "customer" || u.Status != "active" || u.CreatedAt.IsZero() {
		t.Fatalf("registered %+v", u)
	}
	if hdr.Get("Location") != "/api/v1/users/"+u.ID {
		t.Errorf("Location %q", hdr.Get("Location"))
	}
	e := h.Events.Wait(t, "UserRegistered", apptest.Keyed(u.ID))
	reg := payload[*event.UserRegistered](t, e)
	if h.Open(reg.Email) != "ann@example.com" || h.Open(reg.Name) != "Ann" || reg.Role != "customer" {
		t.Errorf("UserRegistered %+v", reg)
	}
	if e.Source != "user-service" || e.Metadata.UserID != u.ID {
		t.Errorf("envelope %+v", e)
	}
	if strings.Contains(string(e.Data), "correct horse") {
		t.Errorf("event carries the password: %s", e.Data)
	}

	var tok user.TokenResponse
	h.JSON("POST", "/api/v1/auth/token", "", map[string]any{"email": "ANN@example.com", "password": "correct horse battery"}, http.StatusOK, &tok)
	if tok.TokenType != "Bearer" || !tok.ExpiresAt.After(time.Now()) {
		t.Errorf("token response %+v", tok)
	}
	id, err := h.Tokens.Verify(tok.Token)
	if err != nil || id.UserID != u.ID || id.Role != "customer" || id.Email != "ann@example.com" || id.Name != "Ann" || id.SessionID == "" {
		t.Errorf("token identity %+v, %v", id, err)
	}
	var me user.User
	h.JSON("GET", "/api/v1/users/me", tok.Token, nil, http.StatusOK, &me)
	if me.ID != u.ID || me.Email != u.Email {
		t.Errorf("me %+v", me)
	}
}

func TestRegistrationValidation(t *testing.T) {
	t.Parallel()
	h := start(t)
	register(h, "taken@example.com", "Taken", "a fine passphrase")
	long := strings.Repeat("a", 250) + "@x.io" // 255 bytes
	for _, c := range []struct {
		name, body string
		status     int
		code, msg  string
	}{
		{"short password", `{"email":"a@example.com","name":"A","password":"short12"}`, 400, "invalid", "password must be at least 8 characters"},
		{"short multibyte password", `{"email":"a@example.com","name":"A","password":"ééééééé"}`, 400, "invalid", "at least 8 characters"},
		{"long password", `{"email":"a@example.com","name":"A","password":"` + strings.Repeat("x", 257) + `"}`, 400, "invalid", "at most 256 characters"},
		{"common password", `{"email":"a@example.com","name":"A","password":"password"}`, 400, "invalid", "most commonly used passwords"},
		{"common password any case", `{"email":"a@example.com","name":"A","password":"QwertyUIOP"}`, 400, "invalid", "most commonly used passwords"},
		{"numeric common password", `{"email":"a@example.com","name":"A","password":"12345678"}`, 400, "invalid", "most commonly used passwords"},
		{"password is the email", `{"email":"longname@example.com","name":"A","password":"LongName@example.com"}`, 400, "invalid", "must not be your email"},
		{"missing password", `{"email":"a@example.com","name":"A"}`, 400, "invalid", "password is required"},
		{"bad email", `{"email":"not-an-email","name":"A","password":"a fine passphrase"}`, 400, "invalid", "email must be a valid address"},
		{"email with display name", `{"email":"Ann <a@example.com>","name":"A","password":"a fine passphrase"}`, 400, "invalid", "email must be a valid address"},
		{"email too long", `{"email":"` + long + `","name":"A","password":"a fine passphrase"}`, 400, "invalid", "email must be at most 254"},
		{"missing email", `{"name":"A","password":"a fine passphrase"}`, 400, "invalid", "email is required"},
		{"blank name", `{"email":"a@example.com","name":"  ","password":"a fine passphrase"}`, 400, "invalid", "name must be 1-200 characters"},
		{"name too long", `{"email":"a@example.com","name":"` + strings.Repeat("n", 201) + `","password":"a fine passphrase"}`, 400, "invalid", "name must be 1-200"},
		{"control character in name", `{"email":"a@example.com","name":"A\nB","password":"a fine passphrase"}`, 400, "invalid", "control characters"},
		{"unknown field", `{"email":"a@example.com","name":"A","password":"a fine passphrase","role":"admin"}`, 400, "invalid", `unknown field "role"`},
		{"malformed", `{"email":`, 400, "invalid", "JSON"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, _, b := h.Do("POST", "/api/v1/users", "", c.body)
			wantError(t, status, b, c.status, c.code, c.msg)
		})
	}
	// No composition rules: nine plain letters, or a few accented ones, will do.
	register(h, "plain@example.com", "Plain", "qzvtmwpkr")
	register(h, "accent@example.com", "Accent", "vélo-bœuf")
	var list struct{ Users []user.User }
	h.JSON("GET", "/api/v1/users", h.Token("admin-1", "admin"), nil, http.StatusOK, &list)
	if len(list.Users) != 3 {
		t.Errorf("%d users, want 3 (the failed registrations stored nothing)", len(list.Users))
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	h := start(t)
	u := register(h, "bob@example.com", "Bob", "bobs secret phrase")
	for _, c := range []struct {
		name, body string
		status     int
		code, msg  string
	}{
		{"wrong password", `{"email":"bob@example.com","password":"not bobs phrase"}`, 401, "unauthorized", "invalid email or password"},
		{"unknown email", `{"email":"nobody@example.com","password":"bobs secret phrase"}`, 401, "unauthorized", "invalid email or password"},
		{"missing password", `{"email":"bob@example.com"}`, 400, "invalid", "email and password are required"},
		{"unknown field", `{"email":"bob@example.com","password":"x","otp":1}`, 400, "invalid", `unknown field "otp"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, _, b := h.Do("POST", "/api/v1/auth/token", "", c.body)
			wantError(t, status, b, c.status, c.code, c.msg)
		})
	}
	tok := login(h, " BOB@example.com", "bobs secret phrase")

	// Deactivation: the account stays readable to admins but logs in no more.
	var gone user.User
	h.JSON("DELETE", "/api/v1/users/me", tok, nil, http.StatusOK, &gone)
	if gone.Status != "deactivated" || gone.ID != u.ID {
		t.Errorf("deactivated %+v", gone)
	}
	e := h.Events.Wait(t, "UserDeactivated", apptest.Keyed(u.ID))
	if p := payload[*event.UserDeactivated](t, e); p.UserID != u.ID || e.Metadata.UserID != u.ID {
		t.Errorf("UserDeactivated %+v, metadata %+v", p, e.Metadata)
	}
	status, _, b := h.Do("POST", "/api/v1/auth/token", "", `{"email":"bob@example.com","password":"bobs secret phrase"}`)
	wantError(t, status, b, 401, "unauthorized", "account deactivated")
	status, _, b = h.Do("POST", "/api/v1/auth/token", "", `{"email":"bob@example.com","password":"a wrong guess"}`)
	wantError(t, status, b, 401, "unauthorized", "invalid email or password")

	// Its still valid token is refused on the account's own endpoints.
	for _, m := range []string{"GET", "PATCH", "DELETE"} {
		status, _, b := h.Do(m, "/api/v1/users/me", tok, `{"name":"Bobby"}`)
		wantError(t, status, b, 401, "unauthorized", "account deactivated")
	}
	status, _, b = h.Do("GET", "/api/v1/users/"+u.ID, tok, nil)
	wantError(t, status, b, 401, "unauthorized", "account deactivated")
	var seen user.User
	h.JSON("GET", "/api/v1/users/"+u.ID, h.Token("admin-1", "admin"), nil, http.StatusOK, &seen)
	if seen.Status != "deactivated" {
		t.Errorf("admin sees %+v", seen)
	}
	if n := len(h.Events.All(ofType("UserDeactivated", u.ID))); n != 1 {
		t.Errorf("%d UserDeactivated events, want 1", n)
	}

	// Logins are security events on audit-events: one success, and each
	// refusal with its reason: an account's under its id, the email sealed;
	// the unknown email under its own key, in clear.
	in := h.Events.Wait(t, "UserLoggedIn", apptest.Keyed(u.ID))
	if p := payload[*event.UserLoggedIn](t, in); h.Open(p.Email) != "bob@example.com" || p.Role != "customer" || in.Metadata.UserID != u.ID || in.Source != "user-service" {
		t.Errorf("UserLoggedIn %+v, metadata %+v", p, in.Metadata)
	}
	h.Events.Wait(t, "LoginFailed", apptest.Keyed("nobody@example.com"))
	var reasons []string
	h.Eventually("three failed logins of bob", func() bool {
		reasons = nil
		for _, e := range h.Events.All(ofType("LoginFailed", u.ID)) {
			p := payload[*event.LoginFailed](t, e)
			reasons = append(reasons, p.Reason)
			if strings.Contains(string(e.Data), "bob@") || h.Open(p.Email) != "bob@example.com" {
				t.Errorf("LoginFailed of an account: %s", e.Data)
			}
		}
		return len(reasons) == 3
	})
	if want := "invalid-credentials deactivated invalid-credentials"; strings.Join(reasons, " ") != want {
		t.Errorf("LoginFailed reasons %q, want %q", reasons, want)
	}
	if event.TopicOf("LoginFailed") != event.TopicAudit {
		t.Errorf("LoginFailed goes to %s", event.TopicOf("LoginFailed"))
	}
}

func TestUpdateProfileEmitsChangedFields(t *testing.T) {
	t.Parallel()
	h := start(t)
	u := register(h, "cat@example.com", "Cat", "cats like boxes")
	register(h, "dog@example.com", "Dog", "dogs like sticks")
	tok := login(h, "cat@example.com", "cats like boxes")

	var got user.User
	h.JSON("PATCH", "/api/v1/users/me", tok, map[string]any{"name": "Catherine"}, http.StatusOK, &got)
	if got.Name != "Catherine" || !got.UpdatedAt.After(u.UpdatedAt.Add(-time.Millisecond)) {
		t.Errorf("after name change %+v", got)
	}
	// Nothing changes: the same name, the same email in another case, the
	// current password. No event.
	h.JSON("PATCH", "/api/v1/users/me", tok, map[string]any{"name": "Catherine", "email": "CAT@example.com", "password": "cats like boxes"}, http.StatusOK, &got)
	h.JSON("PATCH", "/api/v1/users/me", tok, map[string]any{}, http.StatusOK, &got)

	h.JSON("PATCH", "/api/v1/users/me", tok, map[string]any{"name": "Catherine", "email": "kitty@example.com", "password": "a brand new phrase", "currentPassword": "cats like boxes"}, http.StatusOK, &got)
	if got.Email != "kitty@example.com" {
		t.Errorf("after email change %+v", got)
	}
	// The events of one user share a partition and arrive in order, so
	// once the second is there any event in between would be too.
	h.Events.Wait(t, "UserUpdated", func(e *event.Envelope) bool {
		return e.Key == u.ID && slices.Contains(payload[*event.UserUpdated](t, e).Changed, "email")
	})
	var changes [][]string
	for _, e := range h.Events.All(ofType("UserUpdated", u.ID)) {
		p := payload[*event.UserUpdated](t, e)
		changes = append(changes, p.Changed)
		if strings.Contains(string(e.Data), "brand new") || strings.Contains(string(e.Data), "boxes") {
			t.Errorf("UserUpdated carries a password: %s", e.Data)
		}
		if h.Open(p.Email) != "kitty@example.com" && slices.Contains(p.Changed, "email") {
			t.Errorf("UserUpdated %+v", p)
		}
	}
	if len(changes) != 2 || !slices.Equal(changes[0], []string{"name"}) || !slices.Equal(changes[1], []string{"email", "password"}) {
		t.Errorf("changed lists %v, want [[name] [email password]]", changes)
	}

	login(h, "kitty@example.com", "a brand new phrase")
	status, _, b := h.Do("POST", "/api/v1/auth/token", "", `{"email":"kitty@example.com","password":"cats like boxes"}`)
	wantError(t, status, b, 401, "unauthorized", "invalid email or password")

	for _, c := range []struct {
		name, body string
		status     int
		code, msg  string
	}{
		{"email taken", `{"email":"Dog@example.com","currentPassword":"a brand new phrase"}`, 409, "conflict", "dog@example.com already exists"},
		{"bad email", `{"email":"kitty"}`, 400, "invalid", "email must be a valid address"},
		{"common password", `{"password":"iloveyou"}`, 400, "invalid", "most commonly used"},
		{"short password", `{"password":"abc"}`, 400, "invalid", "at least 8 characters"},
		{"empty name", `{"name":""}`, 400, "invalid", "name must be"},
		{"role", `{"role":"admin"}`, 400, "invalid", `unknown field "role"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, _, b := h.Do("PATCH", "/api/v1/users/me", tok, c.body)
			wantError(t, status, b, c.status, c.code, c.msg)
		})
	}
}

func TestAuthorization(t *testing.T) {
	t.Parallel()
	h := start(t)
	ann := register(h, "ann@example.com", "Ann", "anns passphrase")
	bob := register(h, "bob@example.com", "Bob", "bobs passphrase")
	annTok := login(h, "ann@example.com", "anns passphrase")
	admin := h.Token("admin-1", "admin")
	for _, c := range []struct {
		name, method, path, token string
		status                    int
		code, msg                 string
	}{
		{"anonymous me", "GET", "/api/v1/users/me", "", 401, "unauthorized", "authentication required"},
		{"anonymous update", "PATCH", "/api/v1/users/me", "", 401, "unauthorized", "authentication required"},
		{"anonymous list", "GET", "/api/v1/users", "", 401, "unauthorized", "authentication required"},
		{"customer list", "GET", "/api/v1/users", annTok, 403, "forbidden", "admins only"},
		{"anonymous get", "GET", "/api/v1/users/" + ann.ID, "", 401, "unauthorized", "authentication required"},
		{"other customer", "GET", "/api/v1/users/" + bob.ID, annTok, 404, "not_found", "not found"},
		{"unknown user", "GET", "/api/v1/users/nope", admin, 404, "not_found", "not found"},
		{"token of no account", "GET", "/api/v1/users/me", h.Token("ghost", "customer"), 404, "not_found", "not found"},
		{"bad limit", "GET", "/api/v1/users?limit=0", admin, 400, "invalid", "limit"},
		{"bad offset", "GET", "/api/v1/users?offset=-1", admin, 400, "invalid", "offset"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, _, b := h.Do(c.method, c.path, c.token, nil)
			wantError(t, status, b, c.status, c.code, c.msg)
		})
	}
	var self user.User
	h.JSON("GET", "/api/v1/users/"+ann.ID, annTok, nil, http.StatusOK, &self)
	h.JSON("GET", "/api/v1/users/"+bob.ID, admin, nil, http.StatusOK, &self)
	if self.Email != "bob@example.com" {
		t.Errorf("admin got %+v", self)
	}
	var list struct {
		Users         []user.User
		Limit, Offset int
	}
	h.JSON("GET", "/api/v1/users?limit=1&offset=1", admin, nil, http.StatusOK, &list)
	if len(list.Users) != 1 || list.Users[0].ID != bob.ID || list.Limit != 1 || list.Offset != 1 {
		t.Errorf("page %+v", list)
	}
}

func TestAdminBootstrap(t *testing.T) {
	t.Parallel()
	h := start(t, apptest.Settings(map[string]string{
		"EVENTMART_ADMIN_EMAIL": "Root@Example.com", "EVENTMART_ADMIN_PASSWORD": "root passphrase",
	}))
	tok := login(h, "root@example.com", "root passphrase")
	id, _ := h.Tokens.Verify(tok)
	if id.Role != "admin" {
		t.Fatalf("bootstrap admin has role %q", id.Role)
	}
	e := h.Events.Wait(t, "UserRegistered", apptest.Keyed(id.UserID))
	if p := payload[*event.UserRegistered](t, e); p.Role != "admin" || h.Open(p.Email) != "root@example.com" {
		t.Errorf("UserRegistered %+v", p)
	}
	h.JSON("GET", "/api/v1/users", tok, nil, http.StatusOK, nil)

	// A restart with the same settings runs the same code path: nothing
	// changes, nothing is emitted.
	svc := h.App.Service("user").(*user.Service)
	ctx := context.Background()
	if _, err := svc.EnsureAdmin(ctx, "root@example.com", "root passphrase"); err != nil {
		t.Fatal(err)
	}
	// A new password in the settings is applied.
	if _, err := svc.EnsureAdmin(ctx, "root@example.com", "new root phrase"); err != nil {
		t.Fatal(err)
	}
	upd := h.Events.Wait(t, "UserUpdated", apptest.Keyed(id.UserID))
	if p := payload[*event.UserUpdated](t, upd); !slices.Equal(p.Changed, []string{"password"}) {
		t.Errorf("changed %v, want [password]", p.Changed)
	}
	if n, m := len(h.Events.All(ofType("UserRegistered", id.UserID))), len(h.Events.All(ofType("UserUpdated", id.UserID))); n != 1 || m != 1 {
		t.Errorf("%d UserRegistered and %d UserUpdated, want 1 and 1", n, m)
	}
	login(h, "root@example.com", "new root phrase")
}

func TestAdminBootstrapPromotesAndReactivatesAnAccount(t *testing.T) {
	t.Parallel()
	h := start(t)
	u := register(h, "ops@example.com", "Ops", "ops passphrase")
	h.JSON("DELETE", "/api/v1/users/me", login(h, "ops@example.com", "ops passphrase"), nil, http.StatusOK, nil)

	svc := h.App.Service("user").(*user.Service)
	ctx := context.Background()
	admin, err := svc.EnsureAdmin(ctx, "ops@example.com", "ops admin phrase")
	if err != nil {
		t.Fatal(err)
	}
	if admin.ID != u.ID || admin.Role != "admin" || admin.Status != "active" || admin.Name != "Ops" {
		t.Errorf("promoted %+v", admin)
	}
	if _, err := svc.EnsureAdmin(ctx, "OPS@example.com", "ops admin phrase"); err != nil { // idempotent
		t.Fatal(err)
	}
	tok := login(h, "ops@example.com", "ops admin phrase")
	h.JSON("PATCH", "/api/v1/users/me", tok, map[string]any{"name": "Operations"}, http.StatusOK, nil)
	h.Events.Wait(t, "UserUpdated", func(e *event.Envelope) bool {
		return e.Key == u.ID && slices.Contains(payload[*event.UserUpdated](t, e).Changed, "name")
	})
	var changes [][]string
	for _, e := range h.Events.All(ofType("UserUpdated", u.ID)) {
		changes = append(changes, payload[*event.UserUpdated](t, e).Changed)
	}
	if len(changes) != 2 || !slices.Equal(changes[0], []string{"password", "role", "status"}) {
		t.Errorf("changed lists %v, want [[password role status] [name]]", changes)
	}
	if _, err := svc.EnsureAdmin(ctx, "ops@example.com", "password1"); err == nil || !strings.Contains(err.Error(), "commonly used") {
		t.Errorf("common admin password: %v", err)
	}
}

func TestNewRejectsBadAdminSettings(t *testing.T) {
	t.Parallel()
	for _, m := range []map[string]string{
		{"EVENTMART_ADMIN_EMAIL": "root@example.com"},
		{"EVENTMART_ADMIN_PASSWORD": "root passphrase"},
		{"EVENTMART_ADMIN_EMAIL": "root", "EVENTMART_ADMIN_PASSWORD": "root passphrase"},
		{"EVENTMART_ADMIN_EMAIL": "root@example.com", "EVENTMART_ADMIN_PASSWORD": "short"},
	} {
		// Settings are checked before the database is touched.
		vals, err := settings.Parse(func(k string) string { return m[k] })
		if err == nil {
			_, err = user.New(service.Deps{Settings: vals})
		}
		if err == nil || !strings.Contains(err.Error(), "EVENTMART_ADMIN") {
			t.Errorf("%v: err %v", m, err)
		}
	}
}
