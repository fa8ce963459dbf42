package webhook_test

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/webhook"
)

// The guard's verdicts, at the check itself: no connection is attempted.
func TestGuardRefusesSpecialAddresses(t *testing.T) {
	refused := map[string]string{
		"127.0.0.1": "loopback", "127.8.9.10": "loopback", "::1": "loopback", "::ffff:127.0.0.1": "loopback",
		"10.1.2.3": "private", "172.16.0.1": "private", "192.168.1.1": "private", "fd00::1": "private",
		"169.254.169.254": "link-local", "fe80::1": "link-local",
		"224.0.0.1": "link-local", "239.1.2.3": "multicast", "ff02::1": "link-local", "ff05::1": "multicast",
		"0.0.0.0": "unspecified", "::": "unspecified", "0.1.2.3": "this network",
		"100.64.0.1": "carrier-grade NAT", "192.0.0.8": "IETF", "192.0.2.1": "documentation",
		"198.18.0.1": "benchmarking", "198.51.100.7": "documentation", "203.0.113.9": "documentation",
		"240.0.0.1": "reserved", "255.255.255.255": "broadcast",
		"64:ff9b::a00:1": "NAT64", "2001:db8::1": "documentation", "2002:a00:1::": "6to4", "fec0::1": "site-local",
		"::ffff:10.0.0.1": "private", "::ffff:169.254.169.254": "link-local",
	}
	for addr, why := range refused {
		err := webhook.CheckAddr(nil, netip.MustParseAddr(addr), false)
		if err == nil || !strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), "EVENTMART_WEBHOOK_ALLOW") {
			t.Errorf("%s: %v, want a refusal naming %q and EVENTMART_WEBHOOK_ALLOW", addr, err, why)
		}
	}
	for _, addr := range []string{"93.184.215.14", "8.8.8.8", "2606:4700::1111", "1.1.1.1"} {
		if err := webhook.CheckAddr(nil, netip.MustParseAddr(addr), false); err != nil {
			t.Errorf("public %s over https refused: %v", addr, err)
		}
		if err := webhook.CheckAddr(nil, netip.MustParseAddr(addr), true); err == nil || !strings.Contains(err.Error(), "plain http") {
			t.Errorf("public %s over plain http: %v, want refused", addr, err)
		}
	}
	// The allowlist opens exactly its networks, over http too.
	allow := []string{"10.20.0.0/16", "::1/128"}
	for _, addr := range []string{"10.20.3.4", "::1", "::ffff:10.20.0.1"} {
		if err := webhook.CheckAddr(allow, netip.MustParseAddr(addr), true); err != nil {
			t.Errorf("allowed %s refused: %v", addr, err)
		}
	}
	for _, addr := range []string{"10.21.0.1", "127.0.0.1"} {
		if err := webhook.CheckAddr(allow, netip.MustParseAddr(addr), false); err == nil {
			t.Errorf("%s outside the allowlist accepted", addr)
		}
	}
	if err := webhook.CheckAddr([]string{"not-a-cidr"}, netip.MustParseAddr("1.1.1.1"), false); err == nil {
		t.Error("a bad EVENTMART_WEBHOOK_ALLOW accepted")
	}
	// At dial time: the address about to be connected to.
	if err := webhook.Dial(nil, "169.254.169.254:80"); err == nil || !strings.Contains(err.Error(), "link-local") {
		t.Errorf("dial metadata address: %v", err)
	}
	if err := webhook.Dial(nil, "93.184.215.14:443"); err != nil {
		t.Errorf("dial public address: %v", err)
	}
}

// End to end, with loopback left out of the allowlist: registration
// explains the refusal, a name resolving to loopback is refused, a
// connection made after the allowlist shrank is refused at dial time, and
// a redirect to loopback is not followed.
func TestRegistrationAndDeliveryRefuseLoopback(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, nil)
	h := start(t, map[string]string{"EVENTMART_WEBHOOK_ALLOW": "127.0.0.1/32", "EVENTMART_WEBHOOK_RETRY_DELAYS": "20ms"})
	admin := h.Token("admin-1", "admin")
	ep := create(h, rcv.URL) // allowed: 127.0.0.1/32

	h.Restart(apptest.Settings(map[string]string{"EVENTMART_WEBHOOK_ALLOW": "", "EVENTMART_WEBHOOK_RETRY_DELAYS": "20ms"}))
	for url, why := range map[string]string{
		rcv.URL: "127.0.0.1 is a loopback address",
		strings.Replace(rcv.URL, "http:", "https:", 1): "127.0.0.1 is a loopback address",
		"https://localhost:9/hooks":                    "localhost resolves to",
		"https://[::1]:9/":                             "::1 is a loopback address",
		"https://169.254.169.254/latest":               "link-local",
		"ftp://example.com/":                           "scheme",
		"https://user:pw@example.com/":                 "credentials",
		"/relative":                                    "absolute",
	} {
		status, _, body := h.Do("POST", "/api/v1/webhooks/endpoints", admin, map[string]any{"url": url})
		if status != http.StatusBadRequest || !strings.Contains(string(body), why) {
			t.Errorf("register %s: %d %s, want 400 explaining %q", url, status, body, why)
		}
	}
	// The endpoint registered before is refused when connecting.
	h.Publish("order-service", origin, orderCreated("o-ssrf"))
	h.Eventually("the attempt refused at dial time", func() bool {
		ds := deliveries(h, ep.ID)
		return len(ds) == 1 && len(ds[0].AttemptLog) > 0 && strings.Contains(ds[0].AttemptLog[0].Error, "loopback")
	})
	if n := len(rcv.requests()); n != 0 {
		t.Errorf("the refused receiver got %d requests", n)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	target := newReceiver(t, nil) // on 127.0.0.1, reached only through the redirect
	rcv := newReceiver(t, func(_ int, w http.ResponseWriter) {
		w.Header().Set("Location", target.URL+"/stolen")
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
	h := start(t, loopback)
	ep := create(h, rcv.URL)
	h.Publish("order-service", origin, orderCreated("o-redirect"))
	h.Eventually("the redirect recorded as a failed attempt", func() bool {
		ds := deliveries(h, ep.ID)
		return len(ds) == 1 && len(ds[0].AttemptLog) > 0 && ds[0].AttemptLog[0].StatusCode == 307 &&
			strings.Contains(ds[0].AttemptLog[0].Error, "not followed")
	})
	if n := len(target.requests()); n != 0 {
		t.Errorf("the redirect target got %d requests", n)
	}
}
