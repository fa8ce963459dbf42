package order

import (
	"strings"
	"sync"

	"github.com/eventmart/eventmart/internal/watch"
)

// maxKnown bounds how many orders known remembers; past it, an arbitrary
// one is forgotten for each new one (a forgotten order costs its next held
// GET one read, nothing else).
const maxKnown = 10_000

// known is what this instance last answered a GET of each order with —
// its owner and ETag — while no change of the order has been heard of
// since, so that a held GET naming that ETag (If-None-Match) waits for the
// next change without reading the order first: under a client following
// an order's saga, one read per change instead of two (the answer's, and
// the next request's).
//
// It is exact only while every change of an order is heard of: on SQLite
// (one process, whose commits notify), or on PostgreSQL while the instance
// LISTENs (each commit of any instance is then heard of once, through the
// NOTIFY; see Service.orderChanged). Otherwise nothing is remembered, and
// whatever was is forgotten when notifications may have been missed
// (reset).
//
// Every change and every watch of it goes through mu, with the hub's
// notification: a watch taken with a remembered entry is woken by the
// change that forgets it, and an entry is remembered only if the watch
// taken before its read was not woken meanwhile.
type known struct {
	hub     *watch.Hub
	trusted func() bool // every change is heard of: see known

	mu    sync.Mutex
	m     map[string]knownOrder
	epoch uint64 // bumped by reset: entries read before it are not remembered
	// newOrders counts, for each order this instance is placing (POST
	// /orders), the changes of it heard of since it began: see placed.
	newOrders map[string]int
	// committing is the orders row this instance last wrote of each order
	// (PostgreSQL), with the token its notification carries, until the
	// order's next change is heard of; heardRows, the row of each order
	// whose last change heard of is one of those: the order as it is, in
	// the words of a read, until its next change is heard of (see heard).
	committing map[string]tokenRow
	heardRows  map[string][]any
}

type tokenRow struct {
	token string
	row   []any
}

type knownOrder struct {
	owner, etag string
	// final: the order's status is final (SHIPPED or CANCELLED), so a GET
	// held until it is (Prefer: until=final) naming etag is answered at
	// once.
	final bool
	// unheard: the commit that placed the order, answered by this
	// instance's POST, is still to be heard of (PostgreSQL's NOTIFY comes
	// after the answer). That hearing is no change of what was answered:
	// it only clears unheard.
	unheard bool
}

// watch watches order id for its next change (hub.Watch), returning the
// epoch to remember a read taken after it with.
func (k *known) watch(id string) (<-chan struct{}, func(), uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ch, release := k.hub.Watch(id)
	return ch, release, k.epoch
}

