package webhook

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/eventmart/eventmart"
)

// guard decides which addresses deliveries may reach. It is asked at
// registration (to explain a refusal) and again at dial time, for the
// address actually connected to: a name that resolved to a public address
// at registration and to a private one now (DNS rebinding) is refused.
type guard struct {
	allow []netip.Prefix // EVENTMART_WEBHOOK_ALLOW
}

// newGuard parses EVENTMART_WEBHOOK_ALLOW's CIDRs.
func newGuard(cidrs []string) (*guard, error) {
	g := &guard{}
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("webhook: EVENTMART_WEBHOOK_ALLOW: %q is not a CIDR such as 127.0.0.1/32: %w", c, err)
		}
		g.allow = append(g.allow, p.Masked())
	}
	return g, nil
}

// special are the IANA special-purpose ranges that netip's predicates do
// not cover: none of them is a public web server.
var special = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\""},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (carrier-grade NAT)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
	{netip.MustParsePrefix("2001::/23"), "IETF protocol assignment"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("2002::/16"), "6to4"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
}

// kind says what is special about a: "loopback", "private"…, or "" for
// an ordinary public unicast address.
func kind(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case !a.IsValid():
		return "invalid"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate():
		return "private"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return "link-local"
	case a.IsMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	}
	for _, s := range special {
		if s.prefix.Contains(a) {
			return s.what
		}
	}
	return ""
}

// check returns nil if a delivery may connect to a: an address in
// EVENTMART_WEBHOOK_ALLOW, or, over https, any public unicast address.
// Plain http goes only to allowed networks (a local receiver in a test or
// on a laptop); it carries the signature's secret-derived MAC in clear.
func (g *guard) check(a netip.Addr, plainHTTP bool) error {
	a = a.Unmap()
	for _, p := range g.allow {
		if p.Contains(a) {
			return nil
		}
	}
	if k := kind(a); k != "" {
		return eventmart.Errorf(eventmart.EINVALID, "%s is a %s address; webhooks reach only public addresses, unless EVENTMART_WEBHOOK_ALLOW names its network", a, k)
	}
	if plainHTTP {
		return eventmart.Errorf(eventmart.EINVALID, "plain http to %s: webhooks use https, except to networks EVENTMART_WEBHOOK_ALLOW names", a)
	}
	return nil
}

// control is a net.Dialer.Control that refuses what check refuses, for
// the address about to be connected to.
func (g *guard) control(plainHTTP bool) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		if network != "tcp4" && network != "tcp6" {
			return fmt.Errorf("webhook: refused to dial %s over %s", address, network)
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("webhook: dial %s: %w", address, err)
		}
		if err := g.check(ap.Addr(), plainHTTP); err != nil {
			return fmt.Errorf("webhook: refused to connect: %w", err)
		}
		return nil
	}
}

// client returns the HTTP client of deliveries: every connection checked
// by the guard, no proxy (it would connect on the guard's behalf), no
// redirect followed (a 3xx is a failed attempt), timeout per attempt.
func (g *guard) client(timeout time.Duration) *http.Client {
	transport := func(plainHTTP bool) *http.Transport {
		d := &net.Dialer{Timeout: timeout, Control: g.control(plainHTTP)}
		return &http.Transport{
			DialContext: d.DialContext, ForceAttemptHTTP2: true,
			MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second,
			TLSHandshakeTimeout: timeout, ResponseHeaderTimeout: timeout,
		}
	}
	return &http.Client{
		Transport:     &schemeTransport{https: transport(false), http: transport(true)},
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// schemeTransport sends https and http requests through transports whose
// guards differ: plain http only to allowed networks.
type schemeTransport struct{ https, http *http.Transport }

func (t *schemeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" {
		return t.http.RoundTrip(r)
	}
	return t.https.RoundTrip(r)
}

// checkURL validates an endpoint URL at registration and explains a
// refusal: an absolute http(s) URL without credentials whose host
// resolves only to addresses the guard lets deliveries reach. The dial-time
// check still applies to every delivery.
func (g *guard) checkURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || !u.IsAbs() {
		return eventmart.Errorf(eventmart.EINVALID, "url: not an absolute URL such as https://example.com/hooks: %q", raw)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return eventmart.Errorf(eventmart.EINVALID, "url: scheme %q; webhooks use https", u.Scheme)
	}
	if u.User != nil {
		return eventmart.Errorf(eventmart.EINVALID, "url: must not carry credentials; the signature authenticates deliveries")
	}
	host := u.Hostname()
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if addrs, err = net.DefaultResolver.LookupNetIP(rctx, "ip", host); err != nil || len(addrs) == 0 {
			return eventmart.Errorf(eventmart.EINVALID, "url: host %s does not resolve", host)
		}
	}
	for _, a := range addrs {
		if err := g.check(a, u.Scheme == "http"); err != nil {
			msg := eventmart.ErrorMessage(err)
			if !strings.EqualFold(host, a.Unmap().String()) {
				msg = host + " resolves to " + msg
			}
			return eventmart.Errorf(eventmart.EINVALID, "url: %s", msg)
		}
	}
	return nil
}
