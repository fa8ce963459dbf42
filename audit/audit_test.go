package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventmart/eventmart/audit"
	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/catalog"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/service"
)

func start(t *testing.T) (*apptest.Harness, string) {
	h := apptest.Start(t, []service.Def{audit.Def(), catalog.Def()})
	return h, h.Token("admin-1", "admin")
}

func auditService(h *apptest.Harness) *audit.Service {
	return h.App.Service(audit.Name).(*audit.Service)
}

// publish puts envelopes on the bus exactly as given (the same envelope
// twice is a redelivery).
func publish(t *testing.T, h *apptest.Harness, envs ...*event.Envelope) {
	t.Helper()
	var msgs []*bus.Message
	for _, e := range envs {
		m, err := eventmsg.Encode(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if err := h.Bus.Publish(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

// envelope builds an event of p caused by origin, occurring at ts (zero:
// now).
func envelope(t *testing.T, o event.Origin, ts time.Time, p event.Payload) *event.Envelope {
	t.Helper()
	e, err := event.New("test-service", o, p)
	if err != nil {
		t.Fatal(err)
	}
	if !ts.IsZero() {
		e.Timestamp = ts
	}
	return e
}

// query returns the envelopes GET /admin/events answers for params.
func query(t *testing.T, h *apptest.Harness, admin, params string) []*event.Envelope {
	t.Helper()
	var body struct{ Events []json.RawMessage }
	h.JSON("GET", "/api/v1/admin/events?"+params, admin, nil, http.StatusOK, &body)
	var out []*event.Envelope
	for _, raw := range body.Events {
		e, err := event.Decode(raw)
		if err != nil {
			t.Fatalf("GET /admin/events?%s returned an invalid envelope %s: %v", params, raw, err)
		}
		out = append(out, e)
	}
	return out
}

// waitFor waits until the query returns n events and returns them.
func waitFor(t *testing.T, h *apptest.Harness, admin, params string, n int) []*event.Envelope {
	t.Helper()
	var got []*event.Envelope
	h.Eventually(fmt.Sprintf("%d audited events for %q", n, params), func() bool {
		got = query(t, h, admin, params)
		return len(got) >= n
	})
	if len(got) != n {
		t.Fatalf("%q: %d events, want %d", params, len(got), n)
	}
	return got
}

func ids(envs []*event.Envelope) []string {
	var out []string
	for _, e := range envs {
		out = append(out, string(e.EventType)+":"+e.EventID)
	}
	return out
}

func sameOrder(t *testing.T, what string, got []*event.Envelope, want ...*event.Envelope) {
	t.Helper()
	if g, w := strings.Join(ids(got), " "), strings.Join(ids(want), " "); g != w {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// everyType returns one event of every business event type, all keyed
// "k" (so each topic's events share a partition and keep their order).
func everyType(t *testing.T, o event.Origin) []*event.Envelope {
	var envs []*event.Envelope
	for _, spec := range event.Catalog() {
		if spec.Topic == event.TopicAudit {
			continue
		}
		p := spec.New()
		if err := json.Unmarshal([]byte(`{"userId":"k","productId":"k","orderId":"k"}`), p); err != nil {
			t.Fatal(err)
		}
		envs = append(envs, envelope(t, o, time.Time{}, p))
	}
	return envs
}

func TestEveryBusinessEventIsRecordedOnceAndTheChainVerifies(t *testing.T) {
	h, admin := start(t)
	envs := everyType(t, event.FromRequest("all-types", event.Metadata{UserID: "u1"}))
	if len(envs) < 27 {
		t.Fatalf("%d business event types", len(envs))
	}
	// Every event twice (a redelivery), then one more event per topic on
	// the same key: once those are recorded, the duplicates before them in
	// their partitions have been handled.
	publish(t, h, envs...)
	publish(t, h, envs...)
	var sentinels []*event.Envelope
	seen := map[event.Topic]bool{}
	for _, e := range everyType(t, event.FromRequest("sentinel", event.Metadata{})) {
		if topic := event.TopicOf(e.EventType); !seen[topic] {
			seen[topic] = true
			sentinels = append(sentinels, e)
		}
	}
	publish(t, h, sentinels...)
	waitFor(t, h, admin, "correlationId=sentinel", len(sentinels))

	got := query(t, h, admin, "limit=1000")
	if len(got) != len(envs)+len(sentinels) {
		t.Errorf("%d records, want %d: every event once", len(got), len(envs)+len(sentinels))
	}
	count := map[string]int{}
	for _, e := range got {
		count[e.EventID]++
	}
	for _, e := range envs {
		if count[e.EventID] != 1 {
			t.Errorf("%s recorded %d times, want once", e.EventType, count[e.EventID])
		}
	}
	// The trail deduplicated on its own (inbox.OwnDeduplication): its
	// consumer kept no processed-event record.
	var processed int
	if err := h.App.DB(audit.Name).QueryRow(context.Background(), `SELECT COUNT(*) FROM processed_events`).Scan(&processed); err != nil || processed != 0 {
		t.Errorf("%d processed-event rows in the audit database (%v), want none", processed, err)
	}
	// The record is the exact envelope.
	want, _ := envs[0].Marshal()
	rec := query(t, h, admin, "type="+string(envs[0].EventType)+"&correlationId=all-types")
	if b, _ := rec[0].Marshal(); len(rec) != 1 || string(b) != string(want) {
		t.Errorf("recorded %s, want %s", b, want)
	}

	res, err := auditService(h).Verify(context.Background())
	if err != nil || !res.OK() || res.Records != int64(len(got)) || res.Reason != "" {
		t.Errorf("Verify = %+v, %v; want %d intact records", res, err, len(got))
	}
	var v struct {
		Records  int64
		OK       bool
		FirstBad int64
		Reason   string
	}
	h.JSON("GET", "/api/v1/admin/audit/verify", admin, nil, http.StatusOK, &v)
	if !v.OK || v.Records != int64(len(got)) || v.FirstBad != 0 {
		t.Errorf("GET /admin/audit/verify = %+v", v)
	}
}

func TestEventsOfTheRunningServicesAreAudited(t *testing.T) {
	h, admin := start(t)
	req, _ := http.NewRequest("POST", h.Server.URL+"/api/v1/products", strings.NewReader(`{"sku":"MUG","name":"Mug","priceCents":1299,"currency":"EUR"}`))
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Correlation-ID", "create-mug")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /products: %s", resp.Status)
	}
	emitted := h.Events.Wait(t, "ProductCreated", apptest.Correlated("create-mug"))
	action := h.Events.Wait(t, "AdminActionPerformed", apptest.Correlated("create-mug"))
	got := waitFor(t, h, admin, "correlationId=create-mug", 2)
	if got[0].Source != "catalog-service" || got[0].Metadata.UserID != "admin-1" {
		t.Errorf("audited %+v", got[0])
	}
	sameOrder(t, "by entity", query(t, h, admin, "entity="+emitted.Key), emitted)
	sameOrder(t, "by event id", query(t, h, admin, "eventId="+action.EventID), action)
	sameOrder(t, "the admin's action", query(t, h, admin, "type=AdminActionPerformed"), action)
	p, err := action.Payload()
	if err != nil {
		t.Fatal(err)
	}
	if a := p.(*event.AdminActionPerformed); a.AdminID != "admin-1" || a.Method != "POST" || a.Path != "/api/v1/products" || a.Status != 201 {
		t.Errorf("admin action %+v", a)
	}
	// Every record is published to audit-events in its block, locating the
	// recorded event on its topic.
	var r event.AuditBlockRecord
	var b *event.AuditBlockRecorded
	blk := h.Events.Wait(t, "AuditBlockRecorded", func(e *event.Envelope) bool {
		p, err := e.Payload()
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range p.(*event.AuditBlockRecorded).Records {
			if rec.EventID == emitted.EventID {
				r, b = rec, p.(*event.AuditBlockRecorded)
				return true
			}
		}
		return false
	})
	var env event.Envelope
	if err := json.Unmarshal(r.Envelope, &env); err != nil {
		t.Fatal(err)
	}
	if r.Type != "ProductCreated" || r.Topic != string(event.TopicOf("ProductCreated")) || r.Key != emitted.Key ||
		r.Partition != emitted.Partition || r.Offset != emitted.Offset || r.Seq < 1 || env.EventID != emitted.EventID ||
		len(b.Hash) != 64 || len(b.PrevHash) != 64 || b.Part != 1 || b.Parts != 1 || blk.Key != "audit" {
		t.Errorf("AuditBlockRecorded %+v with %+v for %+v (partition %d offset %d)", b, r, emitted, emitted.Partition, emitted.Offset)
	}
}

// seed records n events and returns them in seq order.
func seed(t *testing.T, h *apptest.Harness, admin string, n int) []*event.Envelope {
	o := event.FromRequest("seed", event.Metadata{})
	var envs []*event.Envelope
	for i := 0; i < n; i++ {
		envs = append(envs, envelope(t, o, time.Time{}, &event.ProductCreated{ProductID: "p1", SKU: fmt.Sprint("S", i), Name: "n", PriceCents: 1, Currency: "EUR"}))
	}
	publish(t, h, envs...) // one key: one partition, recorded in this order
	waitFor(t, h, admin, "", n)
	return envs
}

func TestVerifyReportsTheFirstBrokenLink(t *testing.T) {
	for _, c := range []struct {
		name     string
		tamper   string
		args     []any
		firstBad int64
		reason   string
	}{
		{"changed envelope", `UPDATE audit_log SET envelope = REPLACE(envelope, '"sku":"S1"', '"sku":"FAKE"') WHERE seq = 2`, nil, 2, "hash mismatch"},
		{"changed key", `UPDATE audit_log SET record_key = 'p2' WHERE seq = 3`, nil, 3, "hash mismatch"},
		{"changed indexed column", `UPDATE audit_log SET correlation_id = 'other' WHERE seq = 3`, nil, 3, "column correlation_id"},
		{"relinked row", `UPDATE audit_log SET prev_hash = ? WHERE seq = 4`, []any{audit.GenesisHash}, 4, "prev_hash mismatch"},
		{"deleted row", `DELETE FROM audit_log WHERE seq = 2`, nil, 2, "gap in seq: record 2 is missing"},
		{"deleted last rows", `DELETE FROM audit_log WHERE seq >= 4`, nil, 4, "the last records were deleted"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, admin := start(t)
			seed(t, h, admin, 5)
			svc := auditService(h)
			ctx := context.Background()
			if res, err := svc.Verify(ctx); err != nil || !res.OK() || res.Records != 5 {
				t.Fatalf("before tampering: Verify = %+v, %v", res, err)
			}
			if err := svc.ExecForTest(ctx, c.tamper, c.args...); err != nil {
				t.Fatal(err)
			}
			res, err := svc.Verify(ctx)
			if err != nil || res.OK() || res.FirstBad != c.firstBad || !strings.Contains(res.Reason, c.reason) {
				t.Errorf("Verify = %+v, %v; want first bad %d with reason containing %q", res, err, c.firstBad, c.reason)
			}
			var v struct {
				OK       bool
				FirstBad int64
				Reason   string
			}
			h.JSON("GET", "/api/v1/admin/audit/verify", admin, nil, http.StatusOK, &v)
			if v.OK || v.FirstBad != c.firstBad || v.Reason != res.Reason {
				t.Errorf("GET /admin/audit/verify = %+v", v)
			}
		})
	}
}

func TestConcurrentAppendsNeverForkTheChain(t *testing.T) {
	h, admin := start(t)
	svc := auditService(h)
	o := event.FromRequest("concurrent", event.Metadata{})
	envs := make([]*event.Envelope, 40)
	for i := range envs {
		envs[i] = envelope(t, o, time.Time{}, &event.OrderConfirmed{OrderID: fmt.Sprint("o", i)})
	}
	errs := make(chan error, 2*len(envs))
	var wg sync.WaitGroup
	for _, e := range append(envs, envs...) { // every event twice, concurrently
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- svc.AppendForTest(context.Background(), e)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		// Appenders queue on the chain head's row lock, so a duplicate
		// sees the committed first copy and is dropped, not a conflict.
		if err != nil {
			t.Error(err)
		}
	}
	res, err := svc.Verify(context.Background())
	if err != nil || !res.OK() || res.Records != int64(len(envs)) {
		t.Errorf("Verify = %+v, %v; want %d intact records", res, err, len(envs))
	}
	waitFor(t, h, admin, "correlationId=concurrent&limit=1000", len(envs))
}

func TestQueryFiltersAndCausalOrder(t *testing.T) {
	h, admin := start(t)
	base := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	// A saga whose clocks disagree with causality: children carry earlier
	// timestamps than their parents, and arrive first.
	root := envelope(t, event.FromRequest("saga-1", event.Metadata{UserID: "u1"}), at(3), &event.OrderCreated{OrderID: "o1", Currency: "EUR"})
	reserved := envelope(t, root.Origin(), at(1), &event.InventoryReserved{OrderID: "o1"})
	confirmed := envelope(t, root.Origin(), at(2), &event.OrderConfirmed{OrderID: "o1"})
	initiated := envelope(t, reserved.Origin(), at(0), &event.PaymentInitiated{OrderID: "o1"})
	other := envelope(t, event.FromRequest("other", event.Metadata{}), at(10), &event.ProductCreated{ProductID: "p1", SKU: "S", Name: "n", PriceCents: 1, Currency: "EUR"})
	publish(t, h, initiated, confirmed, reserved)
	waitFor(t, h, admin, "correlationId=saga-1", 3)
	publish(t, h, root, other)
	waitFor(t, h, admin, "", 5)

	// Parents first; among ready events the earliest: initiated (0s) is
	// ready once reserved is placed and precedes confirmed (2s).
	sameOrder(t, "causal order", query(t, h, admin, "correlationId=saga-1"), root, reserved, initiated, confirmed)
	sameOrder(t, "causal page", query(t, h, admin, "correlationId=saga-1&limit=2&offset=1"), reserved, initiated)
	sameOrder(t, "causal with type", query(t, h, admin, "correlationId=saga-1&type=PaymentInitiated"), initiated)
	sameOrder(t, "causal with time", query(t, h, admin, "correlationId=saga-1&from="+url.QueryEscape(at(1).Format(time.RFC3339))), root, reserved, confirmed)
	sameOrder(t, "unknown correlation", query(t, h, admin, "correlationId=nope"))

	sameOrder(t, "type", query(t, h, admin, "type=OrderCreated"), root)
	sameOrder(t, "entity", query(t, h, admin, "entity=p1"), other)
	byOrder := query(t, h, admin, "entity=o1")
	if len(byOrder) != 4 || byOrder[3].EventID != root.EventID {
		t.Errorf("entity=o1 in seq order: %v, want 4 ending with the root (recorded last)", ids(byOrder))
	}
	window := query(t, h, admin, "from="+url.QueryEscape(at(1).Format(time.RFC3339))+"&to="+url.QueryEscape(at(3).Format(time.RFC3339)))
	if got := strings.Join(ids(window), " "); len(window) != 2 || !strings.Contains(got, reserved.EventID) || !strings.Contains(got, confirmed.EventID) {
		t.Errorf("from 1s to 3s: %s, want reserved and confirmed (to is exclusive)", got)
	}
	sameOrder(t, "from", query(t, h, admin, "from="+url.QueryEscape(at(3).Format(time.RFC3339Nano))+"&type=OrderCreated"), root)
	sameOrder(t, "to", query(t, h, admin, "to="+url.QueryEscape(at(0).Format(time.RFC3339))))
	if all := query(t, h, admin, "limit=2&offset=4"); len(all) != 1 {
		t.Errorf("limit=2&offset=4 of 5: %d events", len(all))
	}
}

func TestAuthorizationAndBadQueries(t *testing.T) {
	h, admin := start(t)
	customer := h.Token("cust-1", "customer")
	for _, c := range []struct {
		name, path, token string
		status            int
		code, msg         string
	}{
		{"anonymous events", "/api/v1/admin/events", "", 401, "unauthorized", "authentication required"},
		{"customer events", "/api/v1/admin/events", customer, 403, "forbidden", "admins only"},
		{"anonymous verify", "/api/v1/admin/audit/verify", "", 401, "unauthorized", "authentication required"},
		{"customer verify", "/api/v1/admin/audit/verify", customer, 403, "forbidden", "admins only"},
		{"customer with bad params", "/api/v1/admin/events?limit=0", customer, 403, "forbidden", "admins only"},
		{"limit zero", "/api/v1/admin/events?limit=0", admin, 400, "invalid", "limit: must be an integer from 1 to 1000"},
		{"limit too big", "/api/v1/admin/events?limit=1001", admin, 400, "invalid", "limit"},
		{"limit not a number", "/api/v1/admin/events?limit=many", admin, 400, "invalid", "limit"},
		{"negative offset", "/api/v1/admin/events?offset=-1", admin, 400, "invalid", "offset"},
		{"bad from", "/api/v1/admin/events?from=yesterday", admin, 400, "invalid", "from: not an RFC 3339 time"},
		{"bad to", "/api/v1/admin/events?to=2026-13-01T00:00:00Z", admin, 400, "invalid", "to: not an RFC 3339 time"},
		{"from after to", "/api/v1/admin/events?from=2026-11-25T00:00:00Z&to=2026-11-24T00:00:00Z", admin, 400, "invalid", "from must not be after to"},
		{"unknown type", "/api/v1/admin/events?type=OrderTeleported", admin, 400, "invalid", `type: unknown event type "OrderTeleported"`},
		{"unknown parameter", "/api/v1/admin/events?entityId=o1", admin, 400, "invalid", `unknown query parameter "entityId"`},
		{"repeated parameter", "/api/v1/admin/events?type=OrderCreated&type=OrderShipped", admin, 400, "invalid", "type: given more than once"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, _, b := h.Do("GET", c.path, c.token, nil)
			var eb httpx.ErrorBody
			json.Unmarshal(b, &eb)
			if status != c.status || eb.Error.Code != c.code || !strings.Contains(eb.Error.Message, c.msg) {
				t.Errorf("got %d %s, want %d %s containing %q", status, b, c.status, c.code, c.msg)
			}
		})
	}
	var body struct {
		Events        []json.RawMessage
		Limit, Offset int
	}
	h.JSON("GET", "/api/v1/admin/events?type=OrderCreated", admin, nil, http.StatusOK, &body)
	if body.Events == nil || len(body.Events) != 0 || body.Limit != audit.DefaultLimit || body.Offset != 0 {
		t.Errorf("no OrderCreated in the trail: %+v", body)
	}
	// The five refused requests above are security events in the trail.
	denied := waitFor(t, h, admin, "type=AccessDenied", 5)
	var anonymous, customers int
	for _, e := range denied {
		p, err := e.Payload()
		if err != nil {
			t.Fatal(err)
		}
		switch d := p.(*event.AccessDenied); {
		case d.Status == 401 && d.UserID == "" && event.PartitionKey(d) == "anonymous" && d.Method == "GET":
			anonymous++
		case d.Status == 403 && d.UserID == "cust-1" && d.Role == "customer" && event.PartitionKey(d) == "cust-1" && strings.HasPrefix(d.Path, "/api/v1/admin/"):
			customers++
		default:
			t.Errorf("AccessDenied %+v key %q", d, e.Key)
		}
	}
	if anonymous != 2 || customers != 3 {
		t.Errorf("AccessDenied: %d anonymous, %d by the customer; want 2 and 3", anonymous, customers)
	}
}

// TestAFailingEventLeavesTheRestOfItsBatchRecorded: when one event of a
// consumed batch fails (and is dead-lettered), the inbox applies the batch
// record by record; the block then holds the others, each once, and the
// chain verifies without a gap.
func TestAFailingEventLeavesTheRestOfItsBatchRecorded(t *testing.T) {
	h := apptest.Start(t, []service.Def{audit.Def(), catalog.Def()}, apptest.Settings(map[string]string{
		"EVENTMART_FAIL_EVENTS": "audit:OrderConfirmed", "EVENTMART_RETRY_DELAYS": "10ms", "EVENTMART_RETRY_ATTEMPTS": "2",
	}))
	admin := h.Token("admin-1", "admin")
	o := event.FromRequest("failing", event.Metadata{})
	created := envelope(t, o, time.Time{}, &event.OrderCreated{OrderID: "o1", Currency: "EUR"})
	confirmed := envelope(t, created.Origin(), time.Time{}, &event.OrderConfirmed{OrderID: "o1"})
	shipped := envelope(t, confirmed.Origin(), time.Time{}, &event.OrderShipped{OrderID: "o1"})
	cancelled := envelope(t, o, time.Time{}, &event.OrderCancelled{OrderID: "o1", ReasonCode: "r", Reason: "r"})
	publish(t, h, created, confirmed, shipped, cancelled) // one key: one partition, one batch
	got := waitFor(t, h, admin, "correlationId=failing&limit=100", 3)
	count := map[string]int{}
	for _, e := range got {
		count[e.EventID]++
	}
	if count[created.EventID] != 1 || count[shipped.EventID] != 1 || count[cancelled.EventID] != 1 || count[confirmed.EventID] != 0 {
		t.Errorf("recorded %v, want OrderCreated, OrderShipped and OrderCancelled once each, not the failing OrderConfirmed", ids(got))
	}
	res, err := auditService(h).Verify(context.Background())
	if err != nil || !res.OK() || res.Records < 3 {
		t.Errorf("Verify = %+v, %v; want an intact chain", res, err)
	}
}