// hold returns what is remembered of order id (its owner, ETag and
// whether it is final), and a watch of its next change, if an entry is
// remembered and matches(ETag) holds; ok is false otherwise (and nothing
// is watched).
func (k *known) hold(id string, matches func(etag string) bool) (e knownOrder, changed <-chan struct{}, release func(), ok bool) {
	if !k.trusted() {
		return knownOrder{}, nil, nil, false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok = k.m[id]
	if !ok || !matches(e.etag) {
		return knownOrder{}, nil, nil, false
	}
	changed, release = k.hub.Watch(id)
	return e, changed, release, true
}

// remember notes that order id, owned by owner, read after the watch
// changed was taken in epoch, is represented by etag, its status final or
// not — unless the order changed since (changed was woken), notifications
// may have been missed since (epoch), or changes are not all heard of.
func (k *known) remember(id, owner, etag string, final bool, changed <-chan struct{}, epoch uint64) {
	if !k.trusted() {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	select {
	case <-changed:
		return
	default:
	}
	if epoch != k.epoch {
		return
	}
	// An order whose placing is still to be heard of keeps waiting for
	// that hearing: this read came after the placing.
	k.put(id, knownOrder{owner: owner, etag: etag, final: final, unheard: k.m[id].unheard})
}

// put remembers e as order id's entry; k.mu is held.
func (k *known) put(id string, e knownOrder) {
	if k.m == nil {
		k.m = map[string]knownOrder{}
	}
	if _, ok := k.m[id]; !ok && len(k.m) >= maxKnown {
		for old := range k.m {
			delete(k.m, old)
			break
		}
	}
	k.m[id] = e
}

// placing notes that this instance is about to commit a new order id,
// and returns the epoch to call placed with once the commit is over.
func (k *known) placing(id string) uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.newOrders == nil {
		k.newOrders = map[string]int{}
	}
	k.newOrders[id] = 0
	return k.epoch
}

// placed ends placing(id): the order, owned by owner, committed and
// answered with etag ("": nothing was committed, only forget). The commit
// that placed it is heard of exactly once (Service.orderChanged): at
// commit on SQLite, by the NOTIFY on PostgreSQL, before or after this
// call; no other change of a new order precedes it. The answer is
// remembered as remember would — unless another change was heard of
// since placing, notifications may have been missed since (epoch), or
// changes are not all heard of; if the commit is still to be heard of,
// that hearing will not forget it (unheard).
func (k *known) placed(id, owner, etag string, epoch uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	heard := k.newOrders[id]
	delete(k.newOrders, id)
	if etag == "" || heard > 1 || epoch != k.epoch || !k.trusted() {
		return
	}
	k.put(id, knownOrder{owner: owner, etag: etag, unheard: heard == 0}) // a new order: PENDING
}

// committed notes that this instance is writing row, order id's orders
// row, in a statement whose notification carries token (see heard).
func (k *known) committed(token string, row []any) {
	id, _ := row[0].(string)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.committing == nil {
		k.committing = map[string]tokenRow{}
	}
	bound(k.committing, id)
	k.committing[id] = tokenRow{token, row}
}

// heard is changed for a notification of PostgreSQL: payload is the
// order's id, a space and the token of the statement that wrote its row
// (projectOrderLater). When this instance wrote that row (committed), the
// row is the order as it is until its next change is heard of (the
// notifications come in the order of the commits): the held GETs it wakes
// take it (heardOrder) rather than read.
func (k *known) heard(payload string) {
	id, token, _ := strings.Cut(payload, " ")
	k.mu.Lock()
	defer k.mu.Unlock()
	if c, ok := k.committing[id]; ok && token != "" && c.token == token {
		delete(k.committing, id)
		if k.heardRows == nil {
			k.heardRows = map[string][]any{}
		}
		bound(k.heardRows, id)
		k.heardRows[id] = c.row
	} else {
		delete(k.heardRows, id)
	}
	k.changedLocked(id)
}

// heardRow returns the orders row of order id as its last change heard of
// left it, if this instance wrote it and every change is heard of (see
// heard); ok is false otherwise.
func (k *known) heardRow(id string) (row []any, ok bool) {
	if !k.trusted() {
		return nil, false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	row, ok = k.heardRows[id]
	return row, ok
}

// bound makes room for one more entry in m, if id is not in it yet, by
// forgetting an arbitrary one once m holds maxKnown.
func bound[V any](m map[string]V, id string) {
	if _, ok := m[id]; !ok && len(m) >= maxKnown {
		for old := range m {
			delete(m, old)
			break
		}
	}
}

// changed forgets order id and wakes its watchers: it changed — unless
// this is the hearing of the commit that placed it, still to be heard of
// (unheard): whoever read the order since read it after that commit.
func (k *known) changed(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.heardRows, id)
	k.changedLocked(id)
}

// changedLocked is changed with k.mu held.
func (k *known) changedLocked(id string) {
	if n, ok := k.newOrders[id]; ok {
		k.newOrders[id] = n + 1
	}
	if e, ok := k.m[id]; ok && e.unheard {
		e.unheard = false
		k.m[id] = e
		return
	}
	delete(k.m, id)
	k.hub.Notify(id)
}

// reset forgets every order and wakes every watcher: changes may have
// been missed.
func (k *known) reset() {
	k.mu.Lock()
	defer k.mu.Unlock()
	clear(k.m)
	clear(k.committing)
	clear(k.heardRows)
	k.epoch++
	k.hub.NotifyAll()
}

// size is how many orders are remembered.
func (k *known) size() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}
