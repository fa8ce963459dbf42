package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/console"
	"github.com/eventmart/eventmart/internal/deadletter"
	"github.com/eventmart/eventmart/internal/export"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/service"
)

// adminRoutes registers the dead-letter queue API of the services run in
// this process. The gateway routes /api/v1/admin/dlq/{service}/… to the
// process running that service.
func (a *App) adminRoutes(mux *http.ServeMux) {
	// The event-flow console's data, read from the bus by whichever process
	// the request reaches (gateway.Console), and each service's consumer group.
	mux.HandleFunc("GET /api/v1/admin/stream", adminOnly(a.console.Stream))
	mux.HandleFunc("GET /api/v1/admin/topics", adminOnly(a.console.Topics))
	mux.HandleFunc("GET /api/v1/admin/topology", adminOnly(a.console.Topology))
	mux.HandleFunc("GET /api/v1/admin/messages", adminOnly(a.console.Messages))
	mux.HandleFunc("GET /api/v1/admin/samples", adminOnly(a.console.Samples))
	mux.HandleFunc("GET /api/v1/admin/region", a.regionStatus)
	mux.HandleFunc("GET /api/v1/admin/consumers/{service}", a.dlq(func(w http.ResponseWriter, r *http.Request, c *inbox.Consumer) {
		httpx.JSON(w, http.StatusOK, consumerOf(r.PathValue("service"), c))
	}))
	mux.HandleFunc("POST /api/v1/admin/replay/{service}", a.dlq(a.handleReplay))
	mux.HandleFunc("POST /api/v1/admin/rebuild/{service}", a.handleRebuild)
	// The scheduled export's state, from the process running the audit
	// service (the gateway routes admin/… there).
	mux.HandleFunc("GET /api/v1/admin/export", adminOnly(func(w http.ResponseWriter, r *http.Request) {
		st := export.NightlyStatus{}
		if a.nightly != nil {
			st = a.nightly.Status()
		}
		httpx.JSON(w, http.StatusOK, st)
	}))
	mux.HandleFunc("GET /api/v1/admin/dlq/{service}", a.dlq(func(w http.ResponseWriter, r *http.Request, c *inbox.Consumer) {
		status := r.URL.Query().Get("status")
		switch status {
		case "", deadletter.StatusDead, deadletter.StatusRedriven, deadletter.StatusDiscarded:
		default:
			httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "status must be dead, redriven or discarded"))
			return
		}
		limit, offset, err := httpx.Page(r)
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		list, err := c.DeadLetters().List(r.Context(), status, limit, offset)
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		httpx.JSON(w, http.StatusOK, map[string]any{"deadLetters": list, "limit": limit, "offset": offset, "next": httpx.NextPage(r, len(list), limit, offset)})
	}))
	mux.HandleFunc("GET /api/v1/admin/dlq/{service}/{id}", a.dlq(func(w http.ResponseWriter, r *http.Request, c *inbox.Consumer) {
		id, ok := letterID(w, r)
		if !ok {
			return
		}
		d, err := c.DeadLetters().Get(r.Context(), id)
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		httpx.JSON(w, http.StatusOK, d)
	}))
	mux.HandleFunc("POST /api/v1/admin/dlq/{service}/redrive", a.dlq(func(w http.ResponseWriter, r *http.Request, c *inbox.Consumer) {
		n, err := c.DeadLetters().Redrive(r.Context(), nil)
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		httpx.JSON(w, http.StatusOK, map[string]int{"redriven": n})
	}))
	mux.HandleFunc("POST /api/v1/admin/dlq/{service}/{id}/redrive", a.dlq(func(w http.ResponseWriter, r *http.Request, c *inbox.Consumer) {
		id, ok := letterID(w, r)
		if !ok {
			return
		}
		n, err := c.DeadLetters().Redrive(r.Context(), []int64{id})
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		httpx.JSON(w, http.StatusOK, map[string]int{"redriven": n})
	}))
	mux.HandleFunc("POST /api/v1/admin/dlq/{service}/{id}/discard", a.dlq(func(w http.ResponseWriter, r *http.Request, c *inbox.Consumer) {
		id, ok := letterID(w, r)
		if !ok {
			return
		}
		if err := c.DeadLetters().Discard(r.Context(), id); err != nil {
			httpx.Error(w, r, err)
			return
		}
		d, err := c.DeadLetters().Get(r.Context(), id)
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		httpx.JSON(w, http.StatusOK, d)
	}))
}

// dlq wraps an admin handler of a service's consumer group (dead letters,
// replay): admins only, and the named service must run here.
func (a *App) dlq(fn func(http.ResponseWriter, *http.Request, *inbox.Consumer)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, err := auth.RequireAdmin(r.Context()); err != nil {
			httpx.Error(w, r, err)
			return
		}
		c, ok := a.consumers[r.PathValue("service")]
		if !ok {
			httpx.Error(w, r, eventmart.Errorf(eventmart.ENOTFOUND, "no consumer group of service %q here", r.PathValue("service")))
			return
		}
		fn(w, r, c)
	}
}

// adminOnly lets only admins call fn.
func adminOnly(fn http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, err := auth.RequireAdmin(r.Context()); err != nil {
			httpx.Error(w, r, err)
			return
		}
		fn(w, r)
	}
}

// consumerOf describes the consumer group of service name.
func consumerOf(name string, c *inbox.Consumer) console.Consumer {
	cn := console.Consumer{Service: name, Group: c.Group, EventTypes: []string{}, Topics: c.Topics()}
	for t := range c.Handlers {
		cn.EventTypes = append(cn.EventTypes, string(t))
	}
	slices.Sort(cn.EventTypes)
	slices.Sort(cn.Topics)
	return cn
}

// consumerGroups returns the consumer group of every service of the
// deployment: those run here, and those of other processes asked at
// GET /api/v1/admin/consumers/{service} with the caller's token. A service
// without a consumer group is left out; the errors are those of services
// that could not be asked.
func (a *App) consumerGroups(ctx context.Context) ([]console.Consumer, error) {
	var out []console.Consumer
	for name, c := range a.consumers {
		out = append(out, consumerOf(name, c))
	}
	var errs []error
	call := service.Deps{Call: a.client, BaseURL: a.baseURL}
	for name := range a.cfg.Remote {
		if a.services[name] != nil {
			continue
		}
		var cn console.Consumer
		err := call.CallJSON(ctx, name, "GET", "/api/v1/admin/consumers/"+name, nil, &cn)
		switch {
		case eventmart.ErrorCode(err) == eventmart.ENOTFOUND: // consumes nothing
		case err != nil:
			errs = append(errs, fmt.Errorf("consumer group of %s: %w", name, err))
		default:
			out = append(out, cn)
		}
	}
	slices.SortFunc(out, func(x, y console.Consumer) int { return strings.Compare(x.Group, y.Group) })
	return out, errors.Join(errs...)
}

func letterID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "dead letter id must be a positive integer"))
		return 0, false
	}
	return id, true
}
