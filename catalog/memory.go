package catalog

import (
	"slices"
	"sync"
	"time"

	"github.com/eventmart/eventmart/event"
)

// maxRemembered bounds how many products memory holds. A catalog has a few
// thousand; an entry is a Product of a few hundred bytes, so memory stays
// within a few megabytes. Past it, an arbitrary product is forgotten for
// each new one (a forgotten product costs its next read one query).
const maxRemembered = 10_000

// maxAge is how long a product read from the database is answered from
// memory at most: a safety net for a write not heard of, which only an
// instance of a release that did not notify makes (a rolling upgrade on
// PostgreSQL); the notifications are what keeps memory current.
const maxAge = 5 * time.Second

// memory is the products as the database holds them, availability
// included, for the reads by id (GET /products?ids=…, GET /products/{id}):
// the order service asks for the products of every order, and products
// change rarely. A remembered product is answered without a query.
//
// It is exact only while every write of the products and product_stock
// tables is heard of: on SQLite (one process, whose commits tell memory,
// store.go), or on PostgreSQL while the instance LISTENs (every committing
// write notifies changeChannel, this instance's own included; see
// Service.RunInstance). Otherwise nothing is answered or remembered, and
// what was is forgotten when writes may have been missed (reset).
//
// A read of the database that a write of one of its products may have
// overtaken (its snapshot may be older than the write, whose hearing came
// before the read ended) is not remembered: each read in flight is noted
// (begin), and the hearing of a write of one of its products, or a reset,
// marks it.
type memory struct {
	trusted func() bool      // every write is heard of: see memory
	now     func() time.Time // nil: time.Now

	mu    sync.Mutex
	m     map[string]remembered
	reads map[*memoryRead]struct{} // in flight
}

// remembered is a product as read or last heard of, with the version of
// the stock level its availability is (0: none yet).
type remembered struct {
	p       Product
	version int64
	read    time.Time // when it was read from the database (see maxAge)
}

// memoryRead is a read of products ids from the database in flight; dirty
// once a write of one of them, or a reset, was heard of since it began.
type memoryRead struct {
	ids   []string
	began time.Time
	dirty bool
}

// lookup returns the remembered products of ids (distinct), if every one
// is remembered and memory is trusted; ok is false otherwise.
func (m *memory) lookup(ids []string) (ps []*Product, ok bool) {
	if !m.trusted() {
		return nil, false
	}
	now := m.clock()
	m.mu.Lock()
	defer m.mu.Unlock()
	ps = make([]*Product, len(ids))
	for i, id := range ids {
		e, ok := m.m[id]
		if !ok || now.Sub(e.read) >= maxAge {
			return nil, false
		}
		ps[i] = &e.p // a copy: entries are replaced, never changed
	}
	return ps, true
}

// begin notes that a read of products ids from the database is about to
// start; end it with end, whatever the read's outcome.
func (m *memory) begin(ids []string) *memoryRead {
	r := &memoryRead{ids: ids, began: m.clock()}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.reads == nil {
		m.reads = map[*memoryRead]struct{}{}
	}
	m.reads[r] = struct{}{}
	return r
}

// end ends read r, remembering what it read unless a write of one of its
// products or a reset was heard of since it began, or memory is not
// trusted.
func (m *memory) end(r *memoryRead, read []remembered) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.reads, r)
	if r.dirty || !m.trusted() {
		return
	}
	if m.m == nil {
		m.m = map[string]remembered{}
	}
	for _, e := range read {
		if _, ok := m.m[e.p.ID]; !ok && len(m.m) >= maxRemembered {
			for old := range m.m {
				delete(m.m, old)
				break
			}
		}
		e.read = r.began
		m.m[e.p.ID] = e
	}
}

func (m *memory) clock() time.Time {
	if m.now != nil {
		return m.now()
	}
	return time.Now()
}

// changed forgets product id: a write of its products row committed.
func (m *memory) changed(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, id)
	m.touched(id)
}

// level applies stock level l, committed, to its product's availability
// as the database does (store.applyLevel): unless the level remembered is
// as new already.
func (m *memory) level(l event.StockLevel) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.m[l.ProductID]; ok && e.version < l.Version {
		e.p.Availability = availability(l.OnHand, l.Reserved, l.Available, e.p.Status)
		e.version = l.Version
		m.m[l.ProductID] = e
	}
	m.touched(l.ProductID)
}

// touched marks the reads in flight of product id; m.mu is held.
func (m *memory) touched(id string) {
	for r := range m.reads {
		if !r.dirty && slices.Contains(r.ids, id) {
			r.dirty = true
		}
	}
}

// reset forgets every product: writes may have been missed, or many
// changed at once (a rebuilt availability table was swapped in).
func (m *memory) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.m)
	for r := range m.reads {
		r.dirty = true
	}
}

// size is how many products are remembered.
func (m *memory) size() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.m)
}
