// Package authz_test walks every operation of the gateway's OpenAPI
// document as an anonymous caller, two customers and an admin, and checks
// a table of who may do what. An operation the table does not classify
// fails the walk, so every new endpoint must be given its rules here.
package authz_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/analytics"

	"github.com/eventmart/eventmart/audit"
	"github.com/eventmart/eventmart/cart"
	"github.com/eventmart/eventmart/catalog"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/inventory"
	"github.com/eventmart/eventmart/notification"
	"github.com/eventmart/eventmart/order"
	"github.com/eventmart/eventmart/payment"
	"github.com/eventmart/eventmart/shipping"
	"github.com/eventmart/eventmart/user"
	"github.com/eventmart/eventmart/webhook"
)

const (
	adminEmail    = "root@example.com"
	adminPassword = "root passphrase for tests"
	password      = "long enough password"
	cardOK        = "4242424242424242"
)

var address = map[string]any{"name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postalCode": "SW1Y 4JH", "country": "GB"}

// The callers of the walk.
type actor int

const (
	anon actor = iota
	custA
	custB
	admin
	nActors
)

var actorNames = [nActors]string{"anonymous", "customer A", "customer B", "admin"}

// fixture holds the callers' tokens and customer A's real resources.
type fixture struct {
	h      *apptest.Harness
	tokens [nActors]string
	emailB string
	// refreshB is a refresh token of B's.
	refreshB string

	userA, userB, emailA                         string
	orderA, productA, shipmentA, paymentA, cartA string
	// userC is an account of no actor's, whose personal data the walk
	// erases (A must keep logging in).
	userC string
}

// private are A's identifiers no one but A and admins may see.
func (f *fixture) private() map[string]string {
	return map[string]string{"A's user id": f.userA, "A's email": f.emailA, "A's order id": f.orderA,
		"A's shipment id": f.shipmentA, "A's payment id": f.paymentA, "A's cart id": f.cartA}
}

// check judges one response; it returns "" if the response is as
// expected, else what is wrong.
type check func(f *fixture, status int, body []byte) string

func statusIn(codes ...int) check {
	return func(_ *fixture, status int, _ []byte) string {
		if slices.Contains(codes, status) {
			return ""
		}
		return fmt.Sprintf("status %d, want one of %v", status, codes)
	}
}

func success(_ *fixture, status int, _ []byte) string {
	if status >= 200 && status < 300 {
		return ""
	}
	return fmt.Sprintf("status %d, want 2xx", status)
}

var (
	unauthorized = statusIn(http.StatusUnauthorized)
	forbidden    = statusIn(http.StatusForbidden)
	// hidden: another customer's resource is refused or looks missing.
	hidden = statusIn(http.StatusForbidden, http.StatusNotFound)
)

// filtered: a list documented to answer another customer's filter with
// nothing (no 403/404). The private-data check of the walk makes sure the
// list holds none of A's ids.
func filtered(f *fixture, status int, body []byte) string {
	if status == http.StatusForbidden || status == http.StatusNotFound {
		return ""
	}
	return success(f, status, body)
}

// contains: 2xx and the body names A's resource (so a "no leak" result
// elsewhere is not vacuous).
func contains(id func(*fixture) string) check {
	return func(f *fixture, status int, body []byte) string {
		if msg := success(f, status, body); msg != "" {
			return msg
		}
		if !strings.Contains(string(body), id(f)) {
			return fmt.Sprintf("body does not contain %s: %s", id(f), trim(body))
		}
		return ""
	}
}

func orderA(f *fixture) string    { return f.orderA }
func paymentA(f *fixture) string  { return f.paymentA }
func shipmentA(f *fixture) string { return f.shipmentA }
func userA(f *fixture) string     { return f.userA }

// call is one request of the walk, made by every actor.
type call struct {
	query  func(*fixture) string // appended to the path after "?"; nil: none
	stream bool                  // a response that never ends: read up to the first message
	body   func(actor) any       // nil: no body
	want   [nActors]check        // by actor
	// fresh: each actor calls with a session of its own, logged in for the
	// call, so that a call ending sessions leaves the walk's tokens alone.
	fresh bool
	// path, if set, is the path called instead of the operation's with A's
	// ids.
	path func(*fixture) string
}

// rule classifies one operation of the document.
type rule struct {
	op    string // "METHOD /path" as in the document
	calls func(f *fixture) []call
}

