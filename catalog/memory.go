package catalog

import (
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/heard"
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
// tables is heard of (heard.Memory): on SQLite (one process, whose commits
// tell memory, store.go), or on PostgreSQL while the instance LISTENs
// (every committing write notifies changeChannel, this instance's own
// included; see Service.RunInstance). A write of a products row forgets
// its product; a stock level is applied in place (level); a rebuilt
// availability table swapped in, or the LISTEN taken or lost, forgets all.
type memory struct {
	*heard.Memory[string, remembered]
}

// newMemory returns an empty memory, trusted while trusted reports that
// every write is heard of, on clock now (nil: time.Now).
func newMemory(trusted func() bool, now func() time.Time) memory {
	return memory{heard.New[string, remembered](heard.Config{Trusted: trusted, MaxEntries: maxRemembered, MaxAge: maxAge, Now: now})}
}

// remembered is a product as read or last heard of, with the version of
// the stock level its availability is (0: none yet).
type remembered struct {
	p       Product
	version int64
}

// lookup returns the remembered products of ids (distinct), if every one
// is remembered and memory is trusted; ok is false otherwise.
func (m memory) lookup(ids []string) (rs []remembered, ok bool) {
	if !m.Trusted() {
		return nil, false
	}
	rs = make([]remembered, len(ids))
	if !m.LookupAll(ids, rs) {
		return nil, false
	}
	return rs, true
}

// end ends read r of the database, remembering the products it found
// (see heard.Memory.End).
func (m memory) end(r heard.Read[string], found []remembered) {
	ids := make([]string, len(found))
	for i := range found {
		ids[i] = found[i].p.ID
	}
	m.End(r, ids, found)
}

// level applies stock level l, committed, to its product's availability
// as the database does (store.applyLevel): unless the level remembered is
// as new already.
func (m memory) level(l event.StockLevel) {
	m.Change(l.ProductID, func(e remembered) remembered {
		if e.version < l.Version {
			e.p.Availability = availability(l.OnHand, l.Reserved, l.Available, e.p.Status)
			e.version = l.Version
		}
		return e
	})
}
