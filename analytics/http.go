package analytics

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/stream/cep"
)

// Routes registers the analytics API (admins only).
func (s *Service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/analytics/windows", auth.AdminsOnly(s.handleWindows))
	mux.HandleFunc("GET /api/v1/analytics/detections", auth.AdminsOnly(s.handleDetections))
	mux.HandleFunc("GET /api/v1/analytics/rules", auth.AdminsOnly(s.handleGetRules))
	mux.HandleFunc("PUT /api/v1/analytics/rules", auth.AdminsOnly(s.handlePutRules))
}

// Windows is the answer of GET /analytics/windows.
type Windows struct {
	Size string `json:"size"` // minute or hour
	From string `json:"from"`
	To   string `json:"to"`
	// Windows are those with events starting in [from, to), oldest first;
	// the last ones may still be open (their figures still grow).
	Windows []Window `json:"windows"`
	// Total is the sum of Windows (Start, End: from, to).
	Total Window `json:"total"`
}

// maxWindows bounds one answer.
const maxWindows = 2000

// handleWindows: GET /analytics/windows?size=minute|hour&from=&to= →
// the figures per window; from and to are RFC 3339 (default: the last
// hour by minute, the last day by hour).
func (s *Service) handleWindows(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	size := q.Get("size")
	if size == "" {
		size = opMinute
	}
	d, ok := Sizes[size]
	if !ok {
		httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "size: want minute or hour, got %q", size))
		return
	}
	to := s.d.Now().UTC().Truncate(d).Add(d)
	from := to.Add(-60 * d)
	if size == opHour {
		from = to.Add(-24 * d)
	}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"from", &from}, {"to", &to}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "%s: want an RFC 3339 time, got %q", p.name, v))
				return
			}
			*p.t = t.UTC()
		}
	}
	if !from.Before(to) || to.Sub(from) > maxWindows*d {
		httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "from must be before to, at most %d %ss apart", maxWindows, size))
		return
	}
	closed, err := closedWindows(r.Context(), s.d.DB, size, from, to)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	open, err := openWindows(r.Context(), s.d.DB, size, from, to)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	raws := append(closed, open...)
	slices.SortStableFunc(raws, func(a, b rawWindow) int { return a.start.Compare(b.start) })
	out := Windows{Size: size, From: from.Format(time.RFC3339), To: to.Format(time.RFC3339), Windows: make([]Window, 0, len(raws))}
	total := Counters{}
	for _, rw := range raws {
		out.Windows = append(out.Windows, window(rw.start, rw.end, rw.open, rw.c))
		statsAggregator{}.Merge(total, rw.c)
	}
	out.Total = window(from, to, len(open) > 0, total)
	httpx.JSON(w, http.StatusOK, out)
}

// handleDetections: GET /analytics/detections?rule=&before=&limit= → the
// detections, newest first (before: a seq cursor, the previous page's
// nextBefore).
func (s *Service) handleDetections(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := httpx.IntParam(q.Get("limit"), "limit", 50, 1, 500)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	var before int64
	if v := q.Get("before"); v != "" {
		if before, err = strconv.ParseInt(v, 10, 64); err != nil || before < 1 {
			httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "before: want a positive integer, got %q", v))
			return
		}
	}
	ds, err := listDetections(r.Context(), s.d.DB, q.Get("rule"), before, limit)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	if ds == nil {
		ds = []Detection{}
	}
	httpx.JSON(w, http.StatusOK, map[string]any{"detections": ds})
}

// handleGetRules: GET /analytics/rules → the rules in force (RuleSet).
func (s *Service) handleGetRules(w http.ResponseWriter, r *http.Request) {
	rs, err := s.loader.load(r.Context())
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, rs)
}

// maxRulesBody bounds a rule document.
const maxRulesBody = 1 << 20

// handlePutRules: PUT /analytics/rules with a rule document → 200 with
// the new RuleSet; the engine runs it within a second. 400 lists every
// problem with its field's path; 409 while the rules come from a file.
func (s *Service) handlePutRules(w http.ResponseWriter, r *http.Request) {
	if s.loader.file != "" {
		httpx.Error(w, r, eventmart.Errorf(eventmart.ECONFLICT, "the rules come from the file %s (EVENTMART_ANALYTICS_RULES); edit it instead", s.loader.file))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRulesBody))
	if err != nil {
		httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "request body: %v", err))
		return
	}
	if _, err := ParseRules(body); err != nil {
		var ve cep.ValidationErrors
		if errors.As(err, &ve) {
			httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "%s", ve.Error()))
			return
		}
		httpx.Error(w, r, err)
		return
	}
	if _, err := storeRules(r.Context(), s.d.DB, string(body), s.d.Now()); err != nil {
		httpx.Error(w, r, err)
		return
	}
	rs, err := s.loader.load(r.Context())
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, rs)
}