// Shorthands for the common classes.
func public(body func(actor) any) func(*fixture) []call {
	return func(*fixture) []call {
		return []call{{body: body, want: [nActors]check{success, success, success, success}}}
	}
}

func self(body func(actor) any) func(*fixture) []call {
	return func(*fixture) []call {
		return []call{{body: body, want: [nActors]check{unauthorized, success, success, success}}}
	}
}

func adminOnly(body func(actor) any) func(*fixture) []call {
	return func(*fixture) []call {
		return []call{{body: body, want: [nActors]check{unauthorized, forbidden, forbidden, success}}}
	}
}

// adminOnlyWant: admins only, and the admin gets adminWant.
func adminOnlyWant(adminWant check) func(*fixture) []call {
	return func(*fixture) []call {
		return []call{{want: [nActors]check{unauthorized, forbidden, forbidden, adminWant}}}
	}
}

// adminOnlyBody: admins only, sending body; the admin gets adminWant.
func adminOnlyBody(body func(actor) any, adminWant check) func(*fixture) []call {
	return func(*fixture) []call {
		return []call{{body: body, want: [nActors]check{unauthorized, forbidden, forbidden, adminWant}}}
	}
}

// ownedByA: the path names A's resource; A and admins get ownerWant.
func ownedByA(ownerWant check) func(*fixture) []call {
	return func(*fixture) []call {
		return []call{{want: [nActors]check{unauthorized, ownerWant, hidden, ownerWant}}}
	}
}

// freshly makes the calls of rules with a fresh session per actor.
func freshly(rules func(*fixture) []call) func(*fixture) []call {
	return func(f *fixture) []call {
		cs := rules(f)
		for i := range cs {
			cs[i].fresh = true
		}
		return cs
	}
}

// freshToken logs a in anew; "" for the anonymous caller.
func (f *fixture) freshToken(a actor) string {
	switch a {
	case custA:
		return login(f.h, f.emailA, password)
	case custB:
		return login(f.h, f.emailB, password)
	case admin:
		return login(f.h, adminEmail, adminPassword)
	}
	return ""
}

func fixed(v any) func(actor) any { return func(actor) any { return v } }

