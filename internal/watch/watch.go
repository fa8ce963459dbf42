// Package watch lets HTTP handlers wait for an entity to change (long
// polling) instead of clients polling it: writers call Notify with the
// entity's id after their transaction commits; waiters take a channel with
// Watch before reading the entity, so no change between the read and the
// wait is missed.
package watch

import "sync"

// Hub broadcasts changes by key. Its zero value is ready to use. It holds
// one entry per key being watched, none for keys nobody waits on.
type Hub struct {
	mu sync.Mutex
	m  map[string]*entry
}

type entry struct {
	ch chan struct{}
	n  int // watchers holding ch
}

// Watch returns a channel closed at the next Notify of key, and a release
// function the caller must call when it stops waiting (it may call it after
// the channel was closed).
func (h *Hub) Watch(key string) (<-chan struct{}, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]*entry{}
	}
	e := h.m[key]
	if e == nil {
		e = &entry{ch: make(chan struct{})}
		h.m[key] = e
	}
	e.n++
	var once sync.Once
	return e.ch, func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			e.n--
			if e.n == 0 && h.m[key] == e {
				delete(h.m, key)
			}
		})
	}
}

// Notify wakes every watcher of key. It never blocks.
func (h *Hub) Notify(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.m[key]; e != nil {
		close(e.ch)
		delete(h.m, key)
	}
}

// NotifyAll wakes every watcher of every key: for when changes may have
// been missed (a lost notification channel). It never blocks.
func (h *Hub) NotifyAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for key, e := range h.m {
		close(e.ch)
		delete(h.m, key)
	}
}

// Len returns how many keys are watched (for tests and metrics).
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.m)
}
