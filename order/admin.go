package order

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Saga is an order whose saga is in flight (PENDING or CONFIRMED), as
// GET /admin/sagas shows it.
type Saga struct {
	OrderID       string    `json:"orderId"`
	Status        string    `json:"status"`
	CorrelationID string    `json:"correlationId"`
	CreatedAt     time.Time `json:"createdAt"`
	UpdatedAt     time.Time `json:"updatedAt"`
	AgeMs         int64     `json:"ageMs"`  // since the order was placed
	IdleMs        int64     `json:"idleMs"` // since its last change of status
	Stuck         bool      `json:"stuck"`  // idle for stuckAfter or longer
}

// handleSagas: GET /admin/sagas?stuckAfter=30s&limit=50 (admins) — how
// many sagas are in flight by status, how many are stuck (no change for
// stuckAfter, by default the saga timeout), and the longest idle ones
// first.
func (s *Service) handleSagas(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.RequireAdmin(r.Context()); err != nil {
		httpx.Error(w, r, err)
		return
	}
	for name := range r.URL.Query() {
		if name != "stuckAfter" && name != "limit" {
			httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "unknown query parameter %q (allowed: stuckAfter, limit)", name))
			return
		}
	}
	stuckAfter := s.timeout
	if v := r.URL.Query().Get("stuckAfter"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "stuckAfter: want a positive duration such as 30s"))
			return
		}
		stuckAfter = d
	}
	limit, _, err := httpx.Page(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	now := s.d.Now()
	inFlight, stuck, sagas, err := s.store.sagas(r.Context(), now.Add(-stuckAfter), limit)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	for i := range sagas {
		sg := &sagas[i]
		sg.AgeMs, sg.IdleMs = now.Sub(sg.CreatedAt).Milliseconds(), now.Sub(sg.UpdatedAt).Milliseconds()
		sg.Stuck = now.Sub(sg.UpdatedAt) >= stuckAfter
	}
	httpx.JSON(w, http.StatusOK, map[string]any{"inFlight": inFlight, "stuck": stuck, "stuckAfter": stuckAfter.String(), "sagas": sagas, "limit": limit})
}

// sagas counts the in-flight orders by status and those not updated since
// cutoff, and returns up to limit of them, least recently updated first.
func (s *store) sagas(ctx context.Context, cutoff time.Time, limit int) (map[string]int64, int64, []Saga, error) {
	inFlight := map[string]int64{StatusPending: 0, StatusConfirmed: 0}
	var stuck int64
	rows, err := s.db.Query(ctx, `SELECT status, COUNT(*), SUM(CASE WHEN updated_at <= ? THEN 1 ELSE 0 END) FROM orders
		WHERE `+inFlightSQL+` GROUP BY status`, cutoff.UnixMilli())
	if err != nil {
		return nil, 0, nil, fmt.Errorf("order: count sagas: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var status string
		var n, old int64
		if err := rows.Scan(&status, &n, &old); err != nil {
			return nil, 0, nil, fmt.Errorf("order: count sagas: %w", err)
		}
		inFlight[status], stuck = n, stuck+old
	}
	if err := rows.Err(); err != nil {
		return nil, 0, nil, fmt.Errorf("order: count sagas: %w", err)
	}
	sagas, err := sqldb.List(ctx, s.db, `SELECT id, status, correlation_id, created_at, updated_at FROM orders
		WHERE `+inFlightSQL+` ORDER BY updated_at, id LIMIT ?`, []any{limit}, func(r sqldb.Scanner) (Saga, error) {
		var sg Saga
		var created, updated int64
		err := r.Scan(&sg.OrderID, &sg.Status, &sg.CorrelationID, &created, &updated)
		sg.CreatedAt, sg.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
		return sg, err
	})
	if err != nil {
		return nil, 0, nil, fmt.Errorf("order: list sagas: %w", err)
	}
	return inFlight, stuck, sagas, nil
}