// rules is the authorization table, in the order the walk runs. The last
// rules change state others depend on (a discontinued product, deactivated
// accounts).
func rules(f *fixture) []rule {
	return []rule{
		{"GET /healthz", public(nil)},
		{"GET /readyz", public(nil)},
		{"GET /metrics", public(nil)},
		{"GET /api/v1/openapi.json", public(nil)},
		{"GET /api/v1/asyncapi.json", public(nil)},
		{"POST /api/v1/users", public(func(a actor) any {
			return map[string]string{"email": fmt.Sprintf("new-%d-%s@example.com", a, event.NewID()), "password": password, "name": "New"}
		})},
		{"POST /api/v1/auth/token", public(fixed(map[string]string{"email": f.emailB, "password": password}))},
		{"POST /api/v1/auth/refresh", public(func(actor) any { return map[string]string{"refreshToken": f.refreshB} })},
		{"GET /api/v1/users", adminOnly(nil)},
		{"GET /api/v1/users/me", self(nil)},
		{"PATCH /api/v1/users/me", self(fixed(map[string]string{"name": "Renamed"}))},
		{"GET /api/v1/users/{id}", ownedByA(contains(userA))},

		{"GET /api/v1/products", public(nil)},
		{"GET /api/v1/products/{id}", public(nil)},
		{"POST /api/v1/products", adminOnly(func(actor) any {
			return map[string]any{"sku": "SKU-" + event.NewID()[24:], "name": "Gadget", "priceCents": 999, "currency": "EUR"}
		})},
		{"PATCH /api/v1/products/{id}", adminOnly(fixed(map[string]any{"name": "Widget renamed"}))},
		{"GET /api/v1/inventory/{productId}", public(nil)},
		{"PUT /api/v1/inventory/{productId}", adminOnly(fixed(map[string]any{"onHand": 500}))},
		{"GET /api/v1/inventory/{productId}/history", adminOnly(nil)},

		{"GET /api/v1/cart", func(*fixture) []call {
			return []call{
				{want: [nActors]check{unauthorized, success, success, success}},
				{query: func(f *fixture) string { return "userId=" + f.userA },
					want: [nActors]check{unauthorized, success, forbidden, success}},
			}
		}},
		{"POST /api/v1/cart/items", self(fixed(map[string]any{"productId": f.productA, "quantity": 1}))},
		{"DELETE /api/v1/cart/items/{productId}", self(nil)},

		{"POST /api/v1/orders", self(fixed(map[string]any{
			"items":   []map[string]any{{"productId": f.productA, "quantity": 1}},
			"payment": map[string]string{"card": cardOK}, "shippingAddress": address}))},
		{"GET /api/v1/orders", func(*fixture) []call {
			return []call{
				{want: [nActors]check{unauthorized, contains(orderA), success, success}},
				{query: func(f *fixture) string { return "userId=" + f.userA },
					want: [nActors]check{unauthorized, contains(orderA), forbidden, contains(orderA)}},
			}
		}},
		{"GET /api/v1/orders/{id}", ownedByA(contains(orderA))},
		{"GET /api/v1/orders/{id}/events", ownedByA(contains(orderA))},
		{"GET /api/v1/orders/{id}/history", ownedByA(contains(orderA))},
		// A's order is SHIPPED: owner and admin may try, and get 409.
		{"POST /api/v1/orders/{id}/cancel", ownedByA(statusIn(http.StatusConflict))},

		{"POST /api/v1/payments/cards", self(fixed(map[string]string{"number": cardOK}))},
		{"GET /api/v1/payments", func(*fixture) []call {
			return []call{
				{want: [nActors]check{unauthorized, contains(paymentA), success, success}},
				{query: func(f *fixture) string { return "orderId=" + f.orderA },
					want: [nActors]check{unauthorized, contains(paymentA), filtered, contains(paymentA)}},
			}
		}},
		{"GET /api/v1/payments/{id}/ledger", ownedByA(contains(paymentA))},
		{"GET /api/v1/shipments", func(*fixture) []call {
			return []call{
				{want: [nActors]check{unauthorized, contains(shipmentA), success, success}},
				{query: func(f *fixture) string { return "orderId=" + f.orderA },
					want: [nActors]check{unauthorized, contains(shipmentA), filtered, contains(shipmentA)}},
			}
		}},
		{"POST /api/v1/shipments/{id}/dispatch", adminOnly(nil)},
		{"POST /api/v1/shipments/{id}/deliver", adminOnly(nil)},

		{"GET /api/v1/notifications", func(*fixture) []call {
			return []call{
				{want: [nActors]check{unauthorized, success, success, success}},
				{query: func(f *fixture) string { return "userId=" + f.userA },
					want: [nActors]check{unauthorized, success, forbidden, success}},
				{query: func(f *fixture) string { return "subjectId=" + f.orderA },
					want: [nActors]check{unauthorized, contains(orderA), success, contains(orderA)}},
			}
		}},

		// The dead-letter queues, of the order service's consumer group:
		// admins only. There are no dead letters, so one letter is 404.
		// The audit trail: admins only.
		{"GET /api/v1/admin/events", adminOnly(nil)},
		{"GET /api/v1/admin/audit/verify", adminOnly(nil)},
		// The scheduled export's state: admins only.
		{"GET /api/v1/admin/export", adminOnly(nil)},
		{"GET /api/v1/admin/archive", func(*fixture) []call {
			return []call{{query: func(*fixture) string { return "topic=order-events&partition=0" },
				want: [nActors]check{unauthorized, forbidden, forbidden, success}}}
		}},
		{"GET /api/v1/admin/dlq/{service}", adminOnly(nil)},
		{"POST /api/v1/admin/dlq/{service}/redrive", adminOnly(nil)},
		{"GET /api/v1/admin/dlq/{service}/{id}", adminOnlyWant(statusIn(http.StatusNotFound))},
		{"POST /api/v1/admin/dlq/{service}/{id}/redrive", adminOnlyWant(statusIn(http.StatusNotFound))},
		{"POST /api/v1/admin/dlq/{service}/{id}/discard", adminOnlyWant(statusIn(http.StatusNotFound))},
		// Replay into the order service's group: admins only.
		{"POST /api/v1/admin/replay/{service}", adminOnly(func(actor) any { return map[string]any{"topic": "payment-events", "key": "no-such-entity"} })},
		{"POST /api/v1/admin/rebuild/{service}", adminOnly(nil)},
		// The event-flow console: its front end is public, its data for admins.
		{"GET /console", public(nil)},
		{"GET /console/{file}", public(nil)},
		{"GET /api/v1/admin/stream", func(*fixture) []call {
			return []call{{stream: true, want: [nActors]check{unauthorized, forbidden, forbidden, success}}}
		}},
		{"GET /api/v1/admin/topics", adminOnly(nil)},
		{"GET /api/v1/admin/topology", adminOnly(nil)},
		{"GET /api/v1/admin/messages", func(*fixture) []call {
			return []call{{query: func(*fixture) string { return "topic=order-events" },
				want: [nActors]check{unauthorized, forbidden, forbidden, success}}}
		}},
		{"GET /api/v1/admin/samples", adminOnly(nil)},
		{"GET /api/v1/admin/region", adminOnly(nil)},
		{"GET /favicon.ico", public(nil)},
		{"GET /api/v1/admin/consumers/{service}", adminOnly(nil)},
		{"GET /api/v1/admin/sagas", adminOnly(nil)},

		{"GET /api/v1/analytics/windows", adminOnly(nil)},
		{"GET /api/v1/analytics/detections", adminOnly(nil)},
		{"GET /api/v1/analytics/rules", adminOnly(nil)},
		{"PUT /api/v1/analytics/rules", adminOnlyBody(fixed(map[string]any{"rules": []any{}}), statusIn(http.StatusOK))},
		{"GET /api/v1/webhooks/endpoints", adminOnly(nil)},
		// A private address: refused at registration, no connection made.
		{"POST /api/v1/webhooks/endpoints", adminOnlyBody(fixed(map[string]any{"url": "https://10.0.0.1/hooks"}), statusIn(http.StatusBadRequest))},
		{"GET /api/v1/webhooks/endpoints/{id}", adminOnlyWant(statusIn(http.StatusNotFound))},
		{"PATCH /api/v1/webhooks/endpoints/{id}", adminOnlyBody(fixed(map[string]any{"description": "x"}), statusIn(http.StatusNotFound))},
		{"DELETE /api/v1/webhooks/endpoints/{id}", adminOnlyWant(statusIn(http.StatusNotFound))},
		{"POST /api/v1/webhooks/endpoints/{id}/rotate", adminOnlyWant(statusIn(http.StatusNotFound))},
		{"GET /api/v1/webhooks/endpoints/{id}/deliveries", adminOnlyWant(statusIn(http.StatusNotFound))},
		{"POST /api/v1/webhooks/endpoints/{id}/test", adminOnlyWant(statusIn(http.StatusNotFound))},
		{"POST /api/v1/webhooks/endpoints/{id}/replay", adminOnlyBody(fixed(map[string]any{"deliveryId": "x"}), statusIn(http.StatusNotFound))},

		// Last: these change what the rules above rely on.
		{"DELETE /api/v1/products/{id}", adminOnly(nil)},
		{"POST /api/v1/auth/logout", freshly(self(nil))},
		{"DELETE /api/v1/users/{id}/sessions", freshly(ownedByA(success))},
		// Erasing is for the account holder (internal/apptest/security
		// TestPersonalDataErasure) or an admin; walked on C's account, as
		// erasing A's would end the walk's logins.
		{"DELETE /api/v1/users/{id}/personal-data", func(*fixture) []call {
			return []call{{path: func(f *fixture) string { return "/api/v1/users/" + f.userC + "/personal-data" },
				want: [nActors]check{unauthorized, hidden, hidden, success}, fresh: true}}
		}},
		// Eventmart's own processes only (a token of role "service"): no
		// user, not even an admin.
		{"GET /api/v1/users/{id}/personal-key", func(*fixture) []call {
			return []call{{want: [nActors]check{unauthorized, forbidden, forbidden, forbidden}, fresh: true}}
		}},
		{"DELETE /api/v1/users/me", freshly(self(nil))},
	}
}

