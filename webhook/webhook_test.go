package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventmart/eventmart/audit"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/obs/obstest"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/webhook"
)

// loopback lets deliveries reach the tests' receivers (and nothing else
// private): tests never send traffic beyond loopback.
var loopback = map[string]string{"EVENTMART_WEBHOOK_ALLOW": "127.0.0.0/8", "EVENTMART_WEBHOOK_RETRY_DELAYS": "20ms,20ms,20ms"}

func start(t testing.TB, settings map[string]string, defs ...service.Def) *apptest.Harness {
	return apptest.Start(t, append([]service.Def{webhook.Def()}, defs...), apptest.Settings(settings))
}

var origin = event.FromRequest("corr-1", event.Metadata{})

// request is one request a receiver got.
type request struct {
	ID, Timestamp, Signature string
	Body                     []byte
}

// receiver is a local webhook receiver answering with answer (nil: 204).
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []request
	answer func(n int, w http.ResponseWriter) // n counts requests from 1
	seen   chan struct{}
}

func newReceiver(t *testing.T, answer func(n int, w http.ResponseWriter)) *receiver {
	r := &receiver{answer: answer, seen: make(chan struct{}, 1000)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, request{req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp"), req.Header.Get("webhook-signature"), body})
		n := len(r.got)
		r.mu.Unlock()
		r.seen <- struct{}{}
		r.mu.Lock()
		answer := r.answer
		r.mu.Unlock()
		if answer != nil {
			answer(n, w)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.got...)
}

// create registers an endpoint and returns it with its secret.
func create(h *apptest.Harness, url string, types ...string) webhook.Endpoint {
	h.T.Helper()
	var ep webhook.Endpoint
	if types == nil {
		types = []string{}
	}
	h.JSON("POST", "/api/v1/webhooks/endpoints", h.Token("admin-1", "admin"),
		map[string]any{"url": url, "eventTypes": types, "description": "test receiver"}, http.StatusCreated, &ep)
	return ep
}

func deliveries(h *apptest.Harness, endpointID string) []webhook.Delivery {
	h.T.Helper()
	var b struct{ Deliveries []webhook.Delivery }
	h.JSON("GET", "/api/v1/webhooks/endpoints/"+endpointID+"/deliveries", h.Token("admin-1", "admin"), nil, http.StatusOK, &b)
	return b.Deliveries
}

func getEndpoint(h *apptest.Harness, id string) webhook.Endpoint {
	h.T.Helper()
	var ep webhook.Endpoint
	h.JSON("GET", "/api/v1/webhooks/endpoints/"+id, h.Token("admin-1", "admin"), nil, http.StatusOK, &ep)
	return ep
}

// verify checks a request's signatures the way Standard Webhooks says,
// and returns how many of them secret made.
func verify(t *testing.T, secret string, r request) int {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := strconv.ParseInt(r.Timestamp, 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)).Abs() > 5*time.Minute {
		t.Errorf("webhook-timestamp %q not now", r.Timestamp)
	}
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s.%s.%s", r.ID, r.Timestamp, r.Body)
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	n := 0
	for _, sig := range strings.Fields(r.Signature) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			n++
		}
	}
	return n
}

func orderCreated(id string) *event.OrderCreated {
	return &event.OrderCreated{OrderID: id, Customer: event.Customer{UserID: "cust-1"}, TotalCents: 100, Currency: "EUR"}
}

// wait blocks until the receiver has n requests.
func (r *receiver) wait(t *testing.T, n int) []request {
	t.Helper()
	deadline := time.After(apptest.Timeout)
	for {
		if got := r.requests(); len(got) >= n {
			return got
		}
		select {
		case <-r.seen:
		case <-deadline:
			t.Fatalf("receiver got %d requests, want %d", len(r.requests()), n)
		}
	}
}

func TestSignatureKnownAnswer(t *testing.T) {
	// The example of the Standard Webhooks reference libraries' tests.
	sig, err := webhook.Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; sig != want {
		t.Errorf("signature %s, want %s", sig, want)
	}
	if _, err := webhook.Sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg", time.Now(), nil); err == nil {
		t.Error("a secret without whsec_ signed")
	}
	s, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_")); !strings.HasPrefix(s, "whsec_") || err != nil || len(b) < 24 || len(b) > 64 {
		t.Errorf("secret %q: want whsec_ and base64 of 24-64 bytes", s)
	}
}

