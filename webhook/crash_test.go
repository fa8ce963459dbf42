package webhook_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/bus/embedded"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/app"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/webhook"
)

const crashEvents = 20

// TestDeliverySurvivesKill9 runs the webhook service in a child process,
// kills it with SIGKILL while a delivery is in flight, starts it again on
// the same data, and checks every event reached the receiver, a repeated
// one under the same webhook-id.
func TestDeliverySurvivesKill9(t *testing.T) {
	if dir := os.Getenv("WEBHOOK_CRASH_CHILD"); dir != "" {
		crashChild(t, dir)
		return
	}
	t.Parallel()
	var mu sync.Mutex
	ids := map[string]map[string]bool{} // event id → webhook-ids
	requests := 0
	hold, inFlight := make(chan struct{}), make(chan struct{})
	seen := make(chan struct{}, 1000)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env struct{ EventID string }
		body, _ := io.ReadAll(r.Body)
		json.Unmarshal(body, &env)
		mu.Lock()
		requests++
		n := requests
		mu.Unlock()
		if n == 3 {
			close(inFlight)
			<-hold // in flight when the child dies: not acknowledged
			return
		}
		mu.Lock()
		if ids[env.EventID] == nil {
			ids[env.EventID] = map[string]bool{}
		}
		ids[env.EventID][r.Header.Get("webhook-id")] = true
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		seen <- struct{}{}
	}))
	defer rcv.Close()
	defer close(hold)
	dir := t.TempDir()
	child := func(publish bool) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDeliverySurvivesKill9$")
		cmd.Env = append(os.Environ(), "WEBHOOK_CRASH_CHILD="+dir, "WEBHOOK_CRASH_URL="+rcv.URL, "WEBHOOK_CRASH_PUBLISH="+strconv.FormatBool(publish))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if sc.Text() == "ready" {
					ready <- true
				}
			}
			io.Copy(io.Discard, out)
		}()
		select {
		case <-ready:
		case <-time.After(apptest.Timeout):
			cmd.Process.Kill()
			t.Fatal("child not ready")
		}
		return cmd
	}
	delivered := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(ids)
	}
	first := child(true)
	deadline := time.After(apptest.Timeout)
	select {
	case <-inFlight:
	case <-deadline:
		first.Process.Kill()
		t.Fatal("no third request before the deadline")
	}
	first.Process.Kill() // SIGKILL, with the third delivery in flight
	first.Wait()
	before := delivered()

	second := child(false)
	defer func() { second.Process.Kill(); second.Wait() }()
	for delivered() < crashEvents {
		select {
		case <-seen:
		case <-deadline:
			t.Fatalf("%d of %d events delivered after the restart (%d before the kill)", delivered(), crashEvents, before)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for id, whs := range ids {
		if len(whs) != 1 {
			t.Errorf("event %s delivered under %d webhook-ids", id, len(whs))
		}
	}
	if before >= crashEvents {
		t.Errorf("every event was delivered before the kill; the test killed nothing mid-way")
	}
}

// crashChild runs the webhook service on dir until killed: the first time
// it registers the receiver and publishes the events.
func crashChild(t *testing.T, dir string) {
	ctx := context.Background()
	b, err := embedded.Open(filepath.Join(dir, "eventlog.db"))
	if err != nil {
		t.Fatal(err)
	}
	var topics []bus.TopicConfig
	for _, ts := range event.Topics {
		topics = append(topics, bus.TopicConfig{Name: string(ts.Name), Partitions: ts.Partitions, Retention: ts.Retention})
	}
	if _, err := b.EnsureTopics(ctx, topics); err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens(bytes.Repeat([]byte("k"), 32), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{"EVENTMART_WEBHOOK_ALLOW": "127.0.0.0/8", "EVENTMART_WEBHOOK_RETRY_DELAYS": "50ms"}
	a, err := app.Start(ctx, app.Config{Bus: b, DataDir: dir, Services: []service.Def{webhook.Def()}, Tokens: tokens,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Settings: func(k string) string { return settings[k] }})
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("WEBHOOK_CRASH_PUBLISH") == "true" {
		tok, _, err := tokens.Issue(auth.Identity{UserID: "admin-1", Role: "admin"})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("POST", "/api/v1/webhooks/endpoints", strings.NewReader(`{"url": "`+os.Getenv("WEBHOOK_CRASH_URL")+`"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			t.Fatalf("register: %d %s", rec.Code, rec.Body)
		}
		var msgs []*bus.Message
		for i := range crashEvents {
			e, err := event.New("order-service", origin, orderCreated(fmt.Sprintf("o-crash-%d", i)))
			if err != nil {
				t.Fatal(err)
			}
			m, err := eventmsg.Encode(ctx, e)
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, m)
		}
		if err := b.Publish(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Println("ready")
	select {} // until killed
}
