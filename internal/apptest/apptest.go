// Package apptest runs services in-process for tests: an embedded bus and
// SQLite files in a temporary directory, the gateway on an httptest server,
// tokens minted directly, and a recorder of every event on the bus.
package apptest

import (
	"bytes"

	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmart/eventmart/internal/testenv"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/bus/embedded"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/app"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/fsperm"
	"github.com/eventmart/eventmart/internal/obs"
	"github.com/eventmart/eventmart/internal/service"
)

// Timeout bounds every wait.
var Timeout = 20 * time.Second

// Harness is a running set of services.
type Harness struct {
	T      testing.TB
	App    *app.App
	Bus    bus.Bus
	Server *httptest.Server
	Tokens *auth.Tokens
	Events *Recorder

	cfg     app.Config                   // what App was started with, for Restart
	handler atomic.Pointer[http.Handler] // App's handler, which Server serves
}

// Option adjusts the harness configuration.
type Option func(*app.Config)

// Settings makes the services read settings from m.
func Settings(m map[string]string) Option {
	return func(c *app.Config) { c.Settings = func(k string) string { return m[k] } }
}

// OnBus runs the services on b (which the harness closes at the end)
// instead of a fresh embedded log.
func OnBus(b bus.Bus) Option { return func(c *app.Config) { c.Bus = b } }

// Start runs defs on an embedded bus (or OnBus's) with the ADR's topics. Their
// databases are SQLite files, or, when EVENTMART_TEST_SERVICES_DB=postgres
// and EVENTMART_TEST_POSTGRES names a server, fresh PostgreSQL databases
// (dropped at the end), so service tests can run on both.
func Start(t testing.TB, defs []service.Def, opts ...Option) *Harness {
	t.Helper()
	dir := t.TempDir()
	// As Eventmart makes its data directory (t.TempDir's mode is wider,
	// which the start would warn about).
	if err := os.Chmod(dir, fsperm.Dir); err != nil {
		t.Fatal(err)
	}
	tokens, err := newTokens()
	if err != nil {
		t.Fatal(err)
	}
	level := slog.LevelWarn
	if os.Getenv("EVENTMART_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	cfg := app.Config{
		DataDir: dir, Services: defs, Tokens: tokens,
		Log: slog.New(obs.LogHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))),
	}
	if os.Getenv("EVENTMART_TEST_SERVICES_DB") == "postgres" {
		cfg.DB = postgresDB(t, defs)
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.Bus == nil {
		if cfg.Bus, err = embedded.Open(filepath.Join(dir, "eventlog.db")); err != nil {
			t.Fatal(err)
		}
	}
	b := cfg.Bus
	var topics []bus.TopicConfig
	for _, ts := range event.Topics {
		topics = append(topics, bus.TopicConfig{Name: string(ts.Name), Partitions: ts.Partitions, Retention: ts.Retention})
	}
	if _, err := b.EnsureTopics(context.Background(), topics); err != nil {
		t.Fatal(err)
	}
	a, err := app.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &Harness{T: t, App: a, Bus: b, Tokens: tokens, cfg: cfg}
	handler := a.Handler()
	h.handler.Store(&handler)
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*h.handler.Load()).ServeHTTP(w, r) }))
	h.Events = record(t, b)
	t.Cleanup(func() {
		h.Server.Close()
		h.Events.stop()
		if err := h.App.Close(); err != nil {
			t.Errorf("app: %v", err)
		}
		b.Close()
	})
	return h
}

// Restart stops the services and starts them again on the same bus and
// databases, with opts applied to their configuration (new settings, say):
// a deployment's rolling restart. The gateway URL stays the same.
func (h *Harness) Restart(opts ...Option) {
	h.T.Helper()
	if err := h.App.Close(); err != nil {
		h.T.Fatalf("app: %v", err)
	}
	for _, o := range opts {
		o(&h.cfg)
	}
	a, err := app.Start(context.Background(), h.cfg)
	if err != nil {
		h.T.Fatal(err)
	}
	h.App = a
	handler := a.Handler()
	h.handler.Store(&handler)
}

// newTokens returns the token issuer of a harness process: every one has
// the same secret, as the processes of a deployment do.
func newTokens() (*auth.Tokens, error) {
	return auth.NewTokens(bytes.Repeat([]byte("k"), 32), time.Hour)
}

// ProcessTokens returns a token verifier of another process of the
// deployment: the same secret, but a list of ended sessions of its own,
// which only the SessionsRevoked events on the bus keep in step.
func (h *Harness) ProcessTokens() *auth.Tokens {
	h.T.Helper()
	t, err := newTokens()
	if err != nil {
		h.T.Fatal(err)
	}
	return t
}

// Token mints a token for a user id and role ("customer" or "admin").
func (h *Harness) Token(userID, role string) string {
	h.T.Helper()
	tok, _, err := h.Tokens.Issue(auth.Identity{UserID: userID, Role: role, Email: userID + "@example.com", Name: "User " + userID})
	if err != nil {
		h.T.Fatal(err)
	}
	return tok
}

