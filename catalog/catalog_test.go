package catalog_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/catalog"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/service"
)

func start(t *testing.T) (*apptest.Harness, string) {
	h := apptest.Start(t, []service.Def{catalog.Def()})
	return h, h.Token("admin-1", "admin")
}

func TestCreateUpdateDiscontinueEmitEvents(t *testing.T) {
	h, admin := start(t)
	var p catalog.Product
	h.JSON("POST", "/api/v1/products", admin, map[string]any{"sku": "MUG-1", "name": "Mug", "priceCents": 1299, "currency": "EUR"}, http.StatusCreated, &p)
	if p.ID == "" || p.Status != "active" || p.PriceCents != 1299 || p.Availability.InStock {
		t.Fatalf("created %+v", p)
	}
	created := h.Events.Wait(t, "ProductCreated", apptest.Keyed(p.ID))
	if created.Source != "catalog-service" || created.Metadata.UserID != "admin-1" {
		t.Errorf("envelope %+v", created)
	}

	h.JSON("PATCH", "/api/v1/products/"+p.ID, admin, map[string]any{"priceCents": 1499}, http.StatusOK, &p)
	upd := h.Events.Wait(t, "ProductUpdated", apptest.Keyed(p.ID))
	pl, _ := upd.Payload()
	if pl.(*event.ProductUpdated).PriceCents != 1499 || pl.(*event.ProductUpdated).Name != "Mug" {
		t.Errorf("ProductUpdated %+v", pl)
	}

	h.JSON("PATCH", "/api/v1/products/"+p.ID, admin, map[string]any{"priceCents": 1499}, http.StatusOK, &p) // no change
	h.JSON("DELETE", "/api/v1/products/"+p.ID, admin, nil, http.StatusOK, &p)
	h.JSON("DELETE", "/api/v1/products/"+p.ID, admin, nil, http.StatusOK, &p) // idempotent
	h.Events.Wait(t, "ProductDiscontinued", apptest.Keyed(p.ID))
	for typ, want := range map[event.Type]int{"ProductDiscontinued": 1, "ProductUpdated": 1} {
		if n := len(h.Events.All(func(e *event.Envelope) bool { return e.EventType == typ })); n != want {
			t.Errorf("%d %s events, want %d", n, typ, want)
		}
	}
	var list struct{ Products []catalog.Product }
	h.JSON("GET", "/api/v1/products", "", nil, http.StatusOK, &list)
	if len(list.Products) != 0 {
		t.Errorf("discontinued product listed: %+v", list.Products)
	}
	h.JSON("GET", "/api/v1/products?includeDiscontinued=true", "", nil, http.StatusOK, &list)
	if len(list.Products) != 1 || list.Products[0].Status != "discontinued" {
		t.Errorf("includeDiscontinued: %+v", list.Products)
	}
}

func TestAvailabilityFollowsNewestStockLevel(t *testing.T) {
	h, admin := start(t)
	var p catalog.Product
	h.JSON("POST", "/api/v1/products", admin, map[string]any{"sku": "TEA", "name": "Tea", "priceCents": 500, "currency": "EUR"}, http.StatusCreated, &p)
	o := event.FromRequest("c", event.Metadata{})
	h.Publish("inventory-service", o,
		&event.InventoryAdjusted{ProductID: p.ID, Delta: 10, Level: event.StockLevel{ProductID: p.ID, OnHand: 10, Available: 10, Version: 1}},
		&event.InventoryReserved{OrderID: "o1", Levels: []event.StockLevel{{ProductID: p.ID, OnHand: 10, Reserved: 3, Available: 7, Version: 3}}},
		// An older level arriving late (another partition) must not win.
		&event.InventoryAdjusted{ProductID: p.ID, Delta: 10, Level: event.StockLevel{ProductID: p.ID, OnHand: 10, Available: 10, Version: 2}},
	)
	h.Eventually("availability 7", func() bool {
		h.JSON("GET", "/api/v1/products/"+p.ID, "", nil, http.StatusOK, &p)
		return p.Availability.Available == 7
	})
	if !p.Availability.InStock || p.Availability.Reserved != 3 {
		t.Errorf("availability %+v", p.Availability)
	}
}

