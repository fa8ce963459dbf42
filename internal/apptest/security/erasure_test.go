package security_test

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/audit"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/app"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/export"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/notification"
	"github.com/eventmart/eventmart/user"
)

// Finding 7: personal data could not be erased — e-mail and name lived in
// events and in the 7-year hash-chained audit trail. Now they are sealed
// with a per-user key; DELETE /users/{id}/personal-data destroys it: the
// trail still verifies, its reads and every export show the fields erased,
// and the services' clear copies are gone.
func TestPersonalDataErasure(t *testing.T) {
	t.Parallel()
	h := apptest.Start(t, []service.Def{user.Def(), audit.Def(), notification.Def()})
	const email, name, password = "erin@example.com", "Erin Erasable", "gnus graze on plains"
	admin := h.Token("admin-1", "admin")
	var u user.User
	h.JSON("POST", "/api/v1/users", "", map[string]string{"email": email, "name": name, "password": password}, http.StatusCreated, &u)
	var tok user.TokenResponse
	h.JSON("POST", "/api/v1/auth/token", "", map[string]string{"email": email, "password": password}, http.StatusOK, &tok)
	h.Do("POST", "/api/v1/auth/token", "", map[string]string{"email": email, "password": "not the password at all"})
	h.JSON("PATCH", "/api/v1/users/me", tok.Token, map[string]string{"name": name + " Jr"}, http.StatusOK, nil)

	// The events carry the personal fields sealed; the admin's query opens them.
	trail := func() string {
		_, _, b := h.Do("GET", "/api/v1/admin/events?entity="+u.ID, admin, nil)
		return string(b)
	}
	h.Eventually("the user's four events in the trail", func() bool {
		b := trail()
		return strings.Contains(b, "UserRegistered") && strings.Contains(b, "UserLoggedIn") && strings.Contains(b, "LoginFailed") && strings.Contains(b, "UserUpdated")
	})
	if b := trail(); !strings.Contains(b, email) || !strings.Contains(b, name) {
		t.Fatalf("the admin's query does not show the opened fields: %.600s", b)
	}
	if _, _, b := h.Do("GET", "/api/v1/admin/events?sealed=true&entity="+u.ID, admin, nil); strings.Contains(string(b), email) || !strings.Contains(string(b), `"ct"`) {
		t.Errorf("sealed=true opened the fields: %.600s", b)
	}
	for _, e := range h.Events.All(func(e *event.Envelope) bool { return e.Key == u.ID }) {
		if strings.Contains(string(e.Data), email) || strings.Contains(string(e.Data), name) {
			t.Errorf("%s carries personal data in clear: %s", e.EventType, e.Data)
		}
	}
	h.Eventually("the welcome message", func() bool {
		_, _, b := h.Do("GET", "/api/v1/notifications?userId="+u.ID, admin, nil)
		return strings.Contains(string(b), email)
	})

	// Only the user or an admin may erase.
	if status, _, b := h.Do("DELETE", "/api/v1/users/"+u.ID+"/personal-data", h.Token("someone-else", "customer"), nil); status != http.StatusNotFound {
		t.Fatalf("another customer erasing: %d %s", status, b)
	}
	if status, _, b := h.Do("DELETE", "/api/v1/users/"+u.ID+"/personal-data", tok.Token, nil); status != http.StatusNoContent {
		t.Fatalf("erasing: %d %s", status, b)
	}
	h.Events.Wait(t, "PersonalDataErased", apptest.Keyed(u.ID))

	// Its session is over.
	if status, _, _ := h.Do("GET", "/api/v1/users/me", tok.Token, nil); status != http.StatusUnauthorized {
		t.Errorf("the erased user's token: %d", status)
	}
	var seen user.User
	h.JSON("GET", "/api/v1/users/"+u.ID, admin, nil, http.StatusOK, &seen)
	if seen.Email == email || seen.Name != event.Erased || seen.Status != "deactivated" {
		t.Errorf("the account after erasure: %+v", seen)
	}

	// Reads of the trail show the fields erased; the chain still verifies.
	b := trail()
	if strings.Contains(b, email) || strings.Contains(b, name) || !strings.Contains(b, event.Erased) {
		t.Errorf("the trail after erasure: %.800s", b)
	}
	var verify struct {
		Records int64 `json:"records"`
		OK      bool  `json:"ok"`
	}
	h.JSON("GET", "/api/v1/admin/audit/verify", admin, nil, http.StatusOK, &verify)
	if !verify.OK || verify.Records < 4 {
		t.Errorf("audit verify after erasure: %+v", verify)
	}
	// The notification service deleted its clear copies.
	h.Eventually("the mailbox without the address", func() bool {
		_, _, b := h.Do("GET", "/api/v1/notifications?userId="+u.ID, admin, nil)
		return strings.Contains(string(b), u.ID) && !strings.Contains(string(b), email) && !strings.Contains(string(b), "Erin")
	})

	// An export after the erasure holds no clear personal data of the user.
	files := exported(t, h, event.TopicUser, event.TopicAudit, event.TopicNotification)
	var all strings.Builder
	for path, b := range files {
		all.WriteString(b)
		if strings.Contains(b, email) || strings.Contains(b, "Erin") {
			t.Errorf("%s holds the erased user's personal data: %.300s", path, b[max(0, strings.Index(b, "Erin")-200):])
		}
	}
	if !strings.Contains(all.String(), u.ID) || !strings.Contains(all.String(), `"ct"`) {
		t.Errorf("the export lacks the user's sealed records")
	}

	// The account can no longer log in (last: the attempt records the typed
	// email, which names no account any more, in clear).
	if status, _, _ := h.Do("POST", "/api/v1/auth/token", "", map[string]string{"email": email, "password": password}); status != http.StatusUnauthorized {
		t.Errorf("login after erasure: %d", status)
	}
}

