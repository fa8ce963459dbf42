package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/obs"
	"github.com/eventmart/eventmart/internal/region"
)

// regionGate is the process's region role: in a standby, writes are
// refused and the held work (every consumer, outbox relay and background
// job, and migrations of a read-only replica) waits until the region is
// promoted. A standby's databases are hot standbys of the primary's
// (PostgreSQL streaming replication): they bring the read models, inboxes
// and outboxes, and take no write until promoted.
type regionGate struct {
	standby atomic.Bool
	primary string // the primary region's URL, named in refusals
	log     *slog.Logger
	// toPrimary forwards a standby's logins to the primary region
	// (forwardsToPrimary); nil without a primary URL.
	toPrimary http.Handler

	mu       sync.Mutex
	held     []func() // started at promotion
	promoted bool
}

// hold runs start now in a primary, at promotion in a standby.
func (g *regionGate) hold(start func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.promoted {
		start()
		return
	}
	g.held = append(g.held, start)
}

// set applies a role recorded in the region's cluster (region.Watch).
func (g *regionGate) set(st region.State) {
	switch st.Role {
	case region.Primary:
		g.mu.Lock()
		held := g.held
		g.held, g.promoted = nil, true
		g.mu.Unlock()
		if g.standby.Swap(false) || len(held) > 0 {
			g.log.Warn("region promoted: accepting writes", "by", st.By, "at", st.At, "started", len(held))
		}
		for _, start := range held {
			start()
		}
	case region.Standby:
		if !g.standby.Swap(true) {
			// Its consumers and background work keep running until the
			// process restarts (as a standby, EVENTMART_REGION_ROLE).
			g.log.Warn("region demoted to standby: refusing writes; restart the process to stop its background work", "by", st.By, "at", st.At)
		}
	}
}

// refuseWrites answers every write with 503 while the region is a
// standby, naming the primary; reads go through. Logging in writes too
// (its audit record, the failed-login counts), and so does logging out
// (SessionsRevoked), on a database that is a read-only replica here: they
// are forwarded to the primary region (forwardsToPrimary), which writes
// them where writes are allowed and issues the token (both regions share
// the signing key); refreshing a token goes there too, so that one region
// issues tokens.
func (g *regionGate) refuseWrites(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.standby.Load() && !readOnly(r) {
			if forwardsToPrimary(r) && g.toPrimary != nil && r.Header.Get(headerFromStandby) == "" {
				g.toPrimary.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Retry-After", "5")
			httpx.Error(w, r, eventmart.Errorf(eventmart.EUNAVAILABLE, "%s", g.refusal(r)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// refusal is the message of a write refused by a standby.
func (g *regionGate) refusal(r *http.Request) string {
	msg := "this region is a standby: writes go to the primary region"
	if g.primary != "" {
		msg += " at " + g.primary
	}
	switch {
	case r != nil && forwardsToPrimary(r) && r.Header.Get(headerFromStandby) != "":
		msg += "; this login came from another standby region (" + r.Header.Get(headerFromStandby) + "), so it is not forwarded again: is any region primary?"
	case r != nil && forwardsToPrimary(r):
		msg += "; logins are forwarded to the primary once EVENTMART_REGION_PRIMARY names it"
	}
	return msg + " (eventmart region failover promotes this one)"
}

// headerFromStandby marks a login a standby forwards to the primary
// region: a region that is a standby too refuses it rather than forward
// it back (two standbys would bounce it between them).
const headerFromStandby = "X-Eventmart-From-Standby"

// forwardsToPrimary reports whether a standby forwards r to the primary
// region: logging in, refreshing a token and logging out.
func forwardsToPrimary(r *http.Request) bool {
	if r.Method != http.MethodPost {
		return false
	}
	switch r.URL.Path {
	case "/api/v1/auth/token", "/api/v1/auth/refresh", "/api/v1/auth/logout":
		return true
	}
	return false
}

// primaryProxy forwards requests to the primary region's gateway at
// primary, saying which standby they come from (headerFromStandby: the
// host the client called); when the primary does not answer, the client
// gets 503 naming it.
func primaryProxy(primary *url.URL) http.Handler {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second}).DialContext
	// A login hashes a password (bcrypt): seconds on a busy primary.
	tr.ResponseHeaderTimeout = 30 * time.Second
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(primary)
			// The client's address, for the primary's login throttling
			// (EVENTMART_TRUSTED_PROXIES there must include this region).
			pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
			pr.SetXForwarded()
			pr.Out.Header.Set(headerFromStandby, pr.In.Host)
			pr.Out.Header.Set(httpx.HeaderCorrelationID, httpx.CorrelationID(pr.In.Context()))
			obs.InjectHTTP(pr.In.Context(), pr.Out.Header)
			obs.SetRoute(pr.In.Context(), "proxy:primary-region")
		},
		Transport: obs.Transport(tr),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			httpx.Logger(r.Context()).WarnContext(r.Context(), "login not forwarded: the primary region did not answer", "primary", primary.String(), "error", err)
			w.Header().Set("Retry-After", "5")
			httpx.Error(w, r, eventmart.Errorf(eventmart.EUNAVAILABLE,
				"this region is a standby and forwards logins to the primary region at %s, which did not answer (eventmart region failover promotes this one)", primary))
		},
	}
}

