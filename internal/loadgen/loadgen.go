// Package loadgen drives a running Eventmart through its public HTTP API:
// it registers customers, seeds products and stock, places orders at a
// target rate, follows each to its final status, and reports throughput
// and latency percentiles from POST to final status.
package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Config is one load run.
type Config struct {
	Target        string  // gateway base URL, e.g. http://127.0.0.1:8080
	Orders        int     // orders to place
	Rate          float64 // orders per second to start; 0 = as fast as Concurrency allows
	Concurrency   int     // orders in flight at most
	DeclineRatio  float64 // share of orders paid with the declined test card
	Customers     int     // customers to register (default min(Concurrency, 50))
	Products      int     // products to seed (default 20)
	AdminEmail    string
	AdminPassword string
	Progress      io.Writer // progress bar; nil for none
	ProgressTTY   bool      // Progress is a terminal: redraw the bar in place (else a line every 10s)
	// OnAccepted, if set, is called (from several goroutines) with the id
	// of every order the API accepted with 202.
	OnAccepted func(orderID string)
	// Processes, if set, are the processes whose CPU the run measures,
	// each reported apart and summed with the load generator's own:
	// Eventmart's from their /metrics, others (Kafka, PostgreSQL) by PID
	// with their descendants (Linux).
	Processes []Process
	// Kafka, if set, are the brokers of the run's own Kafka cluster: the
	// run counts the records written to it.
	Kafka []string
	// Postgres, if set, is the EVENTMART_DB URL of the services'
	// PostgreSQL: the run counts the commits of their databases.
	Postgres string
	// KafkaDiscovered and PostgresDiscovered say Kafka and Postgres were
	// found in the settings rather than named: unreachable, they are left
	// out with a note instead of failing the run.
	KafkaDiscovered, PostgresDiscovered bool
}

// Result is what a run measured.
type Result struct {
	Orders, Accepted, Shipped, Cancelled, Failed int
	Unexpected                                   int // approved orders that did not ship, declined ones that did
	Duration                                     time.Duration
	Latencies                                    []time.Duration // POST to final status, sorted
	// FailedBecause counts the failed orders by reason: the HTTP status
	// and error code of the last answer, or the transport error.
	FailedBecause map[string]int
	// Measured is what the run measured of Config.Processes, Kafka and
	// Postgres from the first order until they were quiet after the last
	// one; nil when none was set.
	Measured *Measured
	// Notes say what was left out of the measurement and why.
	Notes []string
	// Shed counts the answers that refused an order for now (503 or 429
	// with Retry-After: overload, or a database briefly unavailable): each
	// was retried after the wait it asked for,
	// with the same Idempotency-Key, so they are not failures. Latencies
	// count from the first attempt: they include those waits.
	Shed int
}

// Throughput is finished orders per second.
func (r *Result) Throughput() float64 {
	return float64(r.Shipped+r.Cancelled) / r.Duration.Seconds()
}

// Percentile returns the p-th (0-100) latency percentile.
func (r *Result) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.Latencies)-1) * p / 100)
	return r.Latencies[i]
}

func (r *Result) String() string {
	s := fmt.Sprintf("orders %d: accepted %d, shipped %d, cancelled %d, failed %d, unexpected %d in %s\nthroughput %.1f orders/s\nlatency POST→final: p50 %s  p95 %s  p99 %s  max %s",
		r.Orders, r.Accepted, r.Shipped, r.Cancelled, r.Failed, r.Unexpected, r.Duration.Round(time.Millisecond), r.Throughput(),
		r.Percentile(50).Round(time.Millisecond), r.Percentile(95).Round(time.Millisecond),
		r.Percentile(99).Round(time.Millisecond), r.Percentile(100).Round(time.Millisecond))
	if r.Shed > 0 {
		s += fmt.Sprintf("\nshed: %d answers 503/429 with Retry-After, each retried after its wait (latencies include the waits)", r.Shed)
	}
	if len(r.FailedBecause) > 0 {
		reasons := slices.Sorted(maps.Keys(r.FailedBecause))
		for i, k := range reasons {
			reasons[i] = fmt.Sprintf("%d × %s", r.FailedBecause[k], k)
		}
		s += "\nfailed: " + strings.Join(reasons, "; ")
	}
	if r.Measured != nil {
		s += "\n" + r.Measured.String()
	}
	for _, n := range r.Notes {
		s += "\nnote: " + n
	}
	return s
}

