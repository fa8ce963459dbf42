package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/audit"
	"github.com/eventmart/eventmart/cart"
	"github.com/eventmart/eventmart/catalog"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/console"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/inventory"
	"github.com/eventmart/eventmart/notification"
	"github.com/eventmart/eventmart/order"
	"github.com/eventmart/eventmart/payment"
	"github.com/eventmart/eventmart/shipping"
	"github.com/eventmart/eventmart/user"
)

func everyService() []service.Def {
	return []service.Def{user.Def(), catalog.Def(), inventory.Def(), cart.Def(), order.Def(), payment.Def(), shipping.Def(), notification.Def(), audit.Def()}
}

var address = map[string]any{"name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postalCode": "SW1Y 4JH", "country": "GB"}

// placeOrder creates a product with stock and lets a customer order it;
// it returns the order's id and correlation id.
func placeOrder(h *apptest.Harness, adminToken string) (string, string) {
	var p struct{ ID string }
	h.JSON("POST", "/api/v1/products", adminToken, map[string]any{"sku": "SKU-" + event.NewID()[24:], "name": "Mug", "priceCents": 1200, "currency": "EUR"}, http.StatusCreated, &p)
	h.Eventually("inventory to know the product", func() bool {
		status, _, _ := h.Do("PUT", "/api/v1/inventory/"+p.ID, adminToken, map[string]int64{"onHand": 10})
		return status == http.StatusOK
	})
	// A registered customer: notifications need their address.
	email := "c-" + event.NewID() + "@example.com"
	h.JSON("POST", "/api/v1/users", "", map[string]string{"email": email, "password": "long enough password", "name": "Ada"}, http.StatusCreated, nil)
	var tok struct{ Token string }
	h.JSON("POST", "/api/v1/auth/token", "", map[string]string{"email": email, "password": "long enough password"}, http.StatusOK, &tok)
	h.Eventually("the welcome notification", func() bool {
		_, _, b := h.Do("GET", "/api/v1/notifications", tok.Token, nil)
		return strings.Contains(string(b), "welcome")
	})
	status, hdr, b := h.Do("POST", "/api/v1/orders", tok.Token, map[string]any{
		"items": []map[string]any{{"productId": p.ID, "quantity": 1}}, "payment": map[string]string{"card": "4242424242424242"}, "shippingAddress": address})
	if status != http.StatusAccepted {
		h.T.Fatalf("place order: %d %s", status, b)
	}
	var o struct{ ID string }
	if err := json.Unmarshal(b, &o); err != nil {
		h.T.Fatal(err)
	}
	return o.ID, hdr.Get("X-Correlation-ID")
}

// TestConsoleIsForAdmins: every console endpoint refuses anonymous callers
// (401) and customers (403).
func TestConsoleIsForAdmins(t *testing.T) {
	h := apptest.Start(t, []service.Def{order.Def()})
	customer := h.Token("c1", "customer")
	for _, p := range []string{"/api/v1/admin/stream", "/api/v1/admin/topics", "/api/v1/admin/topology", "/api/v1/admin/sagas", "/api/v1/admin/consumers/order"} {
		if status, _, b := h.Do("GET", p, "", nil); status != http.StatusUnauthorized {
			t.Errorf("GET %s anonymously: %d %s, want 401", p, status, b)
		}
		if status, _, b := h.Do("GET", p, customer, nil); status != http.StatusForbidden {
			t.Errorf("GET %s as a customer: %d %s, want 403", p, status, b)
		}
	}
	// The front end itself is public; it holds no data.
	status, hdr, b := h.Do("GET", "/console/", "", nil)
	if status != http.StatusOK || !strings.Contains(hdr.Get("Content-Type"), "text/html") || !strings.Contains(string(b), "Eventmart") {
		t.Errorf("GET /console/: %d %s %.100s", status, hdr.Get("Content-Type"), b)
	}
	if status, _, _ := h.Do("GET", "/console/no-such-file.js", "", nil); status != http.StatusNotFound {
		t.Errorf("GET /console/no-such-file.js: %d, want 404", status)
	}
}

