// Package gateway is the API gateway: one HTTP entry point that routes
// /api/v1 requests to the service that owns them, in this process or in
// another (reverse proxy), and serves health endpoints.
package gateway

import (
	"context"
	"errors"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/obs"
)

// Routes maps the first path segment after /api/v1/ to the owning service.
var Routes = map[string]string{
	"users":         "user",
	"auth":          "user",
	"products":      "catalog",
	"inventory":     "inventory",
	"cart":          "cart",
	"orders":        "order",
	"payments":      "payment",
	"shipments":     "shipping",
	"notifications": "notification",
	"admin":         "audit",
	"webhooks":      "webhook",
	"analytics":     "analytics",
}

// Console are the admin paths of the event-flow console that the gateway
// serves itself, from the event bus: /api/v1/admin/<name>.
var Console = []string{"stream", "topics", "topology", "messages", "samples", "region"}

// ServiceOf returns the service owning path, or "" (the gateway itself).
// The dead-letter queue, the replay, the rebuild and the consumer group of
// a service, /api/v1/admin/dlq/{service}/…, /api/v1/admin/replay/{service},
// /api/v1/admin/rebuild/{service} and /api/v1/admin/consumers/{service},
// belong to that service; the sagas in
// flight, /api/v1/admin/sagas, to the order service; the console's paths to
// the gateway.
func ServiceOf(path string) string {
	rest, ok := strings.CutPrefix(path, "/api/v1/")
	if !ok {
		return ""
	}
	if name, ok := strings.CutPrefix(rest, "admin/"); ok {
		switch {
		case slices.Contains(Console, name):
			return ""
		case name == "sagas":
			return "order"
		}
	}
	dlq, ok := strings.CutPrefix(rest, "admin/dlq/")
	if !ok {
		dlq, ok = strings.CutPrefix(rest, "admin/replay/")
	}
	if !ok {
		dlq, ok = strings.CutPrefix(rest, "admin/rebuild/")
	}
	if !ok {
		dlq, ok = strings.CutPrefix(rest, "admin/consumers/")
	}
	if ok {
		svc, _, _ := strings.Cut(dlq, "/")
		if slices.Contains(slices.Collect(maps.Values(Routes)), svc) {
			return svc
		}
		return ""
	}
	seg, _, _ := strings.Cut(rest, "/")
	return Routes[seg]
}

// Handler routes requests: a service in local is served by local (its
// routes are on that handler); a service in remote is proxied to its base
// URL (spread over its instances when it has several, see Balancer);
// anything else is a JSON 404, or 503 for a known but unreachable
// service. A proxied request that fails is answered as upstreamError says.
func Handler(local http.Handler, localServices map[string]bool, remote map[string][]*url.URL) http.Handler {
	proxies := map[string]*httputil.ReverseProxy{}
	for name, urls := range remote {
		p := httputil.NewSingleHostReverseProxy(urls[0])
		p.Transport = NewBalancer(urls, nil)
		p.BufferPool = proxyBuffers
		p.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			httpx.Logger(r.Context()).WarnContext(r.Context(), "upstream failed", "upstream", name, "error", err)
			httpx.Error(w, r, upstreamError(name, r, err))
		}
		proxies[name] = p
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		svc := ServiceOf(r.URL.Path)
		switch {
		case svc == "" || localServices[svc]:
			local.ServeHTTP(w, r)
		case proxies[svc] != nil:
			// The correlation id chosen here, and the trace, travel on to the service.
			r.Header.Set(httpx.HeaderCorrelationID, httpx.CorrelationID(r.Context()))
			obs.InjectHTTP(r.Context(), r.Header)
			obs.SetRoute(r.Context(), "proxy:"+svc)
			proxies[svc].ServeHTTP(w, r)
		default:
			httpx.Error(w, r, eventmart.Errorf(eventmart.EUNAVAILABLE, "the %s service is not configured (EVENTMART_SERVICE_URLS)", svc))
		}
	})
}

// proxyBuffers are the buffers the proxies copy response bodies through.
// Without a pool httputil.ReverseProxy allocates (and zeroes) 32 KiB for
// every response, however small: most of the gateway's allocated bytes
// under load, and the collections they cause.
var proxyBuffers httputil.BufferPool = &bufferPool{}

// bufferPool is an httputil.BufferPool of proxyBufferSize buffers.
type bufferPool struct{ p sync.Pool }

// proxyBufferSize is httputil.ReverseProxy's own buffer size.
const proxyBufferSize = 32 << 10

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, proxyBufferSize)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) != proxyBufferSize { // not one of ours
		return
	}
	buf = buf[:proxyBufferSize]
	b.p.Put(&buf)
}

// upstreamError is the answer to a request proxied to service that failed
// with err. Only a request that was never sent (the connection was refused)
// is a 503: nothing happened, and retrying is safe. Once the request was
// sent the service may have applied it before failing, so the answer says
// the outcome is unknown — 504 when it did not answer in time, 502
// otherwise — and tells a client to retry a write with the same
// Idempotency-Key, which makes the retry harmless.
func upstreamError(service string, r *http.Request, err error) error {
	if refused(err) {
		return eventmart.Errorf(eventmart.EUNAVAILABLE, "the %s service is unavailable; the request was not delivered", service)
	}
	retry := "retry the request"
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		retry = "retry with the same Idempotency-Key header (send one with every write) so that it is applied at most once"
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return eventmart.Errorf(eventmart.ETIMEOUT, "the %s service did not answer in time; it may have applied the request: %s", service, retry)
	}
	return eventmart.Errorf(eventmart.EBADGATEWAY, "the %s service failed while handling the request; it may have applied it: %s", service, retry)
}
