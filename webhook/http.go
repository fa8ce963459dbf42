package webhook

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Routes registers the webhook API (admins only).
func (s *Service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/webhooks/endpoints", auth.AdminsOnly(s.handleCreate))
	mux.HandleFunc("GET /api/v1/webhooks/endpoints", auth.AdminsOnly(s.handleList))
	mux.HandleFunc("GET /api/v1/webhooks/endpoints/{id}", auth.AdminsOnly(s.handleGet))
	mux.HandleFunc("PATCH /api/v1/webhooks/endpoints/{id}", auth.AdminsOnly(s.handleUpdate))
	mux.HandleFunc("DELETE /api/v1/webhooks/endpoints/{id}", auth.AdminsOnly(s.handleDelete))
	mux.HandleFunc("POST /api/v1/webhooks/endpoints/{id}/rotate", auth.AdminsOnly(s.handleRotate))
	mux.HandleFunc("GET /api/v1/webhooks/endpoints/{id}/deliveries", auth.AdminsOnly(s.handleDeliveries))
	mux.HandleFunc("POST /api/v1/webhooks/endpoints/{id}/test", auth.AdminsOnly(s.handleTest))
	mux.HandleFunc("POST /api/v1/webhooks/endpoints/{id}/replay", auth.AdminsOnly(s.handleReplay))
}

// endpointRequest is the body of create and update; update changes only
// the fields given.
type endpointRequest struct {
	URL         *string   `json:"url"`
	EventTypes  *[]string `json:"eventTypes"`
	Description *string   `json:"description"`
	Enabled     *bool     `json:"enabled"`
	Ordered     *bool     `json:"ordered"`
}

// apply validates req and writes it into ep.
func (s *Service) apply(ctx context.Context, ep *Endpoint, req endpointRequest) error {
	if req.URL != nil {
		if err := s.guard.checkURL(ctx, *req.URL); err != nil {
			return err
		}
		ep.URL = *req.URL
	}
	if req.EventTypes != nil {
		types := []string{}
		for _, t := range *req.EventTypes {
			spec, ok := event.Lookup(event.Type(t))
			if !ok || !deliverable(spec) {
				return eventmart.Errorf(eventmart.EINVALID, "eventTypes: %q is not an event type webhooks deliver (see docs/events.md; audit-events are not delivered)", t)
			}
			if !slices.Contains(types, t) {
				types = append(types, t)
			}
		}
		ep.EventTypes = types
	}
	if req.Description != nil {
		if len(*req.Description) > 500 {
			return eventmart.Errorf(eventmart.EINVALID, "description: longer than 500 bytes")
		}
		ep.Description = *req.Description
	}
	if req.Enabled != nil {
		if *req.Enabled && !ep.Enabled {
			ep.DisabledReason, ep.failingSince = "", 0
		}
		ep.Enabled = *req.Enabled
		if !ep.Enabled && ep.DisabledReason == "" {
			ep.DisabledReason = "disabled by an admin"
		}
	}
	if req.Ordered != nil {
		ep.Ordered = *req.Ordered
	}
	return nil
}

// handleCreate: POST /webhooks/endpoints {"url", "eventTypes", "description", "ordered"}
// → 201 with the endpoint and its secret, shown this once.
func (s *Service) handleCreate(w http.ResponseWriter, r *http.Request) {
	var req endpointRequest
	if err := httpx.Decode(r, &req); err != nil {
		httpx.Error(w, r, err)
		return
	}
	if req.URL == nil {
		httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "url: required"))
		return
	}
	now := s.d.Now().UTC()
	ep := &Endpoint{ID: event.NewID(), EventTypes: []string{}, Enabled: true, CreatedAt: now, UpdatedAt: now}
	if err := s.apply(r.Context(), ep, req); err != nil {
		httpx.Error(w, r, err)
		return
	}
	var err error
	if ep.secret, err = NewSecret(); err != nil {
		httpx.Error(w, r, err)
		return
	}
	if err := s.store.insertEndpoint(r.Context(), ep); err != nil {
		httpx.Error(w, r, err)
		return
	}
	if err := s.reload(r.Context(), nil); err != nil {
		httpx.Error(w, r, err)
		return
	}
	ep.Secret = ep.secret
	w.Header().Set("Location", "/api/v1/webhooks/endpoints/"+ep.ID)
	httpx.JSON(w, http.StatusCreated, ep)
}