// stream opens the event stream with query q as an admin and waits for
// its "ready" message.
func stream(t *testing.T, h *apptest.Harness, token, q string) (<-chan console.StreamEvent, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", h.Server.URL+"/api/v1/admin/stream?"+q, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	next := func() (string, string, bool) {
		var name, data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "" && name != "":
				return name, data, true
			case strings.HasPrefix(line, "event: "):
				name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				data = line[len("data: "):]
			}
		}
		return "", "", false
	}
	if name, _, ok := next(); !ok || name != "ready" {
		t.Fatalf("first message %q, want ready", name)
	}
	out := make(chan console.StreamEvent, 100)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		for {
			name, data, ok := next()
			if !ok {
				return
			}
			if name != "event" {
				t.Errorf("stream message %s: %s", name, data)
				continue
			}
			var ev console.StreamEvent
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Errorf("event %s: %v", data, err)
			}
			out <- ev
		}
	}()
	return out, cancel
}

func receive(t *testing.T, events <-chan console.StreamEvent) console.StreamEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(apptest.Timeout):
		t.Fatal("no event within the timeout")
	}
	return console.StreamEvent{}
}

// TestStreamDeliversFilteredEvents: the stream starts at the latest
// offsets, delivers a published event with its envelope, and lets through
// only the asked type and correlation id.
func TestStreamDeliversFilteredEvents(t *testing.T) {
	h := apptest.Start(t, nil)
	admin := h.Token("root", "admin")
	orderID := event.NewID()
	x, y := event.FromRequest(event.NewID(), event.Metadata{}), event.FromRequest(event.NewID(), event.Metadata{})
	created := func() *event.OrderCreated {
		return &event.OrderCreated{OrderID: orderID, Customer: event.Customer{UserID: "u1"}, Currency: "EUR"}
	}
	before := h.Publish("order-service", x, created()) // before the stream: not delivered

	events, cancel := stream(t, h, admin, "type=OrderCreated&correlationId="+x.CorrelationID)
	defer cancel()
	// One key, one partition: the records keep this order.
	want1 := h.Publish("order-service", x, created())[0]
	h.Publish("order-service", y, created())                                                                                    // other correlation id
	h.Publish("order-service", x, &event.OrderCancelled{OrderID: orderID, UserID: "u1", ReasonCode: "timeout", Reason: "late"}) // other type
	want2 := h.Publish("order-service", x, created())[0]

	for _, want := range []*event.Envelope{want1, want2} {
		ev := receive(t, events)
		if ev.EventID != want.EventID || ev.EventType != "OrderCreated" || ev.CorrelationID != x.CorrelationID || ev.Topic != "order-events" || ev.Source != "order-service" || ev.Key != orderID {
			t.Fatalf("got %+v, want event %s", ev, want.EventID)
		}
		var env event.Envelope
		if err := json.Unmarshal(ev.Envelope, &env); err != nil || env.EventID != want.EventID {
			t.Fatalf("envelope %s: %v", ev.Envelope, err)
		}
		if ev.EventID == before[0].EventID {
			t.Fatal("an event published before the stream started was delivered")
		}
	}
	select {
	case ev := <-events:
		t.Fatalf("unexpected event %+v", ev)
	case <-time.After(300 * time.Millisecond): // a few poll intervals: nothing else matches
	}

	// since: the stream starts that long ago.
	events2, cancel2 := stream(t, h, admin, "since=1m&correlationId="+x.CorrelationID)
	defer cancel2()
	var got []string
	for range 4 { // before, want1, the cancellation, want2
		got = append(got, receive(t, events2).EventID)
	}
	if !slices.Contains(got, before[0].EventID) || !slices.Contains(got, want2.EventID) {
		t.Fatalf("since=1m delivered %v, want the earlier events too", got)
	}
}

