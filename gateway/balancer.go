package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
)

// maxReplayBody bounds the request bodies Balancer keeps to resend to
// another instance; a larger body goes to one instance only.
const maxReplayBody = 1 << 20

// Balancer is an http.RoundTripper over the instances of one service:
// it sends each request to the next instance in turn (round robin), and
// when an instance refuses the connection (it is down or restarting) it
// sends the request to the next one. Only failures to connect move on: the
// instance never saw the request, so resending it cannot repeat an effect.
//
// Requests may name any of the instances' URLs (or any URL: only the
// scheme and host are replaced); the instances must serve the same paths.
type Balancer struct {
	urls []*url.URL
	next atomic.Uint32
	rt   http.RoundTripper
}

// NewBalancer returns a balancer over urls (at least one) using rt, or
// Transport when rt is nil.
func NewBalancer(urls []*url.URL, rt http.RoundTripper) *Balancer {
	if rt == nil {
		rt = Transport
	}
	return &Balancer{urls: urls, rt: rt}
}

// Transport is the transport of the gateway's proxies and of the calls
// between services (distributed mode): http.DefaultTransport keeping up to
// maxIdlePerInstance idle connections to each instance instead of 2. With
// 2, a burst of concurrent requests to one instance (64 orders in flight:
// their POSTs, held GETs, and the order service's calls to catalog and
// payment) opened a connection for nearly every request and closed it after,
// a TCP handshake and a server goroutine each, at both ends.
var Transport http.RoundTripper = newTransport()

// maxIdlePerInstance bounds the idle connections kept to one instance: as
// many as the requests commonly in flight to it, so that bursts reuse them.
const maxIdlePerInstance = 256

func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 4 * maxIdlePerInstance // over all instances (the default, 100, would undo the per-instance bound)
	t.MaxIdleConnsPerHost = maxIdlePerInstance
	return t
}

// RoundTrip implements http.RoundTripper.
func (b *Balancer) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	replay := len(b.urls) > 1
	if replay && r.Body != nil && r.Body != http.NoBody {
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, maxReplayBody+1))
		r.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("gateway: read request body: %w", err)
		}
		replay = len(body) <= maxReplayBody
		if !replay {
			return nil, errors.New("gateway: request body too large to balance")
		}
	}
	start := int(b.next.Add(1))
	var err error
	for i := range b.urls {
		u := b.urls[(start+i)%len(b.urls)]
		out := r.Clone(r.Context())
		out.URL.Scheme, out.URL.Host, out.Host = u.Scheme, u.Host, ""
		if body != nil {
			out.Body = io.NopCloser(bytes.NewReader(body))
			out.ContentLength = int64(len(body))
		}
		var resp *http.Response
		resp, err = b.rt.RoundTrip(out)
		if err == nil || !refused(err) || !replay {
			return resp, err
		}
	}
	return nil, err
}

// refused reports a failure to connect: the request was not sent.
func refused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