// handleList: GET /webhooks/endpoints?limit=&offset=
func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	limit, offset, err := httpx.Page(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	eps, err := s.store.endpoints(r.Context(), nil, limit, offset)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, map[string]any{"endpoints": eps, "limit": limit, "offset": offset, "next": httpx.NextPage(r, len(eps), limit, offset)})
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	ep, err := s.store.endpoint(r.Context(), r.PathValue("id"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, ep)
}

// handleUpdate: PATCH /webhooks/endpoints/{id} with any of the create
// fields and "enabled". Enabling a disabled endpoint makes its waiting
// deliveries due at once.
func (s *Service) handleUpdate(w http.ResponseWriter, r *http.Request) {
	var req endpointRequest
	if err := httpx.Decode(r, &req); err != nil {
		httpx.Error(w, r, err)
		return
	}
	ctx := r.Context()
	ep, err := s.store.endpoint(ctx, r.PathValue("id"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	wasEnabled := ep.Enabled
	if err := s.apply(ctx, ep, req); err != nil {
		httpx.Error(w, r, err)
		return
	}
	ep.UpdatedAt = s.d.Now().UTC()
	err = s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		if err := s.store.updateEndpoint(ctx, tx, ep); err != nil {
			return err
		}
		if ep.Enabled && !wasEnabled {
			_, err := tx.Exec(ctx, `UPDATE deliveries SET next_attempt_at = ? WHERE endpoint_id = ? AND status = 'pending'`, ep.UpdatedAt.UnixMilli(), ep.ID)
			return err
		}
		return nil
	})
	if err == nil {
		err = s.reload(ctx, nil)
	}
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	s.nudge()
	httpx.JSON(w, http.StatusOK, ep)
}