type client struct {
	base string
	http *http.Client
}

// do sends a JSON request; a status other than want is an error.
func (c *client) do(ctx context.Context, method, path, token string, body any, want int, out any) error {
	_, err := c.doWith(ctx, method, path, token, "", body, want, out)
	return err
}

// doWith is do with an Idempotency-Key header when idemKey is not empty;
// it returns the answer's ETag.
func (c *client) doWith(ctx context.Context, method, path, token, idemKey string, body any, want int, out any) (string, error) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return "", &statusError{resp.StatusCode, fmt.Sprintf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(b))), string(b),
			retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	}
	etag := resp.Header.Get("ETag")
	if out != nil {
		return etag, json.Unmarshal(b, out)
	}
	return etag, nil
}

// followWait is how long a GET of an order asks to be held (seconds).
const followWait = "20"

// followPrefer asks the service to hold a GET of an order until its status
// is final, for followWait seconds at most. A release without until=final
// ignores it (RFC 7240) and holds a conditional GET until the order's next
// change instead: follow's caller then asks again, once per status.
const followPrefer = "wait=" + followWait + ", until=final"

// follow GETs an order's path, conditionally on etag if it is not empty,
// asking the service to hold the request until the order's status is
// final (or, a release before until=final, until it changes). It decodes
// a 200's body into out and returns the order's current entity tag; a 304
// leaves out as it was.
func (c *client) follow(ctx context.Context, path, token, etag string, out any) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+path, nil)
	if err != nil {
		return etag, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Prefer", followPrefer)
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return etag, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	switch resp.StatusCode {
	case http.StatusNotModified:
		return etag, nil
	case http.StatusOK:
		return resp.Header.Get("ETag"), json.Unmarshal(b, out)
	}
	return etag, &statusError{resp.StatusCode, fmt.Sprintf("GET %s: %d %s", path, resp.StatusCode, strings.TrimSpace(string(b))), string(b), 0}
}

// Run performs the load run.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Orders <= 0 || cfg.Concurrency <= 0 {
		return nil, errors.New("loadgen: orders and concurrency must be positive")
	}
	if cfg.Customers <= 0 {
		cfg.Customers = min(cfg.Concurrency, 50)
	}
	if cfg.Products <= 0 {
		cfg.Products = 20
	}
	c := &client{base: strings.TrimRight(cfg.Target, "/"), http: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency * 2, MaxConnsPerHost: 0},
	}}
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "seeding %d products and %d customers (reused from earlier runs when there)…\n", cfg.Products, cfg.Customers)
	}
	seeded, products, err := seed(ctx, c, cfg)
	if err != nil {
		return nil, err
	}
	tokens := newCustomerTokens(seeded)
	reloginCtx, stopRelogin := context.WithCancel(ctx)
	defer stopRelogin()
	go tokens.keepFresh(reloginCtx, c, reloginEvery)
	res := &Result{Orders: cfg.Orders, FailedBecause: map[string]int{}}
	var mu sync.Mutex
	var done, shed atomic.Int64
	sem := make(chan struct{}, cfg.Concurrency)
	var wg sync.WaitGroup
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / cfg.Rate)
	}
	meter, notes, err := newMeter(ctx, cfg)
	if err != nil {
		return nil, err
	}
	res.Notes = notes
	stopProgress := progress(cfg.Progress, cfg.ProgressTTY, cfg.Orders, &done)
	start := time.Now()
	for i := 0; i < cfg.Orders; i++ {
		if interval > 0 {
			// Open-loop pacing: order i starts at start + i×interval.
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
				}
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			declined := rand.Float64() < cfg.DeclineRatio
			status, lat, accepted, err := placeAndFollow(ctx, c, tokens.get(i), products[rand.IntN(len(products))], declined, cfg.OnAccepted, &shed)
			mu.Lock()
			if accepted {
				res.Accepted++
			}
			switch {
			case err != nil:
				res.Failed++
				res.FailedBecause[failureReason(err, accepted)]++
			case status == "SHIPPED":
				res.Shipped++
			default:
				res.Cancelled++
			}
			if err == nil {
				res.Latencies = append(res.Latencies, lat)
				if (status == "SHIPPED") == declined {
					res.Unexpected++
				}
			}
			mu.Unlock()
			done.Add(1)
		}(i)
	}
	wg.Wait()
	res.Duration = time.Since(start)
	res.Shed = int(shed.Load())
	stopProgress()
	if meter != nil {
		if cfg.Progress != nil {
			fmt.Fprintln(cfg.Progress, "waiting for the processes to be quiet…")
		}
		if res.Measured, err = meter.stop(ctx, start); err != nil {
			return res, err
		}
		res.Measured.perOrder(res.Shipped + res.Cancelled)
	}
	slices.Sort(res.Latencies)
	return res, ctx.Err()
}

