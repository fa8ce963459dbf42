package user_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus/kafka"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/app"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/testenv"
	"github.com/eventmart/eventmart/user"
)

// otherProcess starts another process of the deployment on h's bus: its
// own database (empty) and its own token checks, which learn of ended
// sessions only from the bus. It answers GET /api/v1/users/{id} with 404
// for a valid token (it has no accounts) and 401 for an ended session.
func otherProcess(t *testing.T, h *apptest.Harness) *httptest.Server {
	t.Helper()
	a, err := app.Start(context.Background(), app.Config{Bus: h.Bus, DataDir: t.TempDir(), Services: []service.Def{user.Def()},
		Tokens: h.ProcessTokens(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		srv.Close()
		if err := a.Close(); err != nil {
			t.Errorf("other process: %v", err)
		}
	})
	return srv
}

func statusAt(t *testing.T, srv *httptest.Server, path, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A session ended on one instance ends on every other one, on the
// embedded bus and on Kafka, including instances started afterwards.
func TestSessionsEndOnEveryInstance(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		sessionsEndEverywhere(t, start(t))
	})
	t.Run("kafka", func(t *testing.T) {
		brokers := testenv.Kafka(t)
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		kb, err := kafka.Open(ctx, brokers, kafka.ReplicationFactor(1))
		if err != nil {
			t.Fatal(err)
		}
		sessionsEndEverywhere(t, start(t, apptest.OnBus(kb)))
	})
}

func sessionsEndEverywhere(t *testing.T, h *apptest.Harness) {
	u := register(h, "gnu-"+event.NewID()+"@example.com", "Gnu", "gnus graze on plains")
	path := "/api/v1/users/" + u.ID
	tok := tokens(h, u.Email, "gnus graze on plains")
	other := otherProcess(t, h)
	if s := statusAt(t, other, path, tok.Token); s != 404 {
		t.Fatalf("other process before logout: %d, want 404 (token accepted)", s)
	}
	if s := status(h, "POST", "/api/v1/auth/logout", tok.Token, nil); s != 204 {
		t.Fatalf("logout: %d", s)
	}
	h.Eventually("the other process refuses the logged-out token", func() bool { return statusAt(t, other, path, tok.Token) == 401 })
	// A process started afterwards reads the revocations of the last
	// session lifetime before it serves.
	h.Events.Wait(t, "SessionsRevoked", apptest.Keyed(u.ID))
	if s := statusAt(t, otherProcess(t, h), path, tok.Token); s != 401 {
		t.Errorf("process started after the logout: %d, want 401", s)
	}

	// A deactivated user's token is refused everywhere.
	tok = tokens(h, u.Email, "gnus graze on plains")
	if s := statusAt(t, other, path, tok.Token); s != 404 {
		t.Fatalf("other process, new session: %d, want 404", s)
	}
	h.JSON("DELETE", "/api/v1/users/me", tok.Token, nil, 200, nil)
	h.Eventually("the other process refuses the deactivated user's token", func() bool { return statusAt(t, other, path, tok.Token) == 401 })
}
