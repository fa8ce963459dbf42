package order

import (
	"sync"
	"time"
)

// userMemory remembers the users projection's rows that POST /orders
// reads — who may order, and the customer data the order is placed with —
// so that placing an order reads nothing before its transaction: the
// caller's row comes from memory, and a retried Idempotency-Key is found by
// the transaction's own insert of the key (errKeyTaken). Users change
// rarely; orders are placed all the time.
//
// It answers only while every write of the projection is heard of (the
// Service's hearsEveryChange: SQLite, which one process owns, or a
// LISTENing instance on PostgreSQL): a write forgets its user once it
// commits — on this instance through the transaction's commit hook, on
// every instance through the notification the write sends (payload "ID
// user" on the order channel, see store.upsertUser). A row read from the
// database is answered for at most maxUserAge, for writes nobody hears of
// (an older release, without the notification, during a rolling upgrade);
// a read overtaken by a write (or a reset) is not remembered. At most
// maxUsersRemembered rows are kept; past that, an arbitrary one goes.
type userMemory struct {
	mu      sync.Mutex
	trusted func() bool
	now     func() time.Time
	users   map[string]rememberedUser
	epoch   uint64 // moved by every forget and reset: reads that began before it are not remembered
}

type rememberedUser struct {
	u    *user // nil: no row yet (no event about the user arrived)
	read time.Time
}

const (
	maxUsersRemembered = 50_000 // ~150 bytes each: ~8 MB at most
	maxUserAge         = 5 * time.Second
)

// lookup returns the remembered row of user id (u nil: none exists yet).
func (m *userMemory) lookup(id string) (u *user, ok bool) {
	if !m.trusted() {
		return nil, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.users[id]
	if !ok || m.now().Sub(r.read) > maxUserAge {
		return nil, false
	}
	return r.u, true
}

// userRead is a read of a row from the database: when it began, and the
// epoch then.
type userRead struct {
	epoch uint64
	began time.Time
}

// reading notes that a row is about to be read; hand it to remember.
func (m *userMemory) reading() userRead {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	return userRead{m.epoch, now}
}

// remember keeps u (nil: no row) as user id's row, read from the database
// by r; not if a write was heard of since r began. Its age counts from
// then: the row is what the database held at that moment at the latest.
func (m *userMemory) remember(id string, u *user, r userRead) {
	if !m.trusted() {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.epoch != m.epoch {
		return
	}
	if m.users == nil {
		m.users = map[string]rememberedUser{}
	}
	if _, ok := m.users[id]; !ok && len(m.users) >= maxUsersRemembered {
		for other := range m.users {
			delete(m.users, other)
			break
		}
	}
	m.users[id] = rememberedUser{u: u, read: r.began}
}

// forget drops user id's row: it changed.
func (m *userMemory) forget(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.epoch++
	delete(m.users, id)
}

// reset drops every row: writes may have been missed (a LISTEN lost or
// just taken).
func (m *userMemory) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.epoch++
	clear(m.users)
}
