package apptests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/internal/apptest"
)

// Every list answers {items, limit, offset, next}: next leads to the
// following page until it is null; a query parameter the route does not
// take is a 400 naming it; the topology's window reads as people write it.
func TestListShapes(t *testing.T) {
	h := apptest.Start(t, all())
	admin := h.Token("admin-1", "admin")
	for i := range 3 {
		h.JSON("POST", "/api/v1/products", admin, map[string]any{"sku": fmt.Sprintf("PAGE-%d", i), "name": "Mug", "priceCents": 500, "currency": "EUR"}, 201, nil)
	}
	var page struct {
		Products      []struct{ ID string }
		Limit, Offset int
		Next          *string
	}
	h.JSON("GET", "/api/v1/products?limit=2", "", nil, 200, &page)
	if len(page.Products) != 2 || page.Next == nil || *page.Next != "/api/v1/products?limit=2&offset=2" {
		t.Fatalf("first page: %d products, next %v", len(page.Products), page.Next)
	}
	next := *page.Next
	page.Next = nil
	h.JSON("GET", next, "", nil, 200, &page)
	if len(page.Products) != 1 || page.Next != nil || page.Offset != 2 {
		t.Errorf("last page: %d products at offset %d, next %v", len(page.Products), page.Offset, page.Next)
	}

	for _, list := range []string{"/api/v1/payments", "/api/v1/shipments"} {
		status, _, body := h.Do("GET", list, h.Token("cust-1", "customer"), nil)
		var m map[string]json.RawMessage
		json.Unmarshal(body, &m)
		if status != http.StatusOK || string(m["limit"]) != "50" || string(m["offset"]) != "0" || string(m["next"]) != "null" {
			t.Errorf("GET %s: %d %s, want limit, offset and next like the other lists", list, status, body)
		}
	}

	status, _, body := h.Do("GET", "/api/v1/orders?stauts=PENDING", h.Token("cust-1", "customer"), nil)
	if status != http.StatusBadRequest || !strings.Contains(string(body), `unknown query parameter \"stauts\"`) || !strings.Contains(string(body), "status") {
		t.Errorf("misspelt parameter: %d %s", status, body)
	}
	if status, _, body := h.Do("GET", "/api/v1/orders?status=PENDING&limit=5", h.Token("cust-1", "customer"), nil); status != http.StatusOK {
		t.Errorf("documented parameters: %d %s", status, body)
	}

	var topo struct{ Window string }
	h.JSON("GET", "/api/v1/admin/topology", admin, nil, 200, &topo)
	if topo.Window != "5m" {
		t.Errorf("window %q, want 5m", topo.Window)
	}
	h.JSON("GET", "/api/v1/admin/topology?window=90m", admin, nil, 200, &topo)
	if topo.Window != "1h30m" {
		t.Errorf("window %q, want 1h30m", topo.Window)
	}

	if status, hdr, _ := h.Do("GET", "/favicon.ico", "", nil); status != http.StatusOK || hdr.Get("Content-Type") != "image/svg+xml" {
		t.Errorf("GET /favicon.ico: %d %s", status, hdr.Get("Content-Type"))
	}
}
