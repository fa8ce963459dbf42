package auth_test

import (
	"strings"
	"testing"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/internal/auth"
)

func TestListOwner(t *testing.T) {
	customer := auth.Identity{UserID: "u1", Role: auth.RoleCustomer}
	admin := auth.Identity{UserID: "a1", Role: auth.RoleAdmin}
	cases := []struct {
		name   string
		id     auth.Identity
		asked  string
		want   string
		forbid bool
	}{
		{"customer asking for none gets its own", customer, "", "u1", false},
		{"customer asking for its own gets its own", customer, "u1", "u1", false},
		{"customer asking for another's is forbidden", customer, "u2", "", true},
		{"admin asking for none gets every user's", admin, "", "", false},
		{"admin asking for a user gets that user's", admin, "u2", "u2", false},
		{"admin asking for its own gets its own", admin, "a1", "a1", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.id.ListOwner(c.asked, "orders")
			if c.forbid {
				if eventmart.ErrorCode(err) != eventmart.EFORBIDDEN || !strings.Contains(eventmart.ErrorMessage(err), "orders") {
					t.Fatalf("err = %v, want EFORBIDDEN naming the orders", err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("ListOwner(%q) = %q, %v; want %q", c.asked, got, err, c.want)
			}
		})
	}
}
