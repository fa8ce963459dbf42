package apptests

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/analytics"

	"github.com/eventmart/eventmart/audit"
	"github.com/eventmart/eventmart/gateway"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/webhook"
)

// operation is one request-body-taking operation of the API.
type operation struct{ method, path string }

// bodyOperations lists the POST, PUT and PATCH operations of the OpenAPI
// document, sorted: the request decoders under fuzz. DELETE is left out
// (an admin deleting itself would end the run's coverage).
func bodyOperations(t testing.TB) []operation {
	var doc struct {
		Paths map[string]map[string]json.RawMessage
	}
	if err := json.Unmarshal(gateway.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	var ops []operation
	for path, methods := range doc.Paths {
		for m := range methods {
			if m == "post" || m == "put" || m == "patch" {
				ops = append(ops, operation{strings.ToUpper(m), path})
			}
		}
	}
	slices.SortFunc(ops, func(a, b operation) int { return strings.Compare(a.path+a.method, b.path+b.method) })
	return ops
}

var pathParam = regexp.MustCompile(`\{[^}]+\}`)

// FuzzEndpoints sends arbitrary bodies to every operation that decodes
// one, as an admin (so requests get past authorization into the
// decoders): whatever the body, the answer is never a 5xx, and an error
// is the JSON error body with a code and a message.
func FuzzEndpoints(f *testing.F) {
	h := apptest.Start(f, append(all(), audit.Def(), webhook.Def(), analytics.Def()))
	admin := h.Token("admin-1", "admin")
	var p struct{ ID string }
	h.JSON("POST", "/api/v1/products", admin, map[string]any{"sku": "FUZZ", "name": "Mug", "priceCents": 500, "currency": "EUR"}, 201, &p)
	ops := bodyOperations(f)
	for i := range ops {
		for _, seed := range []string{`{}`, ``, `null`, `[]`, `{"x":1}`, `{"quantity":-1,"onHand":1e99,"items":[{}]}`, "{\"name\":\"\xff\"}"} {
			f.Add(uint8(i), []byte(seed))
		}
	}
	f.Fuzz(func(t *testing.T, op uint8, body []byte) {
		o := ops[int(op)%len(ops)]
		path := pathParam.ReplaceAllStringFunc(o.path, func(param string) string {
			switch param {
			case "{service}":
				return "order"
			case "{id}", "{productId}":
				return p.ID
			}
			return "x"
		})
		req, err := http.NewRequest(o.method, h.Server.URL+path, strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s with %q: %s", o.method, path, body, resp.Status)
		}
		if resp.StatusCode >= 400 {
			var eb httpx.ErrorBody
			if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
				t.Fatalf("%s %s with %q: %s without a JSON error body (%v)", o.method, path, body, resp.Status, err)
			}
		}
	})
}