const (
	cardOK       = "4242424242424242"
	cardDeclined = "4000000000000002"
)

var address = map[string]string{"name": "Load Test", "line1": "1 Load Street", "city": "Benchville", "postalCode": "12345", "country": "DE"}

// placeAndFollow places one order and polls it to its final status. It
// reports whether the order was accepted (202). While following, answers
// that say the service is briefly unavailable (5xx, a refused connection)
// are retried, as a client would, until the order's 2-minute deadline.
// An answer that sheds the order for overload (503 or 429 with
// Retry-After) is retried after the wait it asks for and counted in shed
// (if not nil); the latency counts from the first attempt.
func placeAndFollow(ctx context.Context, c *client, token, productID string, declined bool, onAccepted func(string), shed *atomic.Int64) (string, time.Duration, bool, error) {
	card := cardOK
	if declined {
		card = cardDeclined
	}
	start := time.Now()
	var o struct{ ID, Status string }
	// Every order carries an Idempotency-Key, and an answer that leaves
	// the outcome open (502, 504, a dropped connection) or says nothing
	// happened (503; 429 or 503 with Retry-After: shed for overload) is
	// retried with the same key, as a careful client would: the order is
	// placed at most once.
	key := uuid.NewString()
	body := map[string]any{"items": []map[string]any{{"productId": productID, "quantity": 1}}, "payment": map[string]string{"card": card}, "shippingAddress": address}
	pause := 20 * time.Millisecond
	etag := "" // the order's, as the POST answered it: the first GET is held on it
	for {
		var err error
		etag, err = c.doWith(ctx, "POST", "/api/v1/orders", token, key, body, http.StatusAccepted, &o)
		if err == nil {
			break
		}
		var se *statusError
		isShed := errors.As(err, &se) && se.retryAfter > 0 && (se.code == http.StatusServiceUnavailable || se.code == http.StatusTooManyRequests)
		retryable := ctx.Err() == nil && (isShed || !errors.As(err, &se) || se.code == http.StatusBadGateway ||
			se.code == http.StatusServiceUnavailable || se.code == http.StatusGatewayTimeout)
		if !retryable || time.Since(start) > 2*time.Minute {
			return "", 0, false, err
		}
		wait := pause
		if isShed {
			wait = se.retryAfter
			if shed != nil {
				shed.Add(1)
			}
		} else {
			pause = min(pause*2, time.Second)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return "", 0, false, err
		}
	}
	if onAccepted != nil {
		onAccepted(o.ID)
	}
	// Follow the order with conditional GETs held by the service until
	// the order's status is final (If-None-Match + Prefer: wait, until=
	// final), as a client without push would: one request for the
	// outcome, from the first (on the POST's ETag) — or, from a release
	// that ignores until=final, one per change — instead of polling. A
	// failed request is retried after a short, growing pause.
	wait := 5 * time.Millisecond
	for {
		var err error
		etag, err = c.follow(ctx, "/api/v1/orders/"+o.ID, token, etag, &o)
		var se *statusError
		switch {
		case err == nil && (o.Status == "SHIPPED" || o.Status == "CANCELLED"):
			return o.Status, time.Since(start), true, nil
		case err != nil && ctx.Err() != nil:
			return "", 0, true, err
		case err != nil && errors.As(err, &se) && se.code < 500:
			return "", 0, true, err
		}
		if time.Since(start) > 2*time.Minute {
			return "", 0, true, fmt.Errorf("order %s still %s after 2m (last error: %v)", o.ID, o.Status, err)
		}
		if err == nil && etag != "" {
			wait = 5 * time.Millisecond
			continue // the service held the request until a change or its wait ended: ask again at once
		}
		select {
		case <-time.After(wait): // polling the API, as a client without push would
		case <-ctx.Done():
			return "", 0, true, ctx.Err()
		}
		wait = min(wait*2, 50*time.Millisecond)
	}
}

