package loadgen

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmart/eventmart/catalog"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/inventory"
	"github.com/eventmart/eventmart/order"
	"github.com/eventmart/eventmart/payment"
	"github.com/eventmart/eventmart/shipping"
	"github.com/eventmart/eventmart/user"
)

// An answer that leaves the outcome open is retried with the same
// Idempotency-Key; an answer that refuses the order is not.
func TestPlaceRetriesWithTheSameIdempotencyKey(t *testing.T) {
	var mu sync.Mutex
	var keys []string
	answers := []int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusAccepted}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Method == "GET" {
			w.Write([]byte(`{"id":"o1","status":"SHIPPED"}`))
			return
		}
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		status := answers[min(len(keys)-1, len(answers)-1)]
		w.WriteHeader(status)
		if status == http.StatusAccepted {
			w.Write([]byte(`{"id":"o1","status":"PENDING"}`))
		} else {
			w.Write([]byte(`{"error":{"code":"bad_gateway","message":"x"}}`))
		}
	}))
	defer srv.Close()
	c := &client{base: srv.URL, http: srv.Client()}
	status, _, accepted, err := placeAndFollow(context.Background(), c, "tok", "p1", false, nil, nil)
	if err != nil || !accepted || status != "SHIPPED" {
		t.Fatalf("placeAndFollow = %q, accepted %v, %v", status, accepted, err)
	}
	if len(keys) != 4 || keys[0] == "" || keys[1] != keys[0] || keys[2] != keys[0] || keys[3] != keys[0] {
		t.Fatalf("keys sent: %q; want the same non-empty key four times", keys)
	}

	mu.Lock()
	answers, keys = []int{http.StatusConflict}, nil
	mu.Unlock()
	_, _, accepted, err = placeAndFollow(context.Background(), c, "tok", "p1", false, nil, nil)
	var se *statusError
	if accepted || !errors.As(err, &se) || se.code != http.StatusConflict || len(keys) != 1 {
		t.Fatalf("a 409 was retried or accepted: accepted %v, %v, %d tries", accepted, err, len(keys))
	}
	if got := failureReason(err, false); !strings.HasPrefix(got, "POST 409") {
		t.Fatalf("failure reason %q", got)
	}
}