func (s *Service) handleDelete(w http.ResponseWriter, r *http.Request) {
	if err := s.store.deleteEndpoint(r.Context(), r.PathValue("id")); err != nil {
		httpx.Error(w, r, err)
		return
	}
	if err := s.reload(r.Context(), nil); err != nil {
		httpx.Error(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// DefaultOverlap is how long a rotated-out secret keeps signing.
const DefaultOverlap = 24 * time.Hour

// handleRotate: POST /webhooks/endpoints/{id}/rotate {"overlap": "24h"}
// → the endpoint with its new secret, shown this once. Until the overlap
// ends, deliveries carry the old secret's signature too.
func (s *Service) handleRotate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Overlap string `json:"overlap"`
	}
	if r.ContentLength != 0 {
		if err := httpx.Decode(r, &req); err != nil {
			httpx.Error(w, r, err)
			return
		}
	}
	overlap := DefaultOverlap
	if req.Overlap != "" {
		d, err := time.ParseDuration(req.Overlap)
		if err != nil || d < 0 || d > 7*24*time.Hour {
			httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "overlap: a duration between 0s and 168h, such as 24h: %q", req.Overlap))
			return
		}
		overlap = d
	}
	ep, err := s.store.endpoint(r.Context(), r.PathValue("id"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	secret, err := NewSecret()
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	now := s.d.Now().UTC()
	ep.prevSecret, ep.prevSecretUntil, ep.secret, ep.UpdatedAt = ep.secret, now.Add(overlap).UnixMilli(), secret, now
	if err := s.store.updateEndpoint(r.Context(), s.d.DB, ep); err != nil {
		httpx.Error(w, r, err)
		return
	}
	ep.Secret = secret
	httpx.JSON(w, http.StatusOK, ep)
}

// handleDeliveries: GET /webhooks/endpoints/{id}/deliveries?status=&limit=&offset=
// → the endpoint's deliveries newest first, each with its attempts.
func (s *Service) handleDeliveries(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ep, err := s.store.endpoint(ctx, r.PathValue("id"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	status := r.URL.Query().Get("status")
	if status != "" && status != StatusPending && status != StatusDelivered && status != StatusFailed {
		httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "status: pending, delivered or failed, not %q", status))
		return
	}
	limit, offset, err := httpx.Page(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	ds, err := s.store.deliveries(ctx, ep.ID, status, limit, offset)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, map[string]any{"deliveries": ds, "limit": limit, "offset": offset, "next": httpx.NextPage(r, len(ds), limit, offset)})
}

// TestEventType is the eventType of the message POST …/{id}/test sends.
// It is not in the event catalog: receivers acknowledge and ignore it.
const TestEventType = "WebhookTest"

// handleTest: POST /webhooks/endpoints/{id}/test sends a signed
// WebhookTest message at once, even to a disabled endpoint, and answers
// with the attempt (not recorded among the deliveries).
func (s *Service) handleTest(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ep, err := s.store.endpoint(ctx, r.PathValue("id"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	o := service.RequestOrigin(ctx)
	data, _ := json.Marshal(map[string]string{"endpointId": ep.ID})
	env := event.Envelope{EventID: event.NewID(), EventType: TestEventType, EventVersion: "v1", Timestamp: s.d.Now().UTC(),
		Source: service.Source(Name), CorrelationID: o.CorrelationID, CausationID: o.CausationID, Data: data, Metadata: o.Metadata}
	body, err := json.Marshal(&env)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	id := "msg_test_" + strings.ReplaceAll(env.EventID, "-", "")
	a := s.attempt(ctx, ep, id, body)
	httpx.JSON(w, http.StatusOK, map[string]any{"webhookId": id, "attempt": a,
		"delivered": a.StatusCode >= 200 && a.StatusCode < 300})
}

// Replay limits: a time range replays at most MaxReplay events.
const MaxReplay = 100_000

// handleReplay: POST /webhooks/endpoints/{id}/replay with
// {"deliveryId"} re-sends one delivery, or with {"from", "to"} (RFC 3339)
// queues every event of that time range the endpoint wants, read from the
// audit trail, again (with the same webhook-ids as before). → 202 {"queued": n}.
func (s *Service) handleReplay(w http.ResponseWriter, r *http.Request) {
	var req struct {
		DeliveryID string `json:"deliveryId"`
		From       string `json:"from"`
		To         string `json:"to"`
	}
	if err := httpx.Decode(r, &req); err != nil {
		httpx.Error(w, r, err)
		return
	}
	ctx := r.Context()
	ep, err := s.store.endpoint(ctx, r.PathValue("id"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	var n int
	switch {
	case req.DeliveryID != "" && req.From == "" && req.To == "":
		if _, err = s.store.delivery(ctx, ep.ID, req.DeliveryID); err == nil {
			err, n = s.store.requeue(ctx, req.DeliveryID, s.d.Now()), 1
		}
	case req.DeliveryID == "" && req.From != "" && req.To != "":
		n, err = s.replayRange(ctx, ep, req.From, req.To)
	default:
		err = eventmart.Errorf(eventmart.EINVALID, "give either deliveryId, or from and to (RFC 3339)")
	}
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	s.nudge()
	httpx.JSON(w, http.StatusOK, map[string]any{"queued": n})
}

// replayRange queues the events of [from, to] that ep wants, read page by
// page from the audit service's trail with the caller's token.
func (s *Service) replayRange(ctx context.Context, ep *Endpoint, from, to string) (int, error) {
	for _, v := range []string{from, to} {
		if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
			return 0, eventmart.Errorf(eventmart.EINVALID, "from, to: not RFC 3339 times such as 2026-11-24T13:38:11Z: %q", v)
		}
	}
	const page = 1000
	n := 0
	for offset := 0; ; offset += page {
		// sealed: the events as recorded, as live deliveries send them
		// (personal fields sealed; the trail would show them opened).
		q := url.Values{"from": {from}, "to": {to}, "limit": {strconv.Itoa(page)}, "offset": {strconv.Itoa(offset)}, "sealed": {"true"}}
		var resp struct {
			Events []json.RawMessage `json:"events"`
		}
		if err := s.d.CallJSON(ctx, "audit", "GET", "/api/v1/admin/events?"+q.Encode(), nil, &resp); err != nil {
			return n, err
		}
		now, queued := s.d.Now(), 0
		err := s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
			queued = 0
			for _, raw := range resp.Events {
				e, err := event.Decode(raw)
				if err != nil {
					return err
				}
				spec, ok := event.Lookup(e.EventType)
				if !ok || !deliverable(spec) || !ep.wants(string(e.EventType)) {
					continue
				}
				if err := s.store.enqueue(ctx, tx, e.EventID, string(e.EventType), e.Timestamp, raw, []*Endpoint{ep}, now, true); err != nil {
					return err
				}
				queued++
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		n += queued
		if len(resp.Events) < page || offset+page >= MaxReplay {
			return n, nil
		}
	}
}