// Do sends a request through the gateway and returns the status, the
// response headers and the body.
func (h *Harness) Do(method, path, token string, body any) (int, http.Header, []byte) {
	h.T.Helper()
	var r io.Reader
	if body != nil {
		if s, ok := body.(string); ok {
			r = bytes.NewBufferString(s)
		} else {
			b, _ := json.Marshal(body)
			r = bytes.NewReader(b)
		}
	}
	req, err := http.NewRequest(method, h.Server.URL+path, r)
	if err != nil {
		h.T.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.T.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// JSON sends a request, fails the test unless the status is want, and
// decodes the body into out (if not nil).
func (h *Harness) JSON(method, path, token string, body any, want int, out any) {
	h.T.Helper()
	status, _, b := h.Do(method, path, token, body)
	if status != want {
		h.T.Fatalf("%s %s: status %d, want %d; body %s", method, path, status, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			h.T.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

// Publish puts events on the bus as if another service had emitted them,
// and returns their envelopes.
func (h *Harness) Publish(source string, origin event.Origin, payloads ...event.Payload) []*event.Envelope {
	h.T.Helper()
	var envs []*event.Envelope
	var msgs []*bus.Message
	for _, p := range payloads {
		e, m := h.Message(source, origin, p)
		envs, msgs = append(envs, e), append(msgs, m)
	}
	if err := h.Bus.Publish(context.Background(), msgs...); err != nil {
		h.T.Fatal(err)
	}
	return envs
}

// Message returns the envelope of p, as if service source had emitted it,
// and its record as the bus carries it, without publishing it (Publish
// does): for a test that hands records to a consumer itself.
func (h *Harness) Message(source string, origin event.Origin, p event.Payload) (*event.Envelope, *bus.Message) {
	h.T.Helper()
	e, err := event.New(source, origin, p)
	if err != nil {
		h.T.Fatal(err)
	}
	m, err := eventmsg.Encode(context.Background(), e)
	if err != nil {
		h.T.Fatal(err)
	}
	return e, m
}

// Eventually polls cond until it holds or Timeout passes. It is for
// waiting on state reached asynchronously through the public API.
func (h *Harness) Eventually(what string, cond func() bool) {
	h.T.Helper()
	deadline := time.Now().Add(Timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			h.T.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// Recorder keeps every envelope published on the business topics.
type Recorder struct {
	mu      sync.Mutex
	all     []*event.Envelope
	changed chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
}

func record(t testing.TB, b bus.Bus) *Recorder {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Recorder{changed: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	var topics []string
	for _, ts := range event.Topics {
		topics = append(topics, string(ts.Name))
	}
	go func() {
		defer close(r.done)
		err := b.Subscribe(ctx, "apptest-recorder", topics, func(_ context.Context, batch []*bus.Message) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			for _, m := range batch {
				if e, err := eventmsg.Decode(m); err == nil {
					r.all = append(r.all, e)
				}
			}
			close(r.changed)
			r.changed = make(chan struct{})
			return nil
		})
		if err != nil {
			t.Errorf("recorder: %v", err)
		}
	}()
	return r
}

func (r *Recorder) stop() {
	r.cancel()
	<-r.done
}

// Forget stops recording and drops the envelopes recorded: for a
// benchmark measuring the services' memory, which the recording would grow.
func (r *Recorder) Forget() {
	r.stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = nil
}

// All returns the envelopes recorded so far that match.
func (r *Recorder) All(match func(*event.Envelope) bool) []*event.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*event.Envelope
	for _, e := range r.all {
		if match == nil || match(e) {
			out = append(out, e)
		}
	}
	return out
}

// Wait blocks until an envelope of type t matching match (nil: any) was
// published, and returns it; the test fails after Timeout.
func (r *Recorder) Wait(t testing.TB, typ event.Type, match func(*event.Envelope) bool) *event.Envelope {
	t.Helper()
	deadline := time.After(Timeout)
	for {
		r.mu.Lock()
		for _, e := range r.all {
			if e.EventType == typ && (match == nil || match(e)) {
				r.mu.Unlock()
				return e
			}
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for a %s event", typ)
		}
	}
}

// Correlated matches envelopes of one correlation id.
func Correlated(id string) func(*event.Envelope) bool {
	return func(e *event.Envelope) bool { return e.CorrelationID == id }
}

// Keyed matches envelopes of one partition key.
func Keyed(key string) func(*event.Envelope) bool {
	return func(e *event.Envelope) bool { return e.Key == key }
}

// postgresDB returns a database URL whose prefix is unique to this test,
// and drops the test's databases when it ends.
func postgresDB(t testing.TB, defs []service.Def) string {
	names := make([]string, len(defs))
	for i, d := range defs {
		names[i] = d.Name
	}
	return testenv.FreshPostgres(t, names...)
}

// OnPostgres runs the services on fresh PostgreSQL databases, whatever
// EVENTMART_TEST_SERVICES_DB says; the test is skipped without a server.
func OnPostgres(t testing.TB, defs []service.Def) Option {
	dsn := postgresDB(t, defs)
	return func(c *app.Config) { c.DB = dsn }
}

// StartInstance starts another instance of the harness's services on the
// same bus and databases (PostgreSQL: see OnPostgres), as a second process
// of a deployment would be: its consumers join the same groups and share
// the partitions. It is stopped at the end of the test, before the
// harness.
func (h *Harness) StartInstance() *app.App {
	h.T.Helper()
	if h.cfg.DB == "" {
		h.T.Fatal("apptest: a second instance needs PostgreSQL databases (OnPostgres)")
	}
	a, err := app.Start(context.Background(), h.cfg)
	if err != nil {
		h.T.Fatal(err)
	}
	h.T.Cleanup(func() {
		if err := a.Close(); err != nil {
			h.T.Errorf("second instance: %v", err)
		}
	})
	return a
}

// Open returns p's clear value, opened with the key of the user service
// running in h (event.Erased once that key is destroyed); it fails the
// test if p does not open.
func (h *Harness) Open(p event.Personal) string {
	h.T.Helper()
	keys, ok := h.App.Service("user").(event.Keys)
	if !ok && p.Sealed != nil {
		h.T.Fatalf("a sealed value of user %s, and no user service in the harness to open it", p.Sealed.Kid)
	}
	v, err := p.Open(context.Background(), keys)
	if err != nil {
		h.T.Fatal(err)
	}
	return v
}