func TestDeliversSignedEnvelopesOfTheWantedTypes(t *testing.T) {
	t.Parallel()
	h := start(t, loopback)
	rcv := newReceiver(t, nil)
	ep := create(h, rcv.URL+"/hooks", "OrderCreated", "OrderShipped")
	if !strings.HasPrefix(ep.Secret, "whsec_") || ep.ID == "" || !ep.Enabled || len(ep.EventTypes) != 2 {
		t.Fatalf("created %+v", ep)
	}
	if got := getEndpoint(h, ep.ID); got.Secret != "" || got.URL != rcv.URL+"/hooks" || got.Description != "test receiver" {
		t.Errorf("GET shows %+v; the secret is shown only at creation", got)
	}
	envs := h.Publish("order-service", origin, &event.CartCreated{CartID: "c-1", UserID: "cust-1"}, orderCreated("o-1"))
	got := rcv.wait(t, 1)[0]
	if n := verify(t, ep.Secret, got); n != 1 {
		t.Errorf("%d valid signatures in %q, want 1", n, got.Signature)
	}
	want, _ := envs[1].Marshal()
	if string(got.Body) != string(want) {
		t.Errorf("body %s, want the envelope %s", got.Body, want)
	}
	if got.ID != webhook.MessageID(ep.ID, envs[1].EventID) {
		t.Errorf("webhook-id %s", got.ID)
	}
	h.Eventually("the delivery listed as delivered", func() bool {
		ds := deliveries(h, ep.ID)
		return len(ds) == 1 && ds[0].Status == webhook.StatusDelivered && ds[0].Attempts == 1 && len(ds[0].AttemptLog) == 1 &&
			ds[0].AttemptLog[0].StatusCode == 204 && ds[0].EventType == "OrderCreated" && ds[0].ID == got.ID
	})
	// A later event proves the CartCreated, consumed before it, was skipped.
	h.Publish("order-service", origin, &event.OrderShipped{OrderID: "o-1", UserID: "cust-1"})
	if reqs := rcv.wait(t, 2); len(reqs) != 2 || !strings.Contains(string(reqs[1].Body), `"OrderShipped"`) {
		t.Errorf("second delivery %s", reqs[1].Body)
	}
	// Only admins manage endpoints.
	if status, _, _ := h.Do("GET", "/api/v1/webhooks/endpoints", h.Token("cust-1", "customer"), nil); status != http.StatusForbidden {
		t.Errorf("a customer listing endpoints: %d", status)
	}
}

