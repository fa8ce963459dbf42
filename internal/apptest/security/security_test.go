// Package security_test replays the findings of issue #16 ("what an
// attacker tried") against the real embedded Eventmart and asserts each
// fix: bounded records of untrusted input, the card vault's encryption and
// file modes, the registry's guard, strict JSON input. The authorization
// matrix is internal/apptest/authz.
package security_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/eventmart/eventmart/catalog"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/app"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/fsperm"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/order"
	"github.com/eventmart/eventmart/payment"
	"github.com/eventmart/eventmart/user"
)

const card = "4242424242424242"

// logs collects what the app logs, for the warnings at start.
type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// start runs the services the findings need, logging into the returned
// logs, and returns the data directory too.
func start(t *testing.T, opts ...apptest.Option) (*apptest.Harness, *logs, string) {
	t.Helper()
	l := &logs{}
	var dir string
	opts = append([]apptest.Option{func(c *app.Config) {
		c.Log = slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelWarn}))
		dir = c.DataDir
	}}, opts...)
	h := apptest.Start(t, []service.Def{user.Def(), catalog.Def(), order.Def(), payment.Def()}, opts...)
	return h, l, dir
}

// send is Harness.Do with the Content-Type and Authorization as given.
func send(t *testing.T, h *apptest.Harness, method, path, contentType, authorization, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, h.Server.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func errorCode(b []byte) string {
	var eb httpx.ErrorBody
	json.Unmarshal(b, &eb)
	return eb.Error.Code
}

// Finding 1: a failed login stored the typed e-mail whole, a 401 the URL
// path whole — megabytes per anonymous request, kept for years.
func TestRecordsOfUntrustedInputAreBounded(t *testing.T) {
	h, _, _ := start(t)
	huge := strings.Repeat("a", 1_000_000) + "@example.com"
	status, _, b := h.Do("POST", "/api/v1/auth/token", "", map[string]string{"email": huge, "password": "wrong password"})
	if status != http.StatusUnauthorized && status != http.StatusBadRequest {
		t.Fatalf("login with a 1 MB e-mail: %d %.200s", status, b)
	}
	// A plain failed login after it: once it is recorded, so is the first.
	h.Do("POST", "/api/v1/auth/token", "", map[string]string{"email": "marker@example.com", "password": "wrong password"})
	h.Events.Wait(t, "LoginFailed", func(e *event.Envelope) bool { return strings.Contains(string(e.Data), "marker@") })
	for _, e := range h.Events.All(func(e *event.Envelope) bool { return e.EventType == "LoginFailed" }) {
		var p event.LoginFailed
		json.Unmarshal(e.Data, &p)
		if len(e.Data) > 1024 || len(p.Email.Clear) > event.MaxEmail || len(e.Key) > event.MaxEmail {
			t.Errorf("LoginFailed of %d bytes, e-mail of %d bytes, key of %d", len(e.Data), len(p.Email.Clear), len(e.Key))
		}
		if len(p.Email.Clear) == event.MaxEmail && !strings.HasSuffix(p.Email.Clear, event.TruncatedMark) {
			t.Errorf("a cut e-mail is not marked truncated: %q", p.Email.Clear[len(p.Email.Clear)-20:])
		}
	}

	long := "/api/v1/orders/" + strings.Repeat("x", 500_000)
	if status, _, b := h.Do("GET", long, "", nil); status != http.StatusUnauthorized {
		t.Fatalf("GET of a 500 KB path: %d %.200s", status, b)
	}
	e := h.Events.Wait(t, "AccessDenied", func(e *event.Envelope) bool { return strings.Contains(string(e.Data), "/api/v1/orders/xxx") })
	var d event.AccessDenied
	json.Unmarshal(e.Data, &d)
	if len(e.Data) > 1024 || len(d.Path) > event.MaxPath || !strings.HasSuffix(d.Path, event.TruncatedMark) {
		t.Errorf("AccessDenied of %d bytes, path of %d bytes (%q…)", len(e.Data), len(d.Path), d.Path[:30])
	}
}

// Finding 1: 200 plain 401s made 200 audit records. From one client
// address, past a burst, they are dropped and counted.
func TestAccessDeniedRecordsAreLimitedPerClient(t *testing.T) {
	h, _, _ := start(t)
	const n = 200
	for i := range n {
		if status, _, _ := h.Do("GET", "/api/v1/orders", "", nil); status != http.StatusUnauthorized {
			t.Fatalf("request %d: %d, want 401", i, status)
		}
	}
	dropped := droppedRecords(t, h, "client")
	if dropped < n/2 {
		t.Fatalf("%v of %d records dropped by the client limit, want most", dropped, n)
	}
	kept := n - int(dropped)
	h.Eventually("the records not dropped", func() bool {
		return len(h.Events.All(func(e *event.Envelope) bool { return e.EventType == "AccessDenied" })) >= kept
	})
	if got := len(h.Events.All(func(e *event.Envelope) bool { return e.EventType == "AccessDenied" })); got != kept {
		t.Errorf("%d AccessDenied recorded, want %d (%d requests, %v dropped)", got, kept, n, dropped)
	}
}

func droppedRecords(t *testing.T, h *apptest.Harness, limit string) float64 {
	t.Helper()
	fams, err := h.App.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "eventmart_security_events_dropped_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "limit" && l.GetValue() == limit {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no eventmart_security_events_dropped_total{limit=%q}", limit)
	return 0
}