type topicsAnswer struct {
	Topics []struct {
		Name        string
		Partitions  int32
		RetentionMs int64
		Messages    int64
		Groups      []struct {
			Group      string
			Lag        int64
			Partitions []struct {
				Partition      int32
				Committed, End int64
				Lag            int64
			}
		}
	}
	Consumers []console.Consumer
	Warnings  []string
}

// TestConsoleFollowsAnOrder runs every service, places an order and checks
// what the console shows of it: topics with the groups' lag back to zero,
// the topology with the saga's publishers and consumers.
func TestConsoleFollowsAnOrder(t *testing.T) {
	h := apptest.Start(t, everyService())
	admin := h.Token("root", "admin")
	all, cancel := stream(t, h, admin, "")
	defer cancel()
	orderID, corr := placeOrder(h, admin)
	h.Eventually("the order to ship", func() bool {
		var o struct{ Status string }
		h.JSON("GET", "/api/v1/orders/"+orderID, admin, nil, http.StatusOK, &o)
		return o.Status == "SHIPPED"
	})
	// The stream saw the saga, in causal order per entity.
	saga := []string{"OrderCreated", "InventoryReserved", "PaymentProcessed", "ShippingCreated", "NotificationSent", "OrderShipped"}
	seen := map[string]bool{}
	for slices.ContainsFunc(saga, func(typ string) bool { return !seen[typ] }) { // until every step was seen
		ev := receive(t, all)
		if ev.CorrelationID == corr {
			seen[ev.EventType] = true
		}
	}

	var ta topicsAnswer
	h.Eventually("every group to catch up", func() bool {
		h.JSON("GET", "/api/v1/admin/topics", admin, nil, http.StatusOK, &ta)
		for _, tp := range ta.Topics {
			for _, g := range tp.Groups {
				if g.Lag != 0 {
					return false
				}
			}
		}
		return true
	})
	if len(ta.Warnings) != 0 {
		t.Errorf("warnings: %v", ta.Warnings)
	}
	var orders *struct {
		Name        string
		Partitions  int32
		RetentionMs int64
		Messages    int64
		Groups      []struct {
			Group      string
			Lag        int64
			Partitions []struct {
				Partition      int32
				Committed, End int64
				Lag            int64
			}
		}
	}
	for i := range ta.Topics {
		if ta.Topics[i].Name == "order-events" {
			orders = &ta.Topics[i]
		}
	}
	if orders == nil || orders.Partitions != 20 || orders.RetentionMs != event.Year.Milliseconds() || orders.Messages < 3 {
		t.Fatalf("order-events: %+v", orders)
	}
	var groups []string
	for _, g := range orders.Groups {
		groups = append(groups, g.Group)
		if len(g.Partitions) != 20 {
			t.Errorf("%s: %d partitions of lag, want 20", g.Group, len(g.Partitions))
		}
		for _, p := range g.Partitions {
			if p.End > 0 && p.Committed != p.End {
				t.Errorf("%s partition %d: committed %d, end %d, lag 0", g.Group, p.Partition, p.Committed, p.End)
			}
		}
	}
	for _, want := range []string{"audit-service", "inventory-service", "payment-service", "shipping-service", "notification-service"} {
		if !slices.Contains(groups, want) {
			t.Errorf("order-events groups %v lack %s", groups, want)
		}
	}
	if slices.Contains(groups, "catalog-service") {
		t.Errorf("order-events groups %v: the catalog does not consume it", groups)
	}

	var topo console.Topology
	h.JSON("GET", "/api/v1/admin/topology?window=10m", admin, nil, http.StatusOK, &topo)
	pub := func(svc, typ string) bool {
		return slices.ContainsFunc(topo.Publishes, func(p console.Publish) bool {
			return p.Service == svc && p.EventType == typ && p.Count >= 1 && p.PerMinute > 0
		})
	}
	for _, p := range [][2]string{{"order-service", "OrderCreated"}, {"inventory-service", "InventoryReserved"}, {"payment-service", "PaymentProcessed"}, {"shipping-service", "ShippingCreated"}, {"order-service", "OrderShipped"}} {
		if !pub(p[0], p[1]) {
			t.Errorf("topology: no publish %s → %s in %+v", p[0], p[1], topo.Publishes)
		}
	}
	cons := func(svc, typ string, observed bool) bool {
		return slices.ContainsFunc(topo.Consumes, func(c console.Consume) bool {
			return c.Service == svc && c.EventType == typ && c.Declared && c.Observed == observed
		})
	}
	for _, c := range [][2]string{{"inventory-service", "OrderCreated"}, {"payment-service", "InventoryReserved"}, {"shipping-service", "PaymentProcessed"}, {"notification-service", "OrderShipped"}} {
		if !cons(c[0], c[1], true) {
			t.Errorf("topology: %s does not consume %s (declared and observed) in %+v", c[0], c[1], topo.Consumes)
		}
	}
	if !cons("catalog-service", "InventoryReserved", false) { // handled, but it publishes nothing in return
		t.Errorf("topology: the catalog's subscription to InventoryReserved is missing")
	}
	if len(topo.Warnings) != 0 {
		t.Errorf("topology warnings: %v", topo.Warnings)
	}
}

