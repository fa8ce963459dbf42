package gateway_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
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

// A burst of concurrent requests to one instance leaves its connections
// idle for the next burst, which opens none (with http.DefaultTransport's
// 2 idle connections per host, nearly every request opened one).
func TestBalancerKeepsABurstsConnections(t *testing.T) {
	const burst = 32
	var mu sync.Mutex
	opened := 0
	var arrived sync.WaitGroup
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every request of the burst is answered once all arrived: the
		// burst holds burst connections at once.
		arrived.Done()
		arrived.Wait()
		w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			opened++
			mu.Unlock()
		}
	}
	srv.Start()
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	c := &http.Client{Transport: gateway.NewBalancer([]*url.URL{u}, nil)}
	send := func() {
		arrived.Add(burst)
		var done sync.WaitGroup
		for range burst {
			done.Add(1)
			go func() {
				defer done.Done()
				resp, err := c.Get(srv.URL + "/x")
				if err != nil {
					t.Error(err)
					arrived.Done() // the server never saw it
					return
				}
				io.ReadAll(resp.Body) // read to the end: the connection is idle when this returns
				resp.Body.Close()
			}()
		}
		done.Wait()
	}
	send()
	mu.Lock()
	first := opened
	mu.Unlock()
	if first != burst {
		t.Fatalf("the first burst opened %d connections, want %d", first, burst)
	}
	send()
	mu.Lock()
	defer mu.Unlock()
	if opened != first {
		t.Fatalf("the second burst opened %d more connections, want none", opened-first)
	}
}