// Finding 4: full card numbers in clear in world-readable files.
func TestCardNumbersAreEncryptedAtRest(t *testing.T) {
	h, l, dir := start(t)
	var c payment.Card
	h.JSON("POST", "/api/v1/payments/cards", h.Token("u1", "customer"), map[string]string{"number": card}, http.StatusCreated, &c)
	db := h.App.DB("payment")
	stored := func() (number, fingerprint string) {
		t.Helper()
		if err := db.QueryRow(t.Context(), `SELECT number, fingerprint FROM cards WHERE token = ?`, c.Token).Scan(&number, &fingerprint); err != nil {
			t.Fatal(err)
		}
		return number, fingerprint
	}
	number, fp := stored()
	if strings.Contains(number, card) || !strings.HasPrefix(number, "enc1:k1:") || len(fp) != 32 {
		t.Errorf("stored number %q, fingerprint %q: want it sealed with k1, and a fingerprint", number, fp)
	}
	for _, f := range []string{"payment.db", "payment.db-wal"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil && bytes.Contains(b, []byte(card)) {
			t.Errorf("%s holds the card number in clear", f)
		}
	}

	// Files 0600, directories 0700; a wider mode is a warning at start.
	if paths, n, err := fsperm.Wide(dir); err != nil || n != 0 {
		t.Errorf("data directory: %d paths readable by others: %v %v", n, paths, err)
	}
	keysFile := filepath.Join(dir, payment.VaultKeysFile)
	b, err := os.ReadFile(keysFile)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	h.Restart()
	if !strings.Contains(l.String(), "readable by other users") {
		t.Errorf("no warning at start about a 0755 data directory; logs:\n%s", l.String())
	}
	os.Chmod(dir, 0o700)

	// A clear number of a release before the vault encrypted is sealed at
	// start.
	if _, err := h.App.DB("payment").Exec(t.Context(), `UPDATE cards SET number = ?, fingerprint = '' WHERE token = ?`, card, c.Token); err != nil {
		t.Fatal(err)
	}
	h.Restart()
	db = h.App.DB("payment")
	if number, again := stored(); !strings.HasPrefix(number, "enc1:k1:") || again != fp {
		t.Errorf("after a restart over a clear number: %q, fingerprint %q, want sealed with k1 and %q", number, again, fp)
	}

	// Rotation: a new key last; cards are sealed again with it, the
	// fingerprint stays, and the card still charges.
	var k1 string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "k1" {
			k1 = f[1]
		}
	}
	k2 := hex.EncodeToString(bytes.Repeat([]byte{7}, 32))
	h.Restart(apptest.Settings(map[string]string{"EVENTMART_CARD_KEYS": "k1:" + k1 + ",k2:" + k2}))
	db = h.App.DB("payment")
	if number, again := stored(); !strings.HasPrefix(number, "enc1:k2:") || again != fp {
		t.Errorf("after rotation: %q, fingerprint %q, want sealed with k2 and %q", number, again, fp)
	}
	o := &event.OrderCreated{OrderID: "o-rotated", Customer: event.Customer{UserID: "u1", Email: event.Plain("u1@example.com"), Name: event.Plain("U")},
		Lines:      []event.OrderLine{{ProductID: "p1", SKU: "MUG", Name: "Mug", Quantity: 1, UnitPriceCents: 500}},
		TotalCents: 500, Currency: "EUR", Payment: event.PaymentMethod{CardToken: c.Token, CardLast4: "4242"},
		ShippingAddress: event.PlainAddress(event.Address{Name: "U", Line1: "1 Main St", City: "X", PostalCode: "1", Country: "US"})}
	origin := event.FromRequest("rotated", event.Metadata{UserID: "u1"})
	h.Publish("order-service", origin, o)
	h.Publish("inventory-service", origin, &event.InventoryReserved{OrderID: "o-rotated", Lines: []event.Line{{ProductID: "p1", Quantity: 1}}})
	h.Events.Wait(t, "PaymentProcessed", apptest.Keyed("o-rotated"))
}

