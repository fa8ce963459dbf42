package e2e

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
)

// TestEmbeddedSurvivesKill9 places orders, kills the process with SIGKILL
// while sagas are in flight, restarts it on the same data directory and
// checks that every accepted order completes exactly once: redelivered
// events have no second effect and nothing acknowledged is lost.
func TestEmbeddedSurvivesKill9(t *testing.T) {
	dir := t.TempDir()
	s := startEmbedded(t, dir)
	defer s.stopAll()
	sh := newShop(s)
	tok, _ := sh.customer("crash")
	pid := sh.product(100, 1000)

	// Orders are placed from 8 clients; after the 30th acceptance the
	// process is killed while requests and sagas are in flight. Orders
	// whose POST did not get a 202 were never accepted and are not tracked.
	var mu sync.Mutex
	var ids []string
	killed := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-killed:
					return
				default:
				}
				var o order
				status, _, body, err := s.send("POST", "/api/v1/orders", tok, map[string]any{"items": line(pid, 1), "payment": map[string]string{"card": cardOK}, "shippingAddress": address})
				if err != nil || status != 202 || json.Unmarshal(body, &o) != nil {
					continue
				}
				mu.Lock()
				ids = append(ids, o.ID)
				if len(ids) == 30 {
					once.Do(func() { s.procs["run"].kill(); close(killed) })
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	s.procs["run"].start(t)
	t.Logf("%d orders accepted before the kill", len(ids))

	// Requests in flight at the kill may have committed an order whose 202
	// never arrived: those exist too and take stock, so the check counts
	// the customer's orders as the service lists them, which must include
	// every accepted one.
	var list struct{ Orders []order }
	s.must("GET", "/api/v1/orders?limit=200", tok, nil, 200, &list)
	listed := map[string]bool{}
	for _, o := range list.Orders {
		listed[o.ID] = true
	}
	for _, id := range ids {
		if !listed[id] {
			t.Errorf("accepted order %s is missing after the restart", id)
		}
	}
	for _, o := range list.Orders {
		if f := sh.final(tok, o.ID); f.Status != "SHIPPED" {
			t.Errorf("order %s ended %s (%s)", o.ID, f.Status, f.Reason)
		}
		if ps := sh.payments(tok, o.ID); len(ps) != 1 || ps[0].Status != "processed" {
			t.Errorf("order %s has payments %+v, want exactly one processed", o.ID, ps)
		}
	}
	n := int64(len(list.Orders))
	t.Logf("%d orders after the restart", n)
	want := stock{1000 - n, 0, 1000 - n}
	var got stock
	defer func() {
		if t.Failed() {
			t.Logf("last stock seen %+v", got)
		}
	}()
	s.eventually(fmt.Sprintf("stock %+v to match the %d shipped orders", want, n), func() bool {
		got = sh.stock(pid)
		return got == want
	})
}