func readOnly(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

// collector is eventmart_region_standby: 1 while the process refuses writes.
func (g *regionGate) collector() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "eventmart_region_standby",
		Help: "1 while this process's region is a standby (writes refused, EVENTMART_REGION_ROLE or the region's recorded role), else 0.",
	}, func() float64 {
		if g.standby.Load() {
			return 1
		}
		return 0
	})
}

// watch follows the role recorded in the region's cluster until ctx ends.
func (g *regionGate) watch(ctx context.Context, w func(context.Context, func(region.State)) error) error {
	return w(ctx, g.set)
}

// regionStatus is GET /api/v1/admin/region: this process's region role
// and, on Kafka, the replication into its region (docs/regions.md).
type regionStatus struct {
	Role    region.Role `json:"role"`              // this process's, as it acts now
	Primary string      `json:"primary,omitempty"` // a standby's EVENTMART_REGION_PRIMARY
	// WritesRefused is what a write is answered (503) while a standby.
	WritesRefused string `json:"writesRefused,omitempty"`
	// Logins: "served here" (a primary), "forwarded to the primary" or
	// "refused" (a standby without EVENTMART_REGION_PRIMARY).
	Logins string `json:"logins"`
	// HeldWork counts the consumers, relays and jobs waiting for
	// promotion.
	HeldWork int `json:"heldWork"`
	// Bus is "kafka" or "embedded" (no cross-region replication).
	Bus string `json:"bus"`
	// Lag is the replication lag measured in this process (a standby
	// measures it until promoted); empty otherwise.
	Lag []region.TopicLag `json:"lag"`
	// Cluster is the replication state of this region's Kafka cluster;
	// nil on the embedded bus or when it could not be read (ClusterError).
	Cluster      *region.Replication `json:"cluster"`
	ClusterError string              `json:"clusterError,omitempty"`
}

// regionStatus answers GET /api/v1/admin/region.
func (a *App) regionStatus(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.RequireAdmin(r.Context()); err != nil {
		httpx.Error(w, r, err)
		return
	}
	g := a.region
	st := regionStatus{Role: region.Primary, Logins: "served here", Bus: "embedded", Lag: []region.TopicLag{}}
	if g.standby.Load() {
		// A primary's EVENTMART_REGION_PRIMARY names the other region, the
		// primary should this one be demoted: not shown.
		st.Role, st.Primary, st.WritesRefused, st.Logins = region.Standby, g.primary, g.refusal(nil), "refused (EVENTMART_REGION_PRIMARY is unset)"
		if g.toPrimary != nil {
			st.Logins = "forwarded to the primary at " + g.primary
		}
	}
	g.mu.Lock()
	st.HeldWork = len(g.held)
	g.mu.Unlock()
	if a.cfg.RegionLagSummary != nil {
		st.Lag = a.cfg.RegionLagSummary()
	}
	if a.cfg.RegionCluster != nil {
		st.Bus = "kafka"
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		rep, err := a.cfg.RegionCluster(ctx)
		if err != nil {
			st.ClusterError = fmt.Sprintf("reading this region's Kafka cluster: %v", err)
		} else {
			st.Cluster = &rep
		}
	}
	httpx.JSON(w, http.StatusOK, st)
}
