package watch

import (
	"sync"
	"testing"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestNotifyWakesWatchersOfItsKeyOnly(t *testing.T) {
	var h Hub
	a1, ra1 := h.Watch("a")
	a2, ra2 := h.Watch("a")
	b, rb := h.Watch("b")
	h.Notify("a")
	if !closed(a1) || !closed(a2) {
		t.Fatal("watchers of a not woken")
	}
	if closed(b) {
		t.Fatal("watcher of b woken by a change of a")
	}
	// A watch taken after the notification waits for the next one.
	a3, ra3 := h.Watch("a")
	if closed(a3) {
		t.Fatal("new watcher woken by an earlier notification")
	}
	ra1()
	ra2()
	ra3()
	rb()
	rb() // releasing twice is harmless
	if h.Len() != 0 {
		t.Fatalf("%d keys left after every watcher released", h.Len())
	}
	h.Notify("nobody") // no watcher: nothing to do
}

func TestNotifyAllWakesEveryWatcher(t *testing.T) {
	var h Hub
	a, ra := h.Watch("a")
	b, rb := h.Watch("b")
	h.NotifyAll()
	if !closed(a) || !closed(b) {
		t.Fatal("a watcher not woken by NotifyAll")
	}
	a2, ra2 := h.Watch("a")
	if closed(a2) {
		t.Fatal("new watcher woken by an earlier NotifyAll")
	}
	ra()
	rb()
	ra2()
	if h.Len() != 0 {
		t.Fatalf("%d keys left after every watcher released", h.Len())
	}
}

func TestConcurrentWatchNotify(t *testing.T) {
	var h Hub
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				_, release := h.Watch("k")
				release()
			}
		}()
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				h.Notify("k")
			}
		}()
	}
	wg.Wait()
	if h.Len() != 0 {
		t.Fatalf("%d keys left", h.Len())
	}
}
