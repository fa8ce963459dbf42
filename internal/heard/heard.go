// Package heard is a memory of rows read from a database that answers
// them again without a read for as long as every write of them is heard
// of: a read cache kept exact by the writers' commit hooks and, across
// processes, by notifications (PostgreSQL LISTEN/NOTIFY).
//
// The contract of a Memory:
//
//   - A value is answered (Lookup, LookupAll) only while Trusted reports
//     that every write, by any process, is heard of — one process owns the
//     database (SQLite), or this one LISTENs on PostgreSQL — and for at
//     most MaxAge from the beginning of the read that returned it: a safety
//     net for a write nobody hears of (an older release that does not
//     notify, during a rolling upgrade).
//   - A value is remembered only from a read of the database: Begin before
//     it, End after it, whatever its outcome, with what it read. A read is
//     not remembered if a write of one of its keys (Forget, Change) or a
//     Reset was heard of between its Begin and End — its snapshot may be
//     older than the write — or if the memory is not trusted at End.
//   - A value is forgotten by Forget of its key, by Reset, by age, and by
//     the entry bound: past MaxEntries, an arbitrary entry is forgotten for
//     each new one.
//   - No value of a key is answered, or remembered, while a write of it
//     is in flight (Writing to Wrote, or WritingAll to WroteAll): from the
//     moment its statement runs the write may become visible — its commit
//     — before this process hears of it in a commit hook, and an answer
//     from memory in that window would be older than what the database
//     already shows (a deactivated user placing an order). This holds for
//     this process's writes; another process's write is heard of when its
//     notification arrives, and until then the value as it was may be
//     answered here — a window of a notification's delivery, which only a
//     read would close.
//
// What a caller must do:
//
//   - before a write of key k runs in a transaction, call Writing(k), and
//     Wrote(k) once the transaction has ended, committed or rolled back
//     (sqldb.Tx.OnEnd) — after the Forget or Change of a commit; for a
//     write of many keys at once, WritingAll and WroteAll;
//   - once a write of key k commits, call Forget(k) — or Change(k, …) when
//     the write's effect on the value is known — from the transaction's
//     commit hook for this process's writes, and on each notification of a
//     write (which on PostgreSQL also reaches the writer itself: hearing a
//     write twice only forgets twice);
//   - call Reset when listening starts (a write committed before may have
//     been heard of by no one), when it stops or is lost (writes may be
//     missed; Trusted then reports false), and when many values changed at
//     once.
//
// Every method is safe for concurrent use.
package heard

import (
	"sync"
	"time"
)

// Config is what a Memory is made of. Trusted, MaxEntries and MaxAge are
// required.
type Config struct {
	// Trusted reports whether every write is heard of (see the package
	// comment); nothing is answered or remembered while it is false.
	Trusted func() bool
	// MaxEntries bounds how many values are remembered.
	MaxEntries int
	// MaxAge is how long a value read from the database is answered at
	// most, counted from the read's Begin.
	MaxAge time.Duration
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Memory remembers values of type V by key K: see the package comment.
type Memory[K comparable, V any] struct {
	c    Config
	base time.Time // ages are counted as durations since base (no pointer in a Read: see Begin)

	mu sync.Mutex
	m  map[K]entry[V]
	// reading counts the reads in flight of each key; written is, for each
	// key with reads in flight, the seq of the last write of it heard of:
	// a read that began before it is overtaken. Both hold only the keys
	// being read, so a write heard of costs a lookup, not a scan of the
	// reads.
	reading map[K]int
	written map[K]uint64
	seq     uint64 // moved by each write recorded in written, and each reset
	resetAt uint64 // seq of the last Reset or WritingAll
	// writing counts the writes in flight of each key (Writing to Wrote),
	// writingAll those of every key (WritingAll to WroteAll).
	writing    map[K]int
	writingAll int
}

type entry[V any] struct {
	v    V
	read time.Duration // since base, when the read that returned v began
}

// Read is a read of the database in flight, from Begin to End.
type Read[K comparable] struct {
	keys  []K
	seq   uint64
	began time.Duration // since base
}

// New returns an empty Memory.
func New[K comparable, V any](c Config) *Memory[K, V] {
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Memory[K, V]{c: c, base: c.Now(), m: map[K]entry[V]{}, reading: map[K]int{}, written: map[K]uint64{}, writing: map[K]int{}}
}

// Trusted reports whether every write is heard of (Config.Trusted).
func (m *Memory[K, V]) Trusted() bool { return m.c.Trusted() }

// Lookup returns the value remembered of key k; ok is false if there is
// none, it is MaxAge old or older, a write of k is in flight, or the
// memory is not trusted.
func (m *Memory[K, V]) Lookup(k K) (v V, ok bool) {
	if !m.c.Trusted() {
		return v, false
	}
	now := m.since()
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.answer(k, now)
	return e.v, ok
}

// answer returns key k's entry if it may be answered at time now; m.mu is
// held.
func (m *Memory[K, V]) answer(k K, now time.Duration) (entry[V], bool) {
	e, ok := m.m[k]
	if !ok || now-e.read >= m.c.MaxAge || m.writingAll > 0 || m.writing[k] > 0 {
		return entry[V]{}, false
	}
	return e, true
}

// LookupAll sets into[i] to the value remembered of keys[i] (into is as
// long as keys) and reports true if every key has one Lookup would
// answer; false otherwise (into is then partly set).
func (m *Memory[K, V]) LookupAll(keys []K, into []V) bool {
	if !m.c.Trusted() {
		return false
	}
	now := m.since()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, k := range keys {
		e, ok := m.answer(k, now)
		if !ok {
			return false
		}
		into[i] = e.v
	}
	return true
}

// Begin notes that a read of keys from the database is about to start;
// end it with End (or EndOne), whatever the read's outcome. keys must not
// change until then.
//
// A Read holds no pointer but keys (its time is a duration since base), so
// that the slice of a variadic call stays on the caller's stack.
func (m *Memory[K, V]) Begin(keys ...K) Read[K] {
	now := m.since()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		m.reading[k]++
	}
	return Read[K]{keys: keys, seq: m.seq, began: now}
}