// TestEventsNoEndpointWantsCostNoTransaction: events of types no enabled
// endpoint wants are consumed as ignored, without an inbox transaction
// (no processed-event record; the inbox's tests count the commits, which
// here the delivery loop's start-up prune could add to), on SQLite and on
// PostgreSQL with EVENTMART_TEST_SERVICES_DB=postgres; an event of a
// wanted type is still delivered, and only it.
func TestEventsNoEndpointWantsCostNoTransaction(t *testing.T) {
	t.Parallel()
	h := start(t, loopback)
	rcv := newReceiver(t, nil)
	create(h, rcv.URL+"/hooks", "OrderShipped")
	consumed := func(outcome string) float64 {
		m, err := obstest.Scrape(h.Server.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		return m.Value("eventmart_events_consumed_total", "group", "webhook-service", "outcome", outcome)
	}
	was := consumed("ignored")
	h.Publish("order-service", origin, orderCreated("o-1"), orderCreated("o-2"), &event.CartCreated{CartID: "c-1", UserID: "cust-1"})
	h.Eventually("the three events consumed as ignored", func() bool { return consumed("ignored")-was == 3 })
	recorded := func() int {
		var n int
		if err := h.App.DB(webhook.Name).QueryRow(context.Background(), `SELECT COUNT(*) FROM processed_events`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := recorded(); n != 0 || consumed("processed") != 0 {
		t.Errorf("%d events recorded processed, %v counted processed; want none", n, consumed("processed"))
	}
	h.Publish("order-service", origin, &event.OrderShipped{OrderID: "o-1", UserID: "cust-1"})
	if reqs := rcv.wait(t, 1); len(reqs) != 1 || !strings.Contains(string(reqs[0].Body), `"OrderShipped"`) {
		t.Errorf("deliveries %d, the first %s; want the OrderShipped alone", len(reqs), reqs[0].Body)
	}
	if n := recorded(); n != 1 {
		t.Errorf("%d events recorded processed, want the OrderShipped", n)
	}
}

func TestRetriesUntilTheReceiverRecovers(t *testing.T) {
	t.Parallel()
	h := start(t, loopback)
	rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, strings.Repeat("x", 5000))
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	ep := create(h, rcv.URL)
	h.Publish("order-service", origin, orderCreated("o-2"))
	reqs := rcv.wait(t, 3)
	for _, r := range reqs {
		if r.ID != reqs[0].ID || verify(t, ep.Secret, r) != 1 {
			t.Errorf("attempt with webhook-id %s (first %s) signature %s", r.ID, reqs[0].ID, r.Signature)
		}
	}
	h.Eventually("three attempts recorded", func() bool {
		ds := deliveries(h, ep.ID)
		return len(ds) == 1 && ds[0].Status == webhook.StatusDelivered && len(ds[0].AttemptLog) == 3
	})
	a := deliveries(h, ep.ID)[0].AttemptLog
	if a[0].StatusCode != 500 || len(a[0].Response) != webhook.ResponseBytes || a[2].StatusCode != 200 {
		t.Errorf("attempts %+v", a)
	}
	// Success ends the failing streak.
	if got := getEndpoint(h, ep.ID); !got.Enabled {
		t.Errorf("endpoint %+v", got)
	}
	// Replaying the delivery sends it again, under the same webhook-id.
	h.JSON("POST", "/api/v1/webhooks/endpoints/"+ep.ID+"/replay", h.Token("admin-1", "admin"), map[string]string{"deliveryId": reqs[0].ID}, http.StatusOK, nil)
	if r := rcv.wait(t, 4)[3]; r.ID != reqs[0].ID {
		t.Errorf("replayed as %s, want %s", r.ID, reqs[0].ID)
	}
}

// TestRetriesAreMadeWhenDue: the delivery loop sleeps until a retry falls
// due, not until its next look at the queues (every 2 s without a nudge):
// two retries 20 ms apart are made well within one such interval.
func TestRetriesAreMadeWhenDue(t *testing.T) {
	t.Parallel()
	h := start(t, loopback)
	var mu sync.Mutex
	var at []time.Time
	rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		if n <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	create(h, rcv.URL)
	h.Publish("order-service", origin, orderCreated("o-due"))
	rcv.wait(t, 3)
	mu.Lock()
	defer mu.Unlock()
	if took := at[2].Sub(at[0]); took > time.Second {
		t.Errorf("two retries 20 ms apart took %s", took)
	}
}

func TestGivesUpAfterTheSchedule(t *testing.T) {
	t.Parallel()
	h := start(t, loopback)
	rcv := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusBadGateway) })
	ep := create(h, rcv.URL)
	h.Publish("order-service", origin, orderCreated("o-3"))
	h.Eventually("the delivery failed after 1+3 attempts", func() bool {
		ds := deliveries(h, ep.ID)
		return len(ds) == 1 && ds[0].Status == webhook.StatusFailed && ds[0].Attempts == 4 && ds[0].LastStatus == 502
	})
	if n := len(rcv.requests()); n != 4 {
		t.Errorf("%d requests, want 4", n)
	}
}

