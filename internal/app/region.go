package app

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/internal/httpx"
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
// standby, naming the primary; reads go through. Logging in is a write too
// (its audit record): a standby's database is a read-only replica, so
// tokens come from the primary (both regions share the signing key).
func (g *regionGate) refuseWrites(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.standby.Load() && !readOnly(r) {
			msg := "this region is a standby: writes go to the primary region"
			if g.primary != "" {
				msg += " at " + g.primary
			}
			w.Header().Set("Retry-After", "5")
			httpx.Error(w, r, eventmart.Errorf(eventmart.EUNAVAILABLE, "%s (eventmart region failover promotes this one)", msg))
			return
		}
		next.ServeHTTP(w, r)
	})
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
