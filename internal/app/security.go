package app

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"golang.org/x/time/rate"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/gateway"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/service"
)

// Security events (AccessDenied, AdminActionPerformed) are written to the
// outbox of the service that owns the route, so they are as durable as
// business events and reach audit-events through the same relay. A flood
// of refused requests must not become a flood of writes: past
// securityEventRate per second (bursts of securityEventBurst) they are
// dropped and the drop is logged.
const (
	securityEventRate  = 200
	securityEventBurst = 1000
)

type securityAuditor struct {
	relays   map[string]*outbox.Relay // by service name
	fallback string                   // the service recording requests no local service owns
	limit    *rate.Limiter
}

func newSecurityAuditor(relays map[string]*outbox.Relay) *securityAuditor {
	names := make([]string, 0, len(relays))
	for n := range relays {
		names = append(names, n)
	}
	slices.Sort(names)
	s := &securityAuditor{relays: relays, limit: rate.NewLimiter(securityEventRate, securityEventBurst)}
	if len(names) > 0 {
		s.fallback = names[0]
	}
	return s
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
	if !s.limit.Allow() {
		log.Warn("security event dropped: rate limit", "eventType", p.EventType(), "status", status)
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