func TestGoneDisablesTheEndpoint(t *testing.T) {
	t.Parallel()
	h := start(t, loopback)
	rcv := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusGone) })
	ep := create(h, rcv.URL)
	h.Publish("order-service", origin, orderCreated("o-4"))
	e := h.Events.Wait(t, "WebhookEndpointDisabled", apptest.Keyed(ep.ID))
	p, err := e.Payload()
	if err != nil {
		t.Fatal(err)
	}
	if d := p.(*event.WebhookEndpointDisabled); d.URL != rcv.URL || !strings.Contains(d.Reason, "410") {
		t.Errorf("disabled event %+v", d)
	}
	got := getEndpoint(h, ep.ID)
	if got.Enabled || !strings.Contains(got.DisabledReason, "410") {
		t.Errorf("endpoint %+v", got)
	}
	// The delivery waiting is sent again when an admin enables the
	// endpoint, under the same webhook-id.
	rcv.mu.Lock()
	rcv.answer = nil // the receiver is back
	rcv.mu.Unlock()
	h.JSON("PATCH", "/api/v1/webhooks/endpoints/"+ep.ID, h.Token("admin-1", "admin"), map[string]any{"enabled": true}, http.StatusOK, nil)
	reqs := rcv.wait(t, 2)
	if reqs[1].ID != reqs[0].ID {
		t.Errorf("after enabling, got %s, want the waiting %s", reqs[1].ID, reqs[0].ID)
	}
	h.Eventually("the waiting delivery delivered", func() bool {
		ds := deliveries(h, ep.ID)
		return len(ds) == 1 && ds[0].Status == webhook.StatusDelivered && len(ds[0].AttemptLog) == 2 && ds[0].AttemptLog[0].StatusCode == 410
	})
}

func TestDisabledAfterFailingForTheConfiguredPeriod(t *testing.T) {
	t.Parallel()
	settings := map[string]string{"EVENTMART_WEBHOOK_ALLOW": "127.0.0.0/8", "EVENTMART_WEBHOOK_RETRY_DELAYS": "30ms,30ms,30ms,30ms,30ms,30ms,30ms,30ms",
		"EVENTMART_WEBHOOK_DISABLE_AFTER": "50ms"}
	h := start(t, settings)
	rcv := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) })
	ep := create(h, rcv.URL)
	h.Publish("order-service", origin, orderCreated("o-6"))
	e := h.Events.Wait(t, "WebhookEndpointDisabled", apptest.Keyed(ep.ID))
	p, _ := e.Payload()
	if r := p.(*event.WebhookEndpointDisabled).Reason; !strings.Contains(r, "every attempt failed since") {
		t.Errorf("reason %q", r)
	}
	if got := getEndpoint(h, ep.ID); got.Enabled {
		t.Errorf("endpoint %+v still enabled", got)
	}
}

func TestHangingEndpointDoesNotDelayAnother(t *testing.T) {
	t.Parallel()
	h := start(t, loopback)
	release := make(chan struct{})
	slow := newReceiver(t, func(_ int, w http.ResponseWriter) { <-release })
	t.Cleanup(func() { close(release) }) // before the receiver closes (cleanups run last first)
	fast := newReceiver(t, nil)
	create(h, slow.URL)
	epFast := create(h, fast.URL)
	for i := range 5 {
		h.Publish("order-service", origin, orderCreated(fmt.Sprintf("o-h%d", i)))
	}
	slow.wait(t, 1)
	// Every event reached the fast endpoint while the slow one still holds
	// its first request.
	fast.wait(t, 5)
	select {
	case <-release:
		t.Fatal("released early")
	default:
	}
	if n := len(slow.requests()); n != 1 {
		t.Errorf("the hanging endpoint got %d requests, want 1 (one at a time)", n)
	}
	h.Eventually("the fast endpoint's deliveries recorded", func() bool {
		ds := deliveries(h, epFast.ID)
		return len(ds) == 5 && ds[0].Status == webhook.StatusDelivered && ds[4].Status == webhook.StatusDelivered
	})
}

func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	h := start(t, loopback)
	rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	create(h, rcv.URL)
	h.Publish("order-service", origin, orderCreated("o-7"))
	first := rcv.wait(t, 1)[0]
	second := rcv.wait(t, 2)[1]
	t1, _ := strconv.ParseInt(first.Timestamp, 10, 64)
	t2, _ := strconv.ParseInt(second.Timestamp, 10, 64)
	if t2-t1 < 1 {
		t.Errorf("retried %ds after a Retry-After of 1s (the schedule says 20ms)", t2-t1)
	}
}

