package service

import (
	"context"
	"net/http"

	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/httpx"
)

// ServeOrderRecords answers GET …?orderId=&limit=&offset= for records kept
// one per order and owned by the order's customer (payments, shipments),
// with {key: [records], limit, offset, next} as the other lists. With orderId it lists that order's records — a
// customer only its own (another customer's order lists nothing), an admin
// whoever's (auth.Identity.ListOwner); without orderId, the caller's own.
// list reads one page of them, newest first; its userID "" means any
// user's. Anonymous callers get 401 and a bad limit or offset 400
// (httpx.Page).
func ServeOrderRecords[T any](w http.ResponseWriter, r *http.Request, key string,
	list func(ctx context.Context, orderID, userID string, limit, offset int) ([]T, error)) {
	id, err := auth.Require(r.Context())
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	limit, offset, err := httpx.Page(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	orderID := r.URL.Query().Get("orderId")
	asked := id.UserID // without orderId, the caller's own
	if orderID != "" {
		asked = "" // the order's, whoever's, if the rule lets the caller
	}
	userID, err := id.ListOwner(asked, key)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	records, err := list(r.Context(), orderID, userID, limit, offset)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, map[string]any{key: records, "limit": limit, "offset": offset, "next": httpx.NextPage(r, len(records), limit, offset)})
}
