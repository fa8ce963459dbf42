package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventmart/eventmart/gateway"
)

// The gateway's answer says whether the upstream may have applied the
// request: 503 only when it was never delivered.
func TestProxiedFailuresSayWhetherTheOutcomeIsKnown(t *testing.T) {
	delivered := make(chan string, 10)
	// dies: reads the request, then drops the connection without answering.
	dies := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		delivered <- r.Method + " " + r.URL.Path
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer dies.Close()
	// refuses: a port nobody listens on any more.
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL, _ := url.Parse(gone.URL)
	gone.Close()
	// hangs: answers only after the client's deadline.
	release := make(chan struct{})
	hangs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		delivered <- r.Method + " " + r.URL.Path
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hangs.Close()
	defer close(release)
	diesURL, _ := url.Parse(dies.URL)
	hangsURL, _ := url.Parse(hangs.URL)

	cases := []struct {
		name, upstream, method string
		deadline               bool
		status                 int
		code                   string
		mentions               string
	}{
		{"refused", "gone", "POST", false, http.StatusServiceUnavailable, "unavailable", "not delivered"},
		{"died after delivery, write", "dies", "POST", false, http.StatusBadGateway, "bad_gateway", "same Idempotency-Key"},
		{"died after delivery, read", "dies", "GET", false, http.StatusBadGateway, "bad_gateway", "retry the request"},
		{"no answer in time", "hangs", "POST", true, http.StatusGatewayTimeout, "gateway_timeout", "same Idempotency-Key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			remote := map[string][]*url.URL{"order": {goneURL}}
			switch c.upstream {
			case "dies":
				remote["order"] = []*url.URL{diesURL}
			case "hangs":
				remote["order"] = []*url.URL{hangsURL}
			}
			h := gateway.Handler(http.NotFoundHandler(), nil, remote)
			ctx := context.Background()
			if c.deadline {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, time.Now().Add(200*time.Millisecond))
				defer cancel()
			}
			req := httptest.NewRequestWithContext(ctx, c.method, "/api/v1/orders", strings.NewReader(`{}`))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			var body struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if rec.Code != c.status || body.Error.Code != c.code || !strings.Contains(body.Error.Message, c.mentions) {
				t.Fatalf("%d %+v; want %d %s mentioning %q", rec.Code, body.Error, c.status, c.code, c.mentions)
			}
			if c.upstream != "gone" {
				if got := <-delivered; got != c.method+" /api/v1/orders" {
					t.Fatalf("upstream saw %q", got)
				}
			}
		})
	}
}

// Proxied bodies arrive whole and unmixed while the proxies share their
// copy buffers (a pool): many at once, smaller and larger than a buffer.
func TestProxiedBodiesSurviveSharedBuffers(t *testing.T) {
	body := func(n int) string { return strings.Repeat(string(rune('a'+n%26)), 1+n*997) }
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		if _, err := fmt.Sscan(r.URL.Query().Get("n"), &n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		io.WriteString(w, body(n))
	}))
	defer upstream.Close()
	u, _ := url.Parse(upstream.URL)
	h := gateway.Handler(http.NotFoundHandler(), nil, map[string][]*url.URL{"order": {u}})

	const requests = 64 // up to 63 KiB each: larger than one 32 KiB buffer
	errs := make(chan error, requests)
	var wg sync.WaitGroup
	for n := range requests {
		wg.Go(func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", fmt.Sprintf("/api/v1/orders?n=%d", n), nil))
			if got, want := rec.Body.String(), body(n); rec.Code != http.StatusOK || got != want {
				errs <- fmt.Errorf("request %d: status %d, %d bytes, want 200 and %d bytes of %q", n, rec.Code, len(got), len(want), want[:1])
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
