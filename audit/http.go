package audit

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/httpx"
)

// Routes registers the audit API (admins only).
func (s *Service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/admin/events", s.handleEvents)
	mux.HandleFunc("GET /api/v1/admin/audit/verify", s.handleVerify)
	mux.HandleFunc("GET /api/v1/admin/archive", s.handleArchive)
}

// Query limits of GET /admin/events.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// handleEvents: GET /admin/events?correlationId=&eventId=&type=&entity=&from=&to=&limit=&offset=&sealed=
// → {"events": [envelope…], "limit", "offset"}, each envelope's personal
// fields opened (event.OpenEnvelope) unless sealed=true.
func (s *Service) handleEvents(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.RequireAdmin(r.Context()); err != nil {
		httpx.Error(w, r, err)
		return
	}
	q, err := parseQuery(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	sealed := false
	if v := r.URL.Query().Get("sealed"); v != "" {
		if sealed, err = strconv.ParseBool(v); err != nil {
			httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "sealed: not true or false: %q", v))
			return
		}
	}
	events, err := s.store.list(r.Context(), q)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	// Personal fields are shown opened — "[erased]" once the user's key is
	// destroyed — while the trail itself keeps the sealed bytes its hash
	// chain covers; sealed=true answers them as recorded.
	if s.d.Keys != nil && !sealed {
		for i, e := range events {
			if events[i], err = event.OpenEnvelope(r.Context(), s.d.Keys, e); err != nil {
				httpx.Error(w, r, err)
				return
			}
		}
	}
	httpx.JSON(w, http.StatusOK, map[string]any{"events": events, "limit": q.Limit, "offset": q.Offset, "next": httpx.NextPage(r, len(events), q.Limit, q.Offset)})
}

// handleVerify: GET /admin/audit/verify → {"records", "ok", "firstBad", "reason"}.
func (s *Service) handleVerify(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.RequireAdmin(r.Context()); err != nil {
		httpx.Error(w, r, err)
		return
	}
	res, err := s.Verify(r.Context())
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, map[string]any{"records": res.Records, "ok": res.OK(), "firstBad": res.FirstBad, "reason": res.Reason})
}

var queryParams = []string{"correlationId", "eventId", "type", "entity", "from", "to", "limit", "offset", "sealed"}

// parseQuery reads the parameters of GET /admin/events. Unknown or
// repeated parameters are rejected: a misspelt filter would otherwise
// silently return the whole trail.
func parseQuery(r *http.Request) (Query, error) {
	v := r.URL.Query()
	for name, vals := range v {
		known := false
		for _, p := range queryParams {
			known = known || p == name
		}
		if !known {
			return Query{}, eventmart.Errorf(eventmart.EINVALID, "unknown query parameter %q (allowed: %s)", name, strings.Join(queryParams, ", "))
		}
		if len(vals) > 1 {
			return Query{}, eventmart.Errorf(eventmart.EINVALID, "%s: given more than once", name)
		}
	}
	q := Query{CorrelationID: v.Get("correlationId"), EventID: v.Get("eventId"), Type: v.Get("type"), Entity: v.Get("entity")}
	if q.Type != "" {
		if _, ok := event.Lookup(event.Type(q.Type)); !ok {
			return Query{}, eventmart.Errorf(eventmart.EINVALID, "type: unknown event type %q", q.Type)
		}
	}
	var err error
	if q.From, err = timeParam(v.Get("from"), "from"); err != nil {
		return Query{}, err
	}
	if q.To, err = timeParam(v.Get("to"), "to"); err != nil {
		return Query{}, err
	}
	if q.From != nil && q.To != nil && *q.From > *q.To {
		return Query{}, eventmart.Errorf(eventmart.EINVALID, "from must not be after to")
	}
	if q.Limit, err = httpx.IntParam(v.Get("limit"), "limit", DefaultLimit, 1, MaxLimit); err != nil {
		return Query{}, err
	}
	if q.Offset, err = httpx.IntParam(v.Get("offset"), "offset", 0, 0, httpx.MaxOffset); err != nil {
		return Query{}, err
	}
	return q, nil
}

// timeParam parses an RFC 3339 time into Unix milliseconds (the
// precision of occurred_at); nil when s is empty.
func timeParam(s, name string) (*int64, error) {
	if s == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, eventmart.Errorf(eventmart.EINVALID, "%s: not an RFC 3339 time such as 2026-11-24T13:38:11Z: %q", name, s)
	}
	ms := t.UnixMilli()
	return &ms, nil
}
