package httpx_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/eventmart/eventmart/internal/httpx"
)

func TestUnmatchedAnswersWithJSONErrors(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("order")) })
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })
	mux.HandleFunc("GET /dir/", func(w http.ResponseWriter, r *http.Request) {})
	h := httpx.Unmatched(mux)
	for _, c := range []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{"GET", "/orders/1", 200, "", ""},
		{"POST", "/orders", 202, "", ""},
		{"GET", "/nowhere", 404, "not_found", ""},
		{"DELETE", "/orders/1", 405, "method_not_allowed", "GET, HEAD"},
		{"GET", "/orders", 405, "method_not_allowed", "POST"},
		{"GET", "/dir", 307, "", ""}, // ServeMux's redirect to the canonical path passes through
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		if rec.Code != c.status || rec.Header().Get("Allow") != c.allow {
			t.Errorf("%s %s: %d Allow %q, want %d Allow %q", c.method, c.path, rec.Code, rec.Header().Get("Allow"), c.status, c.allow)
		}
		if c.code == "" {
			continue
		}
		var eb httpx.ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error.Code != c.code || eb.Error.Message == "" {
			t.Errorf("%s %s: body %q, want a JSON error %s", c.method, c.path, rec.Body, c.code)
		}
	}
}