func TestRotationSignsWithBothSecrets(t *testing.T) {
	t.Parallel()
	h := start(t, loopback)
	rcv := newReceiver(t, nil)
	ep := create(h, rcv.URL)
	var rotated webhook.Endpoint
	h.JSON("POST", "/api/v1/webhooks/endpoints/"+ep.ID+"/rotate", h.Token("admin-1", "admin"), map[string]string{"overlap": "1h"}, http.StatusOK, &rotated)
	if rotated.Secret == ep.Secret || !strings.HasPrefix(rotated.Secret, "whsec_") {
		t.Fatalf("rotated secret %q", rotated.Secret)
	}
	h.Publish("order-service", origin, orderCreated("o-8"))
	r := rcv.wait(t, 1)[0]
	if verify(t, rotated.Secret, r) != 1 || verify(t, ep.Secret, r) != 1 || len(strings.Fields(r.Signature)) != 2 {
		t.Errorf("signature %q: want the new and the old secret's", r.Signature)
	}
	// Without overlap, the old secret stops signing at once.
	h.JSON("POST", "/api/v1/webhooks/endpoints/"+ep.ID+"/rotate", h.Token("admin-1", "admin"), map[string]string{"overlap": "0s"}, http.StatusOK, &rotated)
	h.Publish("order-service", origin, orderCreated("o-9"))
	r = rcv.wait(t, 2)[1]
	if verify(t, rotated.Secret, r) != 1 || len(strings.Fields(r.Signature)) != 1 {
		t.Errorf("signature %q: want only the newest secret's", r.Signature)
	}
}

func TestTestMessageAndEndpointLifecycle(t *testing.T) {
	t.Parallel()
	h := start(t, loopback)
	rcv := newReceiver(t, nil)
	ep := create(h, rcv.URL)
	admin := h.Token("admin-1", "admin")
	var res struct {
		WebhookID string
		Delivered bool
		Attempt   webhook.Attempt
	}
	h.JSON("POST", "/api/v1/webhooks/endpoints/"+ep.ID+"/test", admin, nil, http.StatusOK, &res)
	if !res.Delivered || res.Attempt.StatusCode != 204 {
		t.Errorf("test answer %+v", res)
	}
	r := rcv.wait(t, 1)[0]
	if r.ID != res.WebhookID || verify(t, ep.Secret, r) != 1 || !strings.Contains(string(r.Body), `"eventType":"WebhookTest"`) {
		t.Errorf("test message %+v", r)
	}
	h.JSON("PATCH", "/api/v1/webhooks/endpoints/"+ep.ID, admin, map[string]any{"eventTypes": []string{"NoSuchEvent"}}, http.StatusBadRequest, nil)
	h.JSON("PATCH", "/api/v1/webhooks/endpoints/"+ep.ID, admin, map[string]any{"eventTypes": []string{"AuditRecorded"}}, http.StatusBadRequest, nil)
	var upd webhook.Endpoint
	h.JSON("PATCH", "/api/v1/webhooks/endpoints/"+ep.ID, admin, map[string]any{"description": "ERP", "eventTypes": []string{"PaymentProcessed"}}, http.StatusOK, &upd)
	if upd.Description != "ERP" || len(upd.EventTypes) != 1 || upd.URL != ep.URL {
		t.Errorf("updated %+v", upd)
	}
	var list struct{ Endpoints []webhook.Endpoint }
	h.JSON("GET", "/api/v1/webhooks/endpoints", admin, nil, http.StatusOK, &list)
	if len(list.Endpoints) != 1 || list.Endpoints[0].ID != ep.ID {
		t.Errorf("list %+v", list)
	}
	h.JSON("DELETE", "/api/v1/webhooks/endpoints/"+ep.ID, admin, nil, http.StatusNoContent, nil)
	h.JSON("GET", "/api/v1/webhooks/endpoints/"+ep.ID, admin, nil, http.StatusNotFound, nil)
}

