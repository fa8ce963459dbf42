package eventstore

import (
	"container/list"
	"context"
	"sync"

	"github.com/eventmart/eventmart/internal/sqldb"
)

// DefaultMemoryStreams is how many streams a Memory made with a size of 0
// or less remembers.
const DefaultMemoryStreams = 4096

// Memory keeps the states of an aggregate's streams across transactions,
// so that a load of a stream the process loaded or saved a moment ago
// reads only the events appended after it (one indexed query, usually
// returning no row) instead of the snapshot and every event since, all
// decoded again. An Aggregate uses one when its Memory field is set.
//
// Contracts:
//   - It remembers a stream's state and version only once the transaction
//     that loaded or saved it (a *sqldb.Tx given to Load, LoadMany or Save)
//     commits. A rollback remembers nothing; so does a rollback to a
//     savepoint (a failed inbox record, a RetryInTx try) of whatever the
//     transaction loaded and saved before it, as it empties sqldb.Cache:
//     the work undone may have changed those states in place.
//   - What it remembers is a pair the store held: the state folded from a
//     stream's events up to a version. Stored events are never rewritten,
//     so the pair stays true; what another transaction or instance
//     appended since is read after it, and a version conflict in Save
//     forgets the stream all the same. Of two pairs of one stream the
//     later version is kept.
//   - The state a load hands out is the caller's: a copy of the
//     remembered one (Aggregate.Clone), which the caller changes only
//     through Save. Once remembered, a state is never modified.
//   - It holds up to its size of streams, forgetting the least recently
//     used first.
//   - It belongs to one database: each service instance makes its own
//     (NewMemory), never one shared by instances of different databases.
//     A rebuild (Rebuild) folds streams itself and writes projections, not
//     streams or snapshots, so it leaves a Memory true; so does a
//     snapshot (SaveSnapshot), which Memory does not read.
type Memory[S any] struct {
	size int
	mu   sync.Mutex
	byID map[string]*list.Element // of *remembered[S]
	lru  list.List                // most recently used first
}

type remembered[S any] struct {
	stream  string
	state   S
	version int64
}

// NewMemory returns a Memory of up to size streams (DefaultMemoryStreams
// when size ≤ 0).
func NewMemory[S any](size int) *Memory[S] {
	if size <= 0 {
		size = DefaultMemoryStreams
	}
	return &Memory[S]{size: size, byID: map[string]*list.Element{}}
}

// Len returns how many streams m remembers.
func (m *Memory[S]) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.byID)
}

// Forget drops what m remembers of stream.
func (m *Memory[S]) Forget(stream string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.byID[stream]; ok {
		m.lru.Remove(el)
		delete(m.byID, stream)
	}
}

// Version returns the version m remembers stream at, and whether it
// remembers it.
func (m *Memory[S]) Version(stream string) (int64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.byID[stream]; ok {
		return el.Value.(*remembered[S]).version, true
	}
	return 0, false
}

// get returns the remembered state of stream (shared: the caller clones
// it) and its version, marking it recently used.
func (m *Memory[S]) get(stream string) (S, int64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.byID[stream]
	if !ok {
		var zero S
		return zero, 0, false
	}
	m.lru.MoveToFront(el)
	r := el.Value.(*remembered[S])
	return r.state, r.version, true
}

// remember keeps s as stream's state at version, unless m remembers a
// later one.
func (m *Memory[S]) remember(stream string, s S, version int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.byID[stream]; ok {
		r := el.Value.(*remembered[S])
		if version > r.version {
			r.state, r.version = s, version
		}
		m.lru.MoveToFront(el)
		return
	}
	m.byID[stream] = m.lru.PushFront(&remembered[S]{stream: stream, state: s, version: version})
	for len(m.byID) > m.size {
		last := m.lru.Back()
		m.lru.Remove(last)
		delete(m.byID, last.Value.(*remembered[S]).stream)
	}
}

// note records that tx holds stream at (s, version), for m to remember
// once tx commits. q is what the load read through: only a transaction's
// loads are noted.
func (m *Memory[S]) note(q Querier, stream string, s S, version int64) {
	tx, ok := q.(*sqldb.Tx)
	if !ok || version == 0 {
		return
	}
	m.pending(tx).note(tx, stream, s, version)
}

// forget drops stream from m and from what tx would have m remember.
func (m *Memory[S]) forget(tx *sqldb.Tx, stream string) {
	m.Forget(stream)
	delete(m.pending(tx).seen, stream)
}

func (m *Memory[S]) pending(tx *sqldb.Tx) *txMemory[S] {
	return tx.Pending(m, func() sqldb.Pending { return &txMemory[S]{m: m, seen: map[string]Loaded[S]{}} }).(*txMemory[S])
}

// txMemory is what one transaction loaded and saved of m's streams, the
// latest pair of each, for m to remember when the transaction commits. It
// is a pending write that writes nothing (sqldb.Tx.Pending), so a
// rollback to a savepoint empties it, as it does sqldb.Cache: the states
// it held may include what was undone.
type txMemory[S any] struct {
	m      *Memory[S]
	seen   map[string]Loaded[S]
	hooked bool // its commit is among the transaction's OnCommit hooks
}

func (p *txMemory[S]) note(tx *sqldb.Tx, stream string, s S, version int64) {
	p.seen[stream] = Loaded[S]{s, version}
	if !p.hooked {
		// Registered again after a rollback to a savepoint, which may
		// have dropped the hook with the work after it.
		p.hooked = true
		tx.OnCommit(p.commit)
	}
}

func (p *txMemory[S]) commit() {
	for stream, l := range p.seen {
		p.m.remember(stream, l.State, l.Version)
	}
	clear(p.seen)
}

func (p *txMemory[S]) Flush(context.Context, *sqldb.Tx) error { return nil }

func (p *txMemory[S]) Discard() {
	clear(p.seen)
	p.hooked = false
}
