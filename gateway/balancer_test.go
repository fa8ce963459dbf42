package gateway_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/gateway"
)

func TestBalancerSpreadsAndSkipsDownInstances(t *testing.T) {
	hits := map[string]int{}
	var servers []*httptest.Server
	var urls []*url.URL
	for _, name := range []string{"a", "b", "down"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			hits[name]++
			w.Write([]byte(name + ":" + string(b)))
		}))
		servers = append(servers, srv)
		u, _ := url.Parse(srv.URL)
		urls = append(urls, u)
	}
	defer servers[0].Close()
	defer servers[1].Close()
	servers[2].Close() // refuses connections from now on

	c := &http.Client{Transport: gateway.NewBalancer(urls, nil)}
	for i := 0; i < 30; i++ {
		resp, err := c.Post(urls[0].String()+"/x", "text/plain", strings.NewReader("body"))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.HasSuffix(string(b), ":body") {
			t.Fatalf("request %d: answer %q: the body was not resent whole", i, b)
		}
	}
	if hits["a"] == 0 || hits["b"] == 0 || hits["a"]+hits["b"] != 30 {
		t.Errorf("hits %v: want 30 spread over a and b", hits)
	}

	// Every instance down: the error is the connection's.
	servers[0].Close()
	servers[1].Close()
	if _, err := c.Get(urls[0].String()); err == nil {
		t.Error("no error with every instance down")
	}
}
