package e2e

import (
	"encoding/json"
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
	n := len(ids)
	t.Logf("%d orders accepted before the kill", n)

	for _, id := range ids {
		if o := sh.final(tok, id); o.Status != "SHIPPED" {
			t.Errorf("order %s ended %s (%s)", id, o.Status, o.Reason)
		}
		if ps := sh.payments(tok, id); len(ps) != 1 || ps[0].Status != "processed" {
			t.Errorf("order %s has payments %+v, want exactly one processed", id, ps)
		}
	}
	s.eventually("stock to match the shipped orders", func() bool { return sh.stock(pid) == stock{int64(1000 - n), 0, int64(1000 - n)} })
}