// The first GET after the POST is held on the ETag the POST answered
// (If-None-Match + Prefer: wait, until=final), as every later one is on its
// GET's. The server here, like a release before until=final, answers a
// status that is not final (CONFIRMED): the order is followed on, to its
// final status.
func TestFirstFollowHeldOnThePostsETag(t *testing.T) {
	var mu sync.Mutex
	var conds []string // If-None-Match and Prefer of each GET
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Method == "POST" {
			w.Header().Set("ETag", `"placed"`)
			w.WriteHeader(http.StatusAccepted)
			w.Write([]byte(`{"id":"o1","status":"PENDING"}`))
			return
		}
		conds = append(conds, r.Header.Get("If-None-Match")+" "+r.Header.Get("Prefer"))
		if len(conds) == 1 {
			w.Header().Set("ETag", `"confirmed"`)
			w.Write([]byte(`{"id":"o1","status":"CONFIRMED"}`))
			return
		}
		w.Header().Set("ETag", `"shipped"`)
		w.Write([]byte(`{"id":"o1","status":"SHIPPED"}`))
	}))
	defer srv.Close()
	c := &client{base: srv.URL, http: srv.Client()}
	status, _, accepted, err := placeAndFollow(context.Background(), c, "tok", "p1", false, nil, nil)
	if err != nil || !accepted || status != "SHIPPED" {
		t.Fatalf("placeAndFollow = %q, accepted %v, %v", status, accepted, err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{`"placed" wait=20, until=final`, `"confirmed" wait=20, until=final`}
	if len(conds) != 2 || conds[0] != want[0] || conds[1] != want[1] {
		t.Fatalf("GETs sent %q, want %q", conds, want)
	}
}

// An order shed for overload (503 with Retry-After) is tried again only
// after the wait the answer asks for, with the same Idempotency-Key, and
// counted as shed, not failed; its latency includes the wait.
func TestShedOrderRetriedAfterRetryAfter(t *testing.T) {
	var mu sync.Mutex
	var keys []string
	var at []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Method == "GET" {
			w.Write([]byte(`{"id":"o1","status":"SHIPPED"}`))
			return
		}
		keys, at = append(keys, r.Header.Get("Idempotency-Key")), append(at, time.Now())
		if len(keys) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":{"code":"unavailable","message":"too many orders in progress"}}`))
			return
		}
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte(`{"id":"o1","status":"PENDING"}`))
	}))
	defer srv.Close()
	c := &client{base: srv.URL, http: srv.Client()}
	var shed atomic.Int64
	status, lat, accepted, err := placeAndFollow(context.Background(), c, "tok", "p1", false, nil, &shed)
	if err != nil || !accepted || status != "SHIPPED" {
		t.Fatalf("placeAndFollow = %q, accepted %v, %v", status, accepted, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(keys) != 2 || keys[0] == "" || keys[1] != keys[0] {
		t.Fatalf("keys sent: %q; want the same non-empty key twice", keys)
	}
	if waited := at[1].Sub(at[0]); waited < time.Second {
		t.Errorf("retried %s after a Retry-After of 1 s", waited)
	}
	if shed.Load() != 1 || lat < time.Second {
		t.Errorf("shed %d, latency %s; want 1 shed answer and the wait in the latency", shed.Load(), lat)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		h    string
		want time.Duration
	}{
		{"", 0}, {"soon", 0}, {"-3", 0}, {"2", 2 * time.Second}, {" 1 ", time.Second}, {"3600", maxRetryAfter},
		{now.Add(5 * time.Second).Format(http.TimeFormat), 5 * time.Second}, {now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		if got := retryAfter(c.h, now); got != c.want {
			t.Errorf("retryAfter(%q) = %s, want %s", c.h, got, c.want)
		}
	}
}

// Two load runs against the real services leave the catalog as the first
// left it: the second reuses the seed products and customers.
func TestRunsReuseTheirSeed(t *testing.T) {
	settings := map[string]string{"EVENTMART_ADMIN_EMAIL": "admin@example.com", "EVENTMART_ADMIN_PASSWORD": "admin passphrase"}
	h := apptest.Start(t, []service.Def{user.Def(), catalog.Def(), inventory.Def(), order.Def(), payment.Def(), shipping.Def()},
		apptest.Settings(settings))
	var progress bytes.Buffer
	cfg := Config{Target: h.Server.URL, Orders: 4, Concurrency: 2, Customers: 2, Products: 3,
		AdminEmail: settings["EVENTMART_ADMIN_EMAIL"], AdminPassword: settings["EVENTMART_ADMIN_PASSWORD"], Progress: &progress}
	count := func() int {
		var page struct{ Products []struct{ SKU string } }
		h.JSON("GET", "/api/v1/products?limit=500", "", nil, 200, &page)
		return len(page.Products)
	}
	for run := 1; run <= 2; run++ {
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if res.Shipped != cfg.Orders {
			t.Fatalf("run %d: %s", run, res)
		}
		if n := count(); n != cfg.Products {
			t.Errorf("after run %d: %d products, want %d", run, n, cfg.Products)
		}
	}
	if strings.Contains(progress.String(), "\r") {
		t.Errorf("progress to a non-terminal has carriage returns: %q", progress.String())
	}
	if !strings.HasPrefix(progress.String(), "seeding 3 products and 2 customers") {
		t.Errorf("progress does not start by saying what it seeds: %q", progress.String())
	}
}

// A long run's customers log in again: a token that no longer works is
// replaced by one the server accepts.
func TestCustomerTokensKeptFresh(t *testing.T) {
	settings := map[string]string{"EVENTMART_ADMIN_EMAIL": "admin@example.com", "EVENTMART_ADMIN_PASSWORD": "admin passphrase"}
	h := apptest.Start(t, []service.Def{user.Def(), catalog.Def(), inventory.Def(), order.Def(), payment.Def(), shipping.Def()},
		apptest.Settings(settings))
	c := &client{base: h.Server.URL, http: http.DefaultClient}
	cfg := Config{Customers: 1, Products: 1, Orders: 1, AdminEmail: settings["EVENTMART_ADMIN_EMAIL"], AdminPassword: settings["EVENTMART_ADMIN_PASSWORD"]}
	if _, _, err := seed(context.Background(), c, cfg); err != nil {
		t.Fatal(err)
	}
	tokens := newCustomerTokens([]string{"expired"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tokens.keepFresh(ctx, c, 10*time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for tokens.get(0) == "expired" {
		if time.Now().After(deadline) {
			t.Fatal("the customer's token was not renewed")
		}
		time.Sleep(5 * time.Millisecond) // polling the condition, not standing in for it
	}
	if err := c.do(context.Background(), "GET", "/api/v1/orders", tokens.get(0), nil, http.StatusOK, nil); err != nil {
		t.Fatalf("the renewed token: %v", err)
	}
}

// Against this release, which holds a GET until the order's status is
// final (Prefer: until=final), each order is followed with one GET: its
// outcome.
func TestRunFollowsEachOrderWithOneGet(t *testing.T) {
	settings := map[string]string{"EVENTMART_ADMIN_EMAIL": "admin@example.com", "EVENTMART_ADMIN_PASSWORD": "admin passphrase"}
	h := apptest.Start(t, []service.Def{user.Def(), catalog.Def(), inventory.Def(), order.Def(), payment.Def(), shipping.Def()},
		apptest.Settings(settings))
	var gets atomic.Int64
	upstream, err := url.Parse(h.Server.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	counting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rest, ok := strings.CutPrefix(r.URL.Path, "/api/v1/orders/"); ok && r.Method == "GET" && !strings.Contains(rest, "/") {
			gets.Add(1)
		}
		proxy.ServeHTTP(w, r)
	}))
	defer counting.Close()
	cfg := Config{Target: counting.URL, Orders: 6, Concurrency: 3, Customers: 2, Products: 2,
		AdminEmail: settings["EVENTMART_ADMIN_EMAIL"], AdminPassword: settings["EVENTMART_ADMIN_PASSWORD"]}
	res, err := Run(context.Background(), cfg)
	if err != nil || res.Shipped != cfg.Orders {
		t.Fatalf("run: %v\n%s", err, res)
	}
	if n := gets.Load(); n != int64(cfg.Orders) {
		t.Fatalf("%d GETs of orders for %d orders, want one each", n, cfg.Orders)
	}
}