// failureReason names why an order failed, for Result.FailedBecause:
// "POST 409 conflict" before it was acknowledged, "follow: …" after.
func failureReason(err error, accepted bool) string {
	stage := "POST"
	if accepted {
		stage = "follow"
	}
	var se *statusError
	if errors.As(err, &se) {
		var body struct{ Error struct{ Code string } }
		json.Unmarshal([]byte(se.body), &body)
		return fmt.Sprintf("%s %d %s", stage, se.code, body.Error.Code)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return stage + " cancelled"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return stage + " timeout"
	}
	return stage + " " + err.Error()
}

// statusError is an answer with an unexpected HTTP status.
type statusError struct {
	code       int
	msg        string
	body       string
	retryAfter time.Duration // the answer's Retry-After; 0 without one
}

// maxRetryAfter caps the wait a Retry-After may ask of the load generator.
const maxRetryAfter = 30 * time.Second

// retryAfter reads a Retry-After header — delay seconds or an HTTP date —
// as a wait from now, at most maxRetryAfter; 0 if absent or malformed.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(h)); err == nil {
		return min(time.Duration(max(n, 0))*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(h); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter)
	}
	return 0
}

func (e *statusError) Error() string { return e.msg }

// seedSKU prefixes the SKUs of the products load runs order: LOAD-0, LOAD-1…
const seedSKU = "LOAD-"

// seed logs the admin in, creates products with ample stock and registers
// customers, returning the customer tokens and product ids. Products and
// customers are the same every run (SKUs LOAD-i, emails load-i@example.com):
// a run reuses those an earlier one left and creates only the missing ones,
// so repeated runs do not fill the catalog.
func seed(ctx context.Context, c *client, cfg Config) ([]string, []string, error) {
	var tok struct{ Token string }
	if err := c.do(ctx, "POST", "/api/v1/auth/token", "", map[string]string{"email": cfg.AdminEmail, "password": cfg.AdminPassword}, 200, &tok); err != nil {
		return nil, nil, fmt.Errorf("loadgen: admin login (set EVENTMART_ADMIN_EMAIL/PASSWORD on both sides): %w", err)
	}
	admin := tok.Token
	stockEach := int64(cfg.Orders) + 1000
	have, err := seededProducts(ctx, c)
	if err != nil {
		return nil, nil, fmt.Errorf("loadgen: seed products: %w", err)
	}
	var products []string
	for i := 0; i < cfg.Products; i++ {
		sku := fmt.Sprintf("%s%d", seedSKU, i)
		if id, ok := have[sku]; ok {
			products = append(products, id)
			continue
		}
		var p struct{ ID string }
		if err := c.do(ctx, "POST", "/api/v1/products", admin, map[string]any{"sku": sku, "name": fmt.Sprintf("Load product %d", i), "priceCents": 100 + i, "currency": "EUR"}, 201, &p); err != nil {
			return nil, nil, fmt.Errorf("loadgen: seed products: %w", err)
		}
		products = append(products, p.ID)
	}
	for _, id := range products {
		if err := retry(ctx, func() error {
			return c.do(ctx, "PUT", "/api/v1/inventory/"+id, admin, map[string]int64{"onHand": stockEach}, 200, nil)
		}); err != nil {
			return nil, nil, fmt.Errorf("loadgen: seed stock: %w", err)
		}
	}
	tokens := make([]string, cfg.Customers)
	errs := make([]error, cfg.Customers)
	var wg sync.WaitGroup
	for i := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The same customers every run: one registered by an earlier
			// run (409) logs in with the password it was given.
			email := fmt.Sprintf("load-%d@example.com", i)
			body := map[string]string{"email": email, "password": customerPassword, "name": fmt.Sprintf("Customer %d", i)}
			var se *statusError
			if errs[i] = c.do(ctx, "POST", "/api/v1/users", "", body, 201, nil); errs[i] != nil && !(errors.As(errs[i], &se) && se.code == http.StatusConflict) {
				return
			}
			tokens[i], errs[i] = customerLogin(ctx, c, i)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, fmt.Errorf("loadgen: register customers: %w", err)
	}
	// Orders need the stock to be known to inventory and products to the catalog.
	for _, id := range products {
		if err := retry(ctx, func() error {
			var p struct{ Availability struct{ Available int64 } }
			if err := c.do(ctx, "GET", "/api/v1/products/"+id, "", nil, 200, &p); err != nil {
				return err
			}
			if p.Availability.Available != stockEach {
				return fmt.Errorf("product %s availability %d", id, p.Availability.Available)
			}
			return nil
		}); err != nil {
			return nil, nil, fmt.Errorf("loadgen: wait for availability: %w", err)
		}
	}
	return tokens, products, nil
}