// End ends read r, remembering vals[i] as the value of keys[i] (keys among
// r's; nil, nil when the read failed) — unless a write of one of r's keys
// or a Reset was heard of since r began, a write of one of them is in
// flight, or the memory is not trusted. A value's age counts from r's
// Begin: it is what the database held then at the latest.
func (m *Memory[K, V]) End(r Read[K], keys []K, vals []V) {
	m.mu.Lock()
	defer m.mu.Unlock()
	clean := r.seq >= m.resetAt && m.writingAll == 0
	for _, k := range r.keys {
		if m.written[k] > r.seq || m.writing[k] > 0 {
			clean = false
		}
		if n := m.reading[k] - 1; n > 0 {
			m.reading[k] = n
		} else {
			delete(m.reading, k)
			delete(m.written, k)
		}
	}
	if !clean || !m.c.Trusted() {
		return
	}
	for i, k := range keys {
		m.put(k, entry[V]{vals[i], r.began})
	}
}

// EndOne is End for a read of one key: it returned v if ok, else it
// failed.
func (m *Memory[K, V]) EndOne(r Read[K], v V, ok bool) {
	if !ok {
		m.End(r, nil, nil)
		return
	}
	m.End(r, r.keys[:1], []V{v})
}

// since is the time now, as a duration since base (monotonic when the
// clock is time.Now).
func (m *Memory[K, V]) since() time.Duration { return m.c.Now().Sub(m.base) }

// put remembers e as key k's entry, making room if needed; m.mu is held.
func (m *Memory[K, V]) put(k K, e entry[V]) {
	if _, ok := m.m[k]; !ok && len(m.m) >= m.c.MaxEntries {
		for old := range m.m {
			delete(m.m, old)
			break
		}
	}
	m.m[k] = e
}

// Forget forgets key k's value: a write of it committed. Reads of k in
// flight are not remembered.
func (m *Memory[K, V]) Forget(k K) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, k)
	m.heard(k)
}

// Change replaces key k's value, if one is remembered, by change(value),
// keeping its age: a write of k committed whose effect on the value the
// caller knows. Reads of k in flight are not remembered. change must not
// call m.
func (m *Memory[K, V]) Change(k K, change func(V) V) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.m[k]; ok {
		e.v = change(e.v)
		m.m[k] = e
	}
	m.heard(k)
}

// heard marks the reads of k in flight as overtaken; m.mu is held.
func (m *Memory[K, V]) heard(k K) {
	if m.reading[k] > 0 {
		m.seq++
		m.written[k] = m.seq
	}
}

// Writing notes that a write of key k is about to run in a transaction:
// until Wrote(k), no value of k is answered or remembered, and the reads
// of k in flight are not remembered. Calls nest: k is written until as
// many Wrote calls have followed.
func (m *Memory[K, V]) Writing(k K) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writing[k]++
	m.heard(k)
}

// Wrote ends a Writing(k): its transaction ended. A write that committed
// must have been heard of (Forget or Change) first; one rolled back
// changed nothing, and what is remembered of k is answered again.
func (m *Memory[K, V]) Wrote(k K) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := m.writing[k] - 1; n > 0 {
		m.writing[k] = n
	} else {
		delete(m.writing, k)
	}
}

// Tx is a write transaction that tells of its end, as sqldb.Tx does.
type Tx interface {
	OnCommit(fn func()) // fn runs after it commits
	OnEnd(fn func())    // fn runs once it has ended, committed or not
}

// Write is what a write of key k in tx owes m, called before the write's
// statement runs: Writing(k) now, Forget(k) once tx commits, Wrote(k) once
// it has ended.
func (m *Memory[K, V]) Write(tx Tx, k K) {
	m.Writing(k)
	tx.OnCommit(func() { m.Forget(k) })
	tx.OnEnd(func() { m.Wrote(k) })
}

// WriteAll is Write for a write of tx that may change any value:
// WritingAll now, Reset once tx commits, WroteAll once it has ended.
func (m *Memory[K, V]) WriteAll(tx Tx) {
	m.WritingAll()
	tx.OnCommit(m.Reset)
	tx.OnEnd(m.WroteAll)
}

// WritingAll is Writing for a write that may change any value (one whose
// commit calls Reset); WroteAll ends it.
func (m *Memory[K, V]) WritingAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writingAll++
	m.seq++
	m.resetAt = m.seq // the reads in flight are not remembered
}

// WroteAll ends a WritingAll.
func (m *Memory[K, V]) WroteAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.writingAll > 0 {
		m.writingAll--
	}
}

// Reset forgets every value, and the reads in flight are not remembered:
// writes may have been missed, or many values changed at once.
func (m *Memory[K, V]) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.m)
	m.seq++
	m.resetAt = m.seq
}

// Len is how many values are remembered (of any age).
func (m *Memory[K, V]) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.m)
}