func TestAuthorizationWalk(t *testing.T) {
	ops := documentOperations(t)
	f := setUp(t)
	table := rules(f)

	// Every operation of the document is classified, and every rule names
	// an operation of the document.
	classified := map[string]bool{}
	for _, r := range table {
		if classified[r.op] {
			t.Errorf("rule %s appears twice", r.op)
		}
		classified[r.op] = true
		if !slices.Contains(ops, r.op) {
			t.Errorf("rule %s: no such operation in gateway/openapi.json", r.op)
		}
	}
	for _, op := range ops {
		if !classified[op] {
			t.Errorf("operation %s of gateway/openapi.json is not classified in the authorization table: add a rule", op)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	requests := 0
	defer func() { t.Logf("%d operations, %d requests", len(table), requests) }()
	for _, r := range table {
		method, path, _ := strings.Cut(r.op, " ")
		path = f.substitute(t, path)
		for _, c := range r.calls(f) {
			p := path
			if c.path != nil {
				p = c.path(f)
			}
			if c.query != nil {
				p += "?" + c.query(f)
			}
			for a := anon; a < nActors; a++ {
				var body any
				if c.body != nil {
					body = c.body(a)
				}
				var status int
				var b []byte
				token := f.tokens[a]
				if c.fresh {
					token = f.freshToken(a)
				}
				if c.stream {
					status, b = firstMessage(t, f.h.Server.URL+p, token)
				} else {
					status, _, b = f.h.Do(method, p, token, body)
				}
				requests++
				if msg := c.want[a](f, status, b); msg != "" {
					t.Errorf("%s %s as %s: %s; body %s", method, p, actorNames[a], msg, trim(b))
				}
				// Neither anonymous callers nor customer B ever see A's data.
				if (a == anon || a == custB) && status >= 200 && status < 300 {
					for what, id := range f.private() {
						if id != "" && strings.Contains(string(b), id) {
							t.Errorf("%s %s as %s: %d response contains %s (%s): %s", method, p, actorNames[a], status, what, id, trim(b))
						}
					}
				}
			}
		}
	}
}

// setUp starts every service, registers customers A and B, creates a
// product with stock, lets A order it (and put it in the cart), and waits
// until A's order has shipped.
func setUp(t *testing.T) *fixture {
	h := apptest.Start(t, []service.Def{user.Def(), catalog.Def(), inventory.Def(), cart.Def(), order.Def(), payment.Def(), shipping.Def(), notification.Def(), audit.Def(), webhook.Def(), analytics.Def()},
		apptest.Settings(map[string]string{"EVENTMART_ADMIN_EMAIL": adminEmail, "EVENTMART_ADMIN_PASSWORD": adminPassword}))
	f := &fixture{h: h}
	f.tokens[admin] = login(h, adminEmail, adminPassword)
	f.emailA = "a-" + event.NewID() + "@example.com"
	f.emailB = "b-" + event.NewID() + "@example.com"
	f.userA, f.tokens[custA] = register(h, f.emailA, "Customer A")
	f.userB, f.tokens[custB] = register(h, f.emailB, "Customer B")
	f.userC, _ = register(h, "c-"+event.NewID()+"@example.com", "Customer C")
	var tok struct{ RefreshToken string }
	h.JSON("POST", "/api/v1/auth/token", "", map[string]string{"email": f.emailB, "password": password}, http.StatusOK, &tok)
	f.refreshB = tok.RefreshToken

	var p struct{ ID string }
	h.JSON("POST", "/api/v1/products", f.tokens[admin], map[string]any{"sku": "SKU-AUTHZ", "name": "Widget", "priceCents": 1250, "currency": "EUR"}, http.StatusCreated, &p)
	f.productA = p.ID
	h.Eventually("inventory to know the product", func() bool {
		status, _, _ := h.Do("PUT", "/api/v1/inventory/"+p.ID, f.tokens[admin], map[string]int64{"onHand": 100})
		return status == http.StatusOK
	})

	var o struct{ ID, Status, PaymentID, ShipmentID string }
	h.JSON("POST", "/api/v1/orders", f.tokens[custA], map[string]any{
		"items": []map[string]any{{"productId": f.productA, "quantity": 2}}, "payment": map[string]string{"card": cardOK}, "shippingAddress": address},
		http.StatusAccepted, &o)
	f.orderA = o.ID
	h.JSON("POST", "/api/v1/cart/items", f.tokens[custA], map[string]any{"productId": f.productA, "quantity": 3}, http.StatusOK, nil)
	var c struct{ CartID string }
	h.JSON("GET", "/api/v1/cart", f.tokens[custA], nil, http.StatusOK, &c)
	f.cartA = c.CartID

	h.Eventually("A's order to ship", func() bool {
		h.JSON("GET", "/api/v1/orders/"+f.orderA, f.tokens[custA], nil, http.StatusOK, &o)
		if o.Status == "CANCELLED" {
			t.Fatalf("A's order was cancelled: %+v", o)
		}
		return o.Status == "SHIPPED" && o.PaymentID != "" && o.ShipmentID != ""
	})
	f.paymentA, f.shipmentA = o.PaymentID, o.ShipmentID
	// The lists the walk reads are fed by events: wait until they caught up.
	h.Eventually("A's payment and shipment to be listed", func() bool {
		_, _, ps := h.Do("GET", "/api/v1/payments?orderId="+f.orderA, f.tokens[custA], nil)
		_, _, ss := h.Do("GET", "/api/v1/shipments?orderId="+f.orderA, f.tokens[custA], nil)
		return strings.Contains(string(ps), f.paymentA) && strings.Contains(string(ss), f.shipmentA)
	})
	h.Eventually("A's notification about the order", func() bool {
		_, _, ns := h.Do("GET", "/api/v1/notifications?subjectId="+f.orderA, f.tokens[custA], nil)
		return strings.Contains(string(ns), f.orderA)
	})
	for what, id := range f.private() {
		if id == "" {
			t.Fatalf("set-up did not find %s", what)
		}
	}
	return f
}

func register(h *apptest.Harness, email, name string) (id, token string) {
	var u struct{ ID string }
	h.JSON("POST", "/api/v1/users", "", map[string]string{"email": email, "password": password, "name": name}, http.StatusCreated, &u)
	return u.ID, login(h, email, password)
}

func login(h *apptest.Harness, email, pw string) string {
	var tok struct{ Token string }
	h.JSON("POST", "/api/v1/auth/token", "", map[string]string{"email": email, "password": pw}, http.StatusOK, &tok)
	if tok.Token == "" {
		h.T.Fatalf("no token for %s", email)
	}
	return tok.Token
}

// substitute replaces the path parameters with A's real ids, chosen by the
// collection the parameter follows.
func (f *fixture) substitute(t *testing.T, path string) string {
	orig := strings.Split(path, "/")
	segs := slices.Clone(orig)
	for i, s := range orig {
		if !strings.HasPrefix(s, "{") {
			continue
		}
		switch {
		case orig[i-1] == "users":
			segs[i] = f.userA
		case orig[i-1] == "products", orig[i-1] == "inventory", orig[i-1] == "items":
			segs[i] = f.productA
		case orig[i-1] == "orders":
			segs[i] = f.orderA
		case orig[i-1] == "payments":
			segs[i] = f.paymentA
		case orig[i-1] == "shipments":
			segs[i] = f.shipmentA
		case orig[i-1] == "endpoints":
			segs[i] = "no-such-endpoint" // admins only: no customer data behind it
		case orig[i-1] == "console":
			segs[i] = "index.html"
		case orig[i-1] == "dlq" || orig[i-1] == "replay" || orig[i-1] == "consumers":
			segs[i] = "order" // a service with a consumer group
		case orig[i-1] == "rebuild":
			segs[i] = "catalog" // a service with a read model
		case i >= 2 && orig[i-2] == "dlq":
			segs[i] = "1" // a dead letter id
		default:
			t.Fatalf("%s: no value for parameter %s after %q: teach substitute", path, s, orig[i-1])
		}
	}
	return strings.Join(segs, "/")
}

// documentOperations returns "METHOD /path" of every operation of the
// gateway's OpenAPI document.
func documentOperations(t *testing.T) []string {
	_, file, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "..", "gateway", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var ops []string
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				ops = append(ops, strings.ToUpper(method)+" "+path)
			}
		}
	}
	slices.Sort(ops)
	if len(ops) == 0 {
		t.Fatal("gateway/openapi.json has no operations")
	}
	return ops
}

// firstMessage GETs an event stream and returns its status and, for a
// 200, its first message (the stream is then closed); else the body.
func firstMessage(t *testing.T, url, token string) (int, []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), apptest.Timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	var msg []byte
	r := bufio.NewReader(resp.Body)
	for !bytes.HasSuffix(msg, []byte("\n\n")) {
		line, err := r.ReadBytes('\n')
		if err != nil {
			t.Fatalf("GET %s: %v after %q", url, err, msg)
		}
		msg = append(msg, line...)
	}
	return resp.StatusCode, msg
}

func trim(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}
