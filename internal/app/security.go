package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/gateway"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/fsperm"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/obs"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/service"
)

// Security events (AccessDenied, AdminActionPerformed) are written to the
// outbox of the service that owns the route, so they are as durable as
// business events and reach audit-events through the same relay. A flood
// of refused requests must not become a flood of writes: past
// securityEventRate per second (bursts of securityEventBurst) in all, or
// AccessDenied past clientEventRate (bursts of clientEventBurst) from one
// client address, they are dropped, counted (eventmart_security_events_dropped_total) and
// logged. Each record is small whatever the request (event.Bound).
const (
	securityEventRate  = 200
	securityEventBurst = 1000
	clientEventRate    = 5
	clientEventBurst   = 50
	// maxClients bounds the memory of the per-client buckets: past it
	// they start again empty (the overall bucket still holds).
	maxClients = 10000
)

type securityAuditor struct {
	relays   map[string]*outbox.Relay // by service name
	fallback string                   // the service recording requests no local service owns
	limit    *rate.Limiter
	dropped  *prometheus.CounterVec // by limit: overall, client

	mu      sync.Mutex
	clients map[string]*rate.Limiter // by client address
}

func newSecurityAuditor(relays map[string]*outbox.Relay, reg prometheus.Registerer) (*securityAuditor, error) {
	names := make([]string, 0, len(relays))
	for n := range relays {
		names = append(names, n)
	}
	slices.Sort(names)
	s := &securityAuditor{relays: relays, limit: rate.NewLimiter(securityEventRate, securityEventBurst), clients: map[string]*rate.Limiter{}}
	if len(names) > 0 {
		s.fallback = names[0]
	}
	s.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: obs.Namespace, Name: "security_events_dropped_total",
		Help: "Security events not recorded because their rate was over the limit: of all clients (AccessDenied, AdminActionPerformed) or of one client address (AccessDenied)."},
		[]string{"limit"})
	s.dropped.WithLabelValues("overall")
	s.dropped.WithLabelValues("client")
	if err := reg.Register(s.dropped); err != nil {
		return nil, fmt.Errorf("app: security event metrics: %w", err)
	}
	return s, nil
}

// allow takes a token from the bucket of all clients and, for a refused
// request (perClient), from that of the client at addr; it returns the
// limit that refused it, or "". An admin's actions are authenticated, not
// a flood anyone can send: they have no per-client bucket.
func (s *securityAuditor) allow(addr string, perClient bool) string {
	if !perClient {
		if !s.limit.Allow() {
			return "overall"
		}
		return ""
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	s.mu.Lock()
	l := s.clients[host]
	if l == nil {
		if len(s.clients) >= maxClients {
			clear(s.clients)
		}
		l = rate.NewLimiter(clientEventRate, clientEventBurst)
		s.clients[host] = l
	}
	s.mu.Unlock()
	if !l.Allow() {
		return "client"
	}
	if !s.limit.Allow() {
		return "overall"
	}
	return ""
}

// seenIdentity carries the caller's identity from inside the
// authentication middleware back out to the auditor.
type seenIdentity struct {
	id auth.Identity
	ok bool
}

type seenIdentityKey struct{}

// wrap records what h answered: a 401 or 403 is AccessDenied (except a
// refused login, which the user service records as LoginFailed), an
// admin's successful request other than GET and HEAD is
// AdminActionPerformed. authenticated is h's inner handler, below the
// token check, where the caller's identity is known.
func (s *securityAuditor) wrap(h func(authenticated http.Handler) http.Handler, inner http.Handler) http.Handler {
	noted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen, ok := r.Context().Value(seenIdentityKey{}).(*seenIdentity); ok {
			seen.id, seen.ok = auth.FromContext(r.Context())
		}
		inner.ServeHTTP(w, r)
	})
	outer := h(noted)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen := &seenIdentity{}
		sw := httpx.NewStatusWriter(w)
		outer.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), seenIdentityKey{}, seen)))
		s.record(r, sw.Status(), seen)
	})
}

func (s *securityAuditor) record(r *http.Request, status int, seen *seenIdentity) {
	var p event.Payload
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		if r.Method == http.MethodPost && r.URL.Path == "/api/v1/auth/token" {
			return // LoginFailed, with its reason
		}
		d := &event.AccessDenied{Method: r.Method, Path: r.URL.Path, Status: status, Reason: "authentication required or token refused"}
		if seen.ok {
			d.UserID, d.Role = seen.id.UserID, seen.id.Role
			d.Reason = "not allowed for role " + seen.id.Role
		}
		p = d
	case seen.ok && seen.id.IsAdmin() && status < 400 && r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions:
		if strings.HasPrefix(r.URL.Path, "/api/v1/auth/") {
			return
		}
		p = &event.AdminActionPerformed{AdminID: seen.id.UserID, Method: r.Method, Path: r.URL.Path, Status: status}
	default:
		return
	}
	log := httpx.Logger(r.Context())
	svc := gateway.ServiceOf(r.URL.Path)
	relay := s.relays[svc]
	if relay == nil {
		svc, relay = s.fallback, s.relays[s.fallback]
	}
	if relay == nil {
		return // a process with no service (the gateway alone): the service that answers records it
	}
	_, denied := p.(*event.AccessDenied)
	if limit := s.allow(r.RemoteAddr, denied); limit != "" {
		s.dropped.WithLabelValues(limit).Inc()
		log.Warn("security event dropped: rate limit", "limit", limit, "eventType", p.EventType(), "status", status)
		return
	}
	origin := service.RequestOrigin(r.Context())
	if seen.ok {
		origin.Metadata = event.Metadata{UserID: seen.id.UserID, SessionID: seen.id.SessionID}
	}
	// The response is complete; the request's context may already be
	// cancelled by a client that hung up, which must not lose the record.
	ctx := context.WithoutCancel(r.Context())
	if err := relay.EmitNow(ctx, service.Source(svc), origin, p); err != nil {
		log.Error("recording a security event", "eventType", p.EventType(), "error", err)
	}
}

// warnWidePermissions logs a warning at start if others than the owner may
// read the data directory or anything in it (a directory made before
// Eventmart created its own 0700, or files copied in): it holds card data,
// password hashes and the event log. Eventmart does not change modes it
// did not set.
func warnWidePermissions(log *slog.Logger, dir string) {
	if dir == "" {
		return
	}
	paths, n, err := fsperm.Wide(dir)
	if err != nil {
		log.Warn("data directory: cannot check permissions", "dir", dir, "error", err)
		return
	}
	if n > 0 {
		log.Warn("data directory: readable by other users; run chmod -R go-rwx on it", "dir", dir, "count", n, "paths", paths)
	}
}