// seededProducts returns the active products of earlier runs by SKU,
// reading the catalog a page at a time.
func seededProducts(ctx context.Context, c *client) (map[string]string, error) {
	out := map[string]string{}
	for offset := 0; ; offset += 500 {
		var page struct{ Products []struct{ ID, SKU string } }
		if err := c.do(ctx, "GET", fmt.Sprintf("/api/v1/products?limit=500&offset=%d", offset), "", nil, 200, &page); err != nil {
			return nil, err
		}
		for _, p := range page.Products {
			if strings.HasPrefix(p.SKU, seedSKU) {
				out[p.SKU] = p.ID
			}
		}
		if len(page.Products) < 500 {
			return out, nil
		}
	}
}

// retry calls fn until it succeeds or 30 seconds pass: seeding waits for
// events to propagate between services.
func retry(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// progress draws a progress bar every 200ms until stopped, on a terminal
// (tty) redrawn in place; otherwise (a log, a file) a line every 10s and
// at the end, without carriage returns.
func progress(w io.Writer, tty bool, total int, done *atomic.Int64) func() {
	if w == nil {
		return func() {}
	}
	stop := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	every := 10 * time.Second
	if tty {
		every = 200 * time.Millisecond
	}
	draw := func() {
		n := done.Load()
		rate := float64(n) / time.Since(start).Seconds()
		if !tty {
			fmt.Fprintf(w, "%d/%d orders  %.0f/s\n", n, total, rate)
			return
		}
		const width = 30
		filled := int(float64(width) * float64(n) / float64(total))
		fmt.Fprintf(w, "\r[%s%s] %d/%d orders  %.0f/s ", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), n, total, rate)
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				draw()
			case <-stop:
				draw()
				if tty {
					fmt.Fprintln(w)
				}
				return
			}
		}
	}()
	return func() { close(stop); <-finished }
}

// customerPassword is every seeded customer's password.
const customerPassword = "load test password"

// reloginEvery is how often the customers log in again during a run: the
// server's access tokens expire (EVENTMART_TOKEN_TTL, 15 minutes by
// default), and a long run must not turn into 401s.
const reloginEvery = 5 * time.Minute

// customerLogin logs seeded customer i in and returns its access token.
func customerLogin(ctx context.Context, c *client, i int) (string, error) {
	var t struct{ Token string }
	err := c.do(ctx, "POST", "/api/v1/auth/token", "", map[string]string{"email": fmt.Sprintf("load-%d@example.com", i), "password": customerPassword}, 200, &t)
	return t.Token, err
}

// customerTokens holds each seeded customer's current access token; order
// workers read them while keepFresh replaces them.
type customerTokens struct{ toks []atomic.Pointer[string] }

func newCustomerTokens(seeded []string) *customerTokens {
	t := &customerTokens{toks: make([]atomic.Pointer[string], len(seeded))}
	for i := range seeded {
		t.toks[i].Store(&seeded[i])
	}
	return t
}

// get returns the token of the customer who places order i.
func (t *customerTokens) get(order int) string { return *t.toks[order%len(t.toks)].Load() }

// keepFresh logs every customer in again each period until ctx ends; a
// failed login keeps the customer's previous token (its orders then say
// why they fail).
func (t *customerTokens) keepFresh(ctx context.Context, c *client, period time.Duration) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for i := range t.toks {
			if tok, err := customerLogin(ctx, c, i); err == nil {
				t.toks[i].Store(&tok)
			}
		}
	}
}