// Between processes (eventmart serve), a service opens personal fields with
// keys from the user service's process (GET /users/{id}/personal-key, a
// service token), and forgets them on PersonalDataErased.
func TestPersonalKeysBetweenProcesses(t *testing.T) {
	t.Parallel()
	h := apptest.Start(t, []service.Def{user.Def()})
	userURL, err := url.Parse(h.Server.URL)
	if err != nil {
		t.Fatal(err)
	}
	other, err := app.Start(context.Background(), app.Config{Bus: h.Bus, DataDir: t.TempDir(), Services: []service.Def{notification.Def()},
		Remote: map[string][]*url.URL{user.Name: {userURL}}, Tokens: h.Tokens, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	srv := httptest.NewServer(other.Handler())
	t.Cleanup(srv.Close)
	mailbox := func(id string) string {
		req, _ := http.NewRequest("GET", srv.URL+"/api/v1/notifications?userId="+id, nil)
		req.Header.Set("Authorization", "Bearer "+h.Token("admin-1", "admin"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}

	const email, password = "remy@example.com", "gnus graze on plains"
	var u user.User
	h.JSON("POST", "/api/v1/users", "", map[string]string{"email": email, "name": "Remy", "password": password}, http.StatusCreated, &u)
	h.Eventually("the welcome message, addressed in the other process", func() bool { return strings.Contains(mailbox(u.ID), email) })
	sent := h.Events.Wait(t, "NotificationSent", apptest.Keyed(u.ID))
	if p, err := sent.Payload(); err != nil || p.(*event.NotificationSent).Recipient.Sealed == nil || h.Open(p.(*event.NotificationSent).Recipient) != email {
		t.Errorf("NotificationSent: %s, %v", sent.Data, err)
	}

	// A customer's token, or an admin's, does not get a key.
	if status, _, _ := h.Do("GET", "/api/v1/users/"+u.ID+"/personal-key", h.Token("admin-1", "admin"), nil); status != http.StatusForbidden {
		t.Errorf("an admin asking for a key: %d", status)
	}

	admin := h.Token("admin-1", "admin")
	if status, _, b := h.Do("DELETE", "/api/v1/users/"+u.ID+"/personal-data", admin, nil); status != http.StatusNoContent {
		t.Fatalf("erasing: %d %s", status, b)
	}
	h.Eventually("the other process's mailbox without the address", func() bool {
		b := mailbox(u.ID)
		return strings.Contains(b, u.ID) && !strings.Contains(b, email)
	})
	if status, _, _ := h.Do("GET", "/api/v1/users/"+u.ID+"/personal-key", h.Token("eventmart", "service"), nil); status != http.StatusNotFound {
		t.Errorf("the key of an erased user: %d, want 404", status)
	}
}

// exported exports topics of h's bus as JSON Lines and returns each file's
// text by path.
func exported(t *testing.T, h *apptest.Harness, topics ...event.Topic) map[string]string {
	t.Helper()
	dir := t.TempDir()
	names := make([]string, len(topics))
	for i, tp := range topics {
		names[i] = string(tp)
	}
	if _, err := export.Export(context.Background(), h.Bus, export.Options{Dir: dir, Format: "jsonl",
		Selection: export.Selection{Topics: names}}); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		files[path] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
