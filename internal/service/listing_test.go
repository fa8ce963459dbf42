package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/service"
)

func TestServeOrderRecords(t *testing.T) {
	customer := &auth.Identity{UserID: "u1", Role: auth.RoleCustomer}
	admin := &auth.Identity{UserID: "a1", Role: auth.RoleAdmin}
	type call struct {
		orderID, userID string
		limit, offset   int
	}
	cases := []struct {
		name     string
		id       *auth.Identity // nil: anonymous
		query    string
		status   int
		want     *call // what list is asked; nil: not called
		listFail bool
	}{
		{name: "anonymous", query: "", status: 401},
		{name: "customer, own", id: customer, query: "", status: 200, want: &call{"", "u1", 50, 0}},
		{name: "customer, one order: only if theirs", id: customer, query: "?orderId=o1&limit=5&offset=2", status: 200, want: &call{"o1", "u1", 5, 2}},
		{name: "admin, own", id: admin, query: "", status: 200, want: &call{"", "a1", 50, 0}},
		{name: "admin, one order: whoever's", id: admin, query: "?orderId=o1", status: 200, want: &call{"o1", "", 50, 0}},
		{name: "bad limit", id: customer, query: "?limit=0", status: 400},
		{name: "bad offset", id: admin, query: "?orderId=o1&offset=-1", status: 400},
		{name: "list fails", id: customer, query: "", status: 500, want: &call{"", "u1", 50, 0}, listFail: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got *call
			list := func(ctx context.Context, orderID, userID string, limit, offset int) ([]string, error) {
				got = &call{orderID, userID, limit, offset}
				if c.listFail {
					return nil, errors.New("database down")
				}
				return []string{"r1", "r2"}, nil
			}
			r := httptest.NewRequest("GET", "/api/v1/things"+c.query, nil)
			if c.id != nil {
				r = r.WithContext(auth.WithIdentity(r.Context(), *c.id))
			}
			w := httptest.NewRecorder()
			service.ServeOrderRecords(w, r, "things", list)
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			if (got == nil) != (c.want == nil) || (got != nil && *got != *c.want) {
				t.Fatalf("list asked %+v, want %+v", got, c.want)
			}
			if c.status != http.StatusOK {
				return
			}
			var body struct {
				Things        []string
				Limit, Offset *int
				Next          *string
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || len(body.Things) != 2 || body.Limit == nil || body.Offset == nil || body.Next != nil {
				t.Fatalf("body %s (%v), want {\"things\": [r1, r2], limit, offset, next: null}", w.Body, err)
			}
		})
	}
}
