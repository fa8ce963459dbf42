package auth

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// Issue #16, finding 6: a lower-case "bearer" scheme was refused; the
// scheme is case-insensitive (RFC 9110, 11.1).
func TestAuthenticateSchemeIsCaseInsensitive(t *testing.T) {
	tk, err := NewTokens(bytes.Repeat([]byte("s"), 32), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := tk.Issue(Identity{UserID: "u1", Role: RoleCustomer, SessionID: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	h := tk.Authenticate(func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusUnauthorized) },
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if id, ok := FromContext(r.Context()); !ok || id.UserID != "u1" {
				t.Errorf("identity %+v, %v", id, ok)
			}
		}))
	for hdr, want := range map[string]int{"Bearer " + tok: 200, "bearer " + tok: 200, "BEARER " + tok: 200, "Basic " + tok: 401, "Bearer": 401} {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Authorization", hdr)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != want {
			t.Errorf("Authorization %.12q…: %d, want %d", hdr, w.Code, want)
		}
	}
}