// An ordered endpoint gets its deliveries strictly in queue order: a
// failing one holds up the next until it succeeds.
func TestOrderedEndpointKeepsOrder(t *testing.T) {
	t.Parallel()
	h := start(t, loopback)
	rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	var ep webhook.Endpoint
	h.JSON("POST", "/api/v1/webhooks/endpoints", h.Token("admin-1", "admin"), map[string]any{"url": rcv.URL, "ordered": true}, http.StatusCreated, &ep)
	if !ep.Ordered {
		t.Fatalf("created %+v", ep)
	}
	var want []string
	for i := range 4 {
		e := h.Publish("order-service", origin, &event.OrderShipped{OrderID: "o-ord", UserID: "cust-1", ShipmentID: fmt.Sprint(i)})[0]
		want = append(want, webhook.MessageID(ep.ID, e.EventID))
	}
	reqs := rcv.wait(t, 6)
	var got []string
	for _, r := range reqs {
		got = append(got, r.ID)
	}
	// The first twice refused, then accepted; then the rest in order.
	if exp := append([]string{want[0], want[0]}, want...); strings.Join(got, " ") != strings.Join(exp, " ") {
		t.Errorf("order of webhook-ids\n got %v\nwant %v", got, exp)
	}
}

// A time range is replayed from the audit trail, under the same
// webhook-ids: not limited to what the deliveries table holds (here, an
// event from before the endpoint existed).
func TestReplayTimeRangeFromTheAuditTrail(t *testing.T) {
	t.Parallel()
	h := start(t, loopback, audit.Def())
	before := h.Publish("order-service", origin, orderCreated("o-r1"))[0]
	admin := h.Token("admin-1", "admin")
	h.Eventually("the audit trail to hold the first event", func() bool {
		status, _, body := h.Do("GET", "/api/v1/admin/events?correlationId=corr-1", admin, nil)
		return status == http.StatusOK && strings.Contains(string(body), before.EventID)
	})
	// And the webhook group to have consumed it (it lingers): an endpoint
	// created earlier would be sent it live.
	h.Eventually("the webhook group to consume the first event", func() bool {
		m, err := obstest.Scrape(h.Server.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := m.Sum("eventmart_events_consumed_total", "group", "webhook-service")
		return n >= 1
	})
	rcv := newReceiver(t, nil)
	ep := create(h, rcv.URL, "OrderCreated")
	after := h.Publish("order-service", origin, &event.CartCreated{CartID: "c-r", UserID: "cust-1"}, orderCreated("o-r2"))[1]
	if r := rcv.wait(t, 1)[0]; r.ID != webhook.MessageID(ep.ID, after.EventID) {
		t.Fatalf("first delivery %s", r.ID)
	}
	h.Eventually("the audit trail to hold every event", func() bool {
		status, _, body := h.Do("GET", "/api/v1/admin/events?correlationId=corr-1", admin, nil)
		return status == http.StatusOK && strings.Contains(string(body), after.EventID)
	})
	var res struct{ Queued int }
	h.JSON("POST", "/api/v1/webhooks/endpoints/"+ep.ID+"/replay", admin, map[string]string{
		"from": before.Timestamp.Add(-time.Second).Format(time.RFC3339Nano), "to": time.Now().Add(time.Second).Format(time.RFC3339Nano)}, http.StatusOK, &res)
	if res.Queued != 2 {
		t.Errorf("queued %d, want the two OrderCreated (not the CartCreated)", res.Queued)
	}
	got := map[string]bool{}
	for _, r := range rcv.wait(t, 3)[1:] {
		got[r.ID] = verify(t, ep.Secret, r) == 1
	}
	for _, e := range []*event.Envelope{before, after} {
		if !got[webhook.MessageID(ep.ID, e.EventID)] {
			t.Errorf("%s not replayed (signed) under its webhook-id; got %v", e.EventID, got)
		}
	}
	// The time range is required in full.
	h.JSON("POST", "/api/v1/webhooks/endpoints/"+ep.ID+"/replay", admin, map[string]string{"from": "yesterday"}, http.StatusBadRequest, nil)
}
