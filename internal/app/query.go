package app

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/gateway"
	"github.com/eventmart/eventmart/internal/httpx"
)

// queryParams are the query parameters the OpenAPI document lists for each
// GET route, behind a ServeMux that finds a request's route.
type queryParams struct {
	mux    *http.ServeMux
	params map[string][]string // by ServeMux pattern, "GET /api/v1/orders"
}

var documentedQueries = sync.OnceValue(func() *queryParams {
	type param struct {
		Name, In string
		Ref      string `json:"$ref"`
	}
	var doc struct {
		Paths      map[string]map[string]json.RawMessage
		Components struct{ Parameters map[string]param }
	}
	q := &queryParams{mux: http.NewServeMux(), params: map[string][]string{}}
	if err := json.Unmarshal(gateway.OpenAPI(), &doc); err != nil {
		return q // the document is fixed at build time; gateway's tests parse it
	}
	for path, ops := range doc.Paths {
		get, ok := ops["get"]
		if !ok || !strings.HasPrefix(path, "/api/") {
			continue
		}
		var op struct{ Parameters []param }
		var shared []param
		json.Unmarshal(get, &op)
		if raw, ok := ops["parameters"]; ok {
			json.Unmarshal(raw, &shared)
		}
		names := []string{}
		for _, p := range append(shared, op.Parameters...) {
			if name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/"); ok {
				p = doc.Components.Parameters[name]
			}
			if p.In == "query" {
				names = append(names, p.Name)
			}
		}
		pattern := "GET " + path
		q.params[pattern] = names
		q.mux.HandleFunc(pattern, http.NotFound)
	}
	return q
})

// checkQuery answers 400 to a GET of an API route whose query string names
// a parameter the route does not take (a misspelt ?stauts= would otherwise
// be ignored and the unfiltered list answered as if it were the filtered
// one). The routes' parameters are the OpenAPI document's, which a test
// keeps in step with the handlers.
func checkQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.RawQuery == "" || !strings.HasPrefix(r.URL.Path, "/api/") {
			next.ServeHTTP(w, r)
			return
		}
		q := documentedQueries()
		_, pattern := q.mux.Handler(r)
		allowed, ok := q.params[pattern]
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		for name := range r.URL.Query() {
			if !slices.Contains(allowed, name) {
				takes := "no query parameters"
				if len(allowed) > 0 {
					takes = "only " + strings.Join(allowed, ", ")
				}
				httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "unknown query parameter %q: %s takes %s", name, pattern, takes))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