// TestConsoleShowsAStuckSaga: with shipping failing, an order stays
// CONFIRMED; the sagas endpoint reports it stuck and its dead letter is in
// shipping's queue under the order's correlation id.
func TestConsoleShowsAStuckSaga(t *testing.T) {
	h := apptest.Start(t, everyService(), apptest.Settings(map[string]string{
		"EVENTMART_FAIL_EVENTS": "shipping:PaymentProcessed", "EVENTMART_RETRY_DELAYS": "10ms", "EVENTMART_RETRY_ATTEMPTS": "2"}))
	admin := h.Token("root", "admin")
	orderID, corr := placeOrder(h, admin)
	h.Eventually("shipping's dead letter", func() bool {
		_, _, b := h.Do("GET", "/api/v1/admin/dlq/shipping", admin, nil)
		return strings.Contains(string(b), corr)
	})
	var sagas struct {
		InFlight   map[string]int64
		Stuck      int64
		StuckAfter string
		Sagas      []order.Saga
	}
	h.Eventually("the order to be stuck", func() bool {
		h.JSON("GET", "/api/v1/admin/sagas?stuckAfter=1ms", admin, nil, http.StatusOK, &sagas)
		return sagas.Stuck == 1
	})
	if sagas.InFlight["CONFIRMED"] != 1 || sagas.InFlight["PENDING"] != 0 || sagas.StuckAfter != "1ms" || len(sagas.Sagas) != 1 {
		t.Fatalf("sagas: %+v", sagas)
	}
	if s := sagas.Sagas[0]; s.OrderID != orderID || s.CorrelationID != corr || s.Status != "CONFIRMED" || !s.Stuck || s.AgeMs < s.IdleMs {
		t.Fatalf("saga: %+v", s)
	}
	h.JSON("GET", "/api/v1/admin/sagas", admin, nil, http.StatusOK, &sagas)
	if sagas.StuckAfter != "30s" || sagas.Stuck != 0 || sagas.Sagas[0].Stuck {
		t.Fatalf("with the default (the saga timeout): %+v", sagas)
	}
	if status, _, _ := h.Do("GET", "/api/v1/admin/sagas?stuckAfter=soon", admin, nil); status != http.StatusBadRequest {
		t.Errorf("stuckAfter=soon: %d, want 400", status)
	}
	var cn console.Consumer
	h.JSON("GET", "/api/v1/admin/consumers/shipping", admin, nil, http.StatusOK, &cn)
	if cn.Group != "shipping-service" || !slices.Contains(cn.EventTypes, "PaymentProcessed") || !slices.Equal(cn.Topics, []string{"order-events", "payment-events"}) {
		t.Errorf("shipping's consumer group: %+v", cn)
	}
	if status, _, _ := h.Do("GET", "/api/v1/admin/consumers/user", admin, nil); status != http.StatusNotFound {
		t.Errorf("the user service consumes nothing: %d, want 404", status)
	}
}