// Finding 5: the registry's compatibility check took 4 MiB schemas from
// anyone (1.9 s of CPU each).
func TestRegistryChecksNeedAnAdminAndBoundedSchemas(t *testing.T) {
	h, _, _ := start(t, func(c *app.Config) { c.RegistryDir = c.DataDir })
	props := make([]string, 0, 20000)
	for i := range 20000 {
		props = append(props, `"p`+hex.EncodeToString([]byte{byte(i >> 8), byte(i)})+`":{"type":"string"}`)
	}
	schema, _ := json.Marshal(map[string]string{"schema": `{"type":"object","properties":{` + strings.Join(props, ",") + `}}`, "schemaType": "JSON"})
	const path = "/registry/compatibility/subjects/orders-value/versions/latest"
	for _, c := range []struct {
		who, authorization string
		status             int
	}{
		{"anonymous", "", http.StatusUnauthorized},
		{"customer", "Bearer " + h.Token("c1", "customer"), http.StatusForbidden},
		{"admin, schema over 256 KiB", "Bearer " + h.Token("a1", "admin"), http.StatusRequestEntityTooLarge},
	} {
		if status, _, b := send(t, h, "POST", path, "application/vnd.schemaregistry.v1+json", c.authorization, string(schema)); status != c.status {
			t.Errorf("%s: %d %.200s, want %d", c.who, status, b, c.status)
		}
	}
	big := `{"schema":"` + strings.Repeat(" ", 2<<20) + `"}`
	if status, _, b := send(t, h, "POST", "/registry/subjects/x/versions", "application/json", "Bearer "+h.Token("a1", "admin"), big); status != http.StatusRequestEntityTooLarge {
		t.Errorf("a 2 MiB registration: %d %.200s, want 413", status, b)
	}
}