func TestBadRequestsGetClearErrors(t *testing.T) {
	h, admin := start(t)
	customer := h.Token("cust-1", "customer")
	for _, c := range []struct {
		name, method, path, token, body string
		status                          int
		code, msg                       string
	}{
		{"anonymous create", "POST", "/api/v1/products", "", `{}`, 401, "unauthorized", "authentication required"},
		{"customer create", "POST", "/api/v1/products", customer, `{}`, 403, "forbidden", "admins only"},
		{"bad token", "POST", "/api/v1/products", "nope", `{}`, 401, "unauthorized", "invalid token"},
		{"missing fields", "POST", "/api/v1/products", admin, `{"sku":"A"}`, 400, "invalid", "required"},
		{"unknown field", "POST", "/api/v1/products", admin, `{"sku":"A","name":"a","priceCents":1,"currency":"EUR","colour":"red"}`, 400, "invalid", `unknown field "colour"`},
		{"wrong type", "POST", "/api/v1/products", admin, `{"sku":"A","name":"a","priceCents":"cheap","currency":"EUR"}`, 400, "invalid", `"priceCents" must be a number`},
		{"bad currency", "POST", "/api/v1/products", admin, `{"sku":"A","name":"a","priceCents":1,"currency":"euro"}`, 400, "invalid", "ISO 4217"},
		{"negative price", "POST", "/api/v1/products", admin, `{"sku":"A","name":"a","priceCents":-5,"currency":"EUR"}`, 400, "invalid", "priceCents"},
		{"malformed", "POST", "/api/v1/products", admin, `{"sku":`, 400, "invalid", "JSON"},
		{"unknown product", "GET", "/api/v1/products/nope", "", ``, 404, "not_found", "not found"},
		{"bad limit", "GET", "/api/v1/products?limit=0", "", ``, 400, "invalid", "limit"},
		{"bad flag", "GET", "/api/v1/products?includeDiscontinued=yes", "", ``, 400, "invalid", "includeDiscontinued"},
		{"unknown route", "GET", "/api/v1/teleport", "", ``, 404, "not_found", "no route"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var body any
			if c.body != "" {
				body = c.body
			}
			status, hdr, b := h.Do(c.method, c.path, c.token, body)
			var eb httpx.ErrorBody
			json.Unmarshal(b, &eb)
			if status != c.status || eb.Error.Code != c.code || !strings.Contains(eb.Error.Message, c.msg) {
				t.Errorf("got %d %s, want %d %s containing %q", status, b, c.status, c.code, c.msg)
			}
			if hdr.Get("X-Correlation-ID") == "" {
				t.Error("no X-Correlation-ID")
			}
		})
	}
	h.JSON("POST", "/api/v1/products", admin, map[string]any{"sku": "DUP", "name": "a", "priceCents": 1, "currency": "EUR"}, 201, nil)
	h.JSON("POST", "/api/v1/products", admin, map[string]any{"sku": "DUP", "name": "b", "priceCents": 1, "currency": "EUR"}, 409, nil)
}

func TestCorrelationIDIsTakenFromTheRequest(t *testing.T) {
	h, admin := start(t)
	req, _ := http.NewRequest("POST", h.Server.URL+"/api/v1/products", strings.NewReader(`{"sku":"C1","name":"c","priceCents":1,"currency":"EUR"}`))
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Correlation-ID", "my-request-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Correlation-ID") != "my-request-42" {
		t.Errorf("response correlation id %q", resp.Header.Get("X-Correlation-ID"))
	}
	for _, path := range []string{"/healthz", "/readyz", "/api/v1/openapi.json"} {
		if _, hdr, _ := h.Do("GET", path, "", nil); hdr.Get("X-Correlation-ID") == "" {
			t.Errorf("GET %s has no X-Correlation-ID", path)
		}
	}
	e := h.Events.Wait(t, "ProductCreated", apptest.Correlated("my-request-42"))
	if e.CausationID != "my-request-42" {
		t.Errorf("root event causation %q", e.CausationID)
	}
}