// Finding 6: text/plain and form bodies were taken as JSON, names matched
// in any case, duplicate keys took the last; a lower-case bearer was
// refused; bodies over the limit were a JSON parse error.
func TestStrictInput(t *testing.T) {
	h, _, _ := start(t)
	tok := h.Token("u1", "customer")
	for _, c := range []struct {
		name, path, contentType, body string
		status                        int
		code                          string
	}{
		{"text/plain", "/api/v1/auth/token", "text/plain", `{"email":"a@example.com","password":"x"}`, 415, "unsupported_media_type"},
		{"form", "/api/v1/auth/token", "application/x-www-form-urlencoded", `email=a@example.com&password=x`, 415, "unsupported_media_type"},
		{"no Content-Type", "/api/v1/payments/cards", "", `{"number":"` + card + `"}`, 415, "unsupported_media_type"},
		{"upper-case field", "/api/v1/payments/cards", "application/json", `{"NUMBER":"` + card + `"}`, 400, "invalid"},
		{"duplicate key", "/api/v1/payments/cards", "application/json", `{"number":"4000000000000002","number":"` + card + `"}`, 400, "invalid"},
		{"over 1 MiB", "/api/v1/payments/cards", "application/json", `{"number":"` + strings.Repeat("4", 2<<20) + `"}`, 413, "too_large"},
	} {
		status, hdr, b := send(t, h, "POST", c.path, c.contentType, "Bearer "+tok, c.body)
		if status != c.status || errorCode(b) != c.code {
			t.Errorf("%s: %d %.200s, want %d %s", c.name, status, b, c.status, c.code)
		}
		if hdr.Get("X-Content-Type-Options") != "nosniff" || hdr.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: answer without nosniff and no-store: %v", c.name, hdr)
		}
	}
	// A bodiless POST needs no Content-Type: an order's cancel reaches
	// the order service (which finds no such order).
	if status, _, b := send(t, h, "POST", "/api/v1/orders/nope/cancel", "", "Bearer "+tok, ""); status != http.StatusNotFound {
		t.Errorf("bodiless POST: %d %s, want 404", status, b)
	}
	// The scheme of Authorization is case-insensitive.
	for _, scheme := range []string{"bearer", "BEARER", "Bearer"} {
		if status, _, b := send(t, h, "GET", "/api/v1/orders", "", scheme+" "+tok, ""); status != http.StatusOK {
			t.Errorf("%s: %d %s, want 200", scheme, status, b)
		}
	}
}

// Finding 6: an Idempotency-Key replayed with another body silently
// answered the first order; no order total was too large.
func TestOrderIdempotencyAndTotalCap(t *testing.T) {
	h, _, _ := start(t, apptest.Settings(map[string]string{"EVENTMART_ORDER_MAX_TOTAL": "10000"}))
	var p struct{ ID string }
	h.JSON("POST", "/api/v1/products", h.Token("a1", "admin"), map[string]any{"sku": "MUG", "name": "Mug", "priceCents": 3000, "currency": "EUR"}, http.StatusCreated, &p)
	tok := h.Token("u1", "customer")
	body := func(qty int) string {
		b, _ := json.Marshal(map[string]any{"items": []map[string]any{{"productId": p.ID, "quantity": qty}}, "payment": map[string]any{"card": card},
			"shippingAddress": map[string]any{"name": "Ada", "line1": "1 Main St", "city": "London", "postalCode": "N1", "country": "GB"}})
		return string(b)
	}
	post := func(key, body string) (int, []byte) {
		req, _ := http.NewRequest("POST", h.Server.URL+"/api/v1/orders", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	status, first := post("k1", body(1))
	if status != http.StatusAccepted {
		t.Fatalf("first order: %d %s", status, first)
	}
	if status, again := post("k1", body(1)); status != http.StatusAccepted || !bytes.Contains(again, first[:40]) {
		t.Errorf("same key, same body: %d %s, want the first order", status, again)
	}
	if status, b := post("k1", body(2)); status != http.StatusUnprocessableEntity || errorCode(b) != "unprocessable" {
		t.Errorf("same key, another body: %d %s, want 422", status, b)
	}
	if status, b := post("k2", body(4)); status != http.StatusBadRequest || !strings.Contains(string(b), "EVENTMART_ORDER_MAX_TOTAL") {
		t.Errorf("a 12000-cent order over a 10000 cap: %d %s, want 400", status, b)
	}
}

// Finding 6: nothing was logged at start when no admin was configured.
func TestNoAdminIsLoggedAtStart(t *testing.T) {
	_, l, _ := start(t)
	if !strings.Contains(l.String(), "no admin configured") {
		t.Errorf("no warning about the missing admin; logs:\n%s", l.String())
	}
}
