package stream

import "sort"

// StateEntry is one unit of engine state, identified by (Operator, Key,
// Window). A nil Value in a change means "delete this entry".
//
// Process returns the entries a batch changed; a caller that writes them
// (upsert, or delete on nil Value) in the same database transaction as the
// batch's consumed offsets gets exactly-once results: after a crash,
// Restore from the stored entries and resume from the stored offsets.
type StateEntry struct {
	Operator string // "" for the engine's own entries (partition stream times)
	Key      string
	Window   string
	Value    []byte
}

// entryID is the identity of a StateEntry.
type entryID struct{ Operator, Key, Window string }

// MemoryStore applies changes the way a database table keyed by (operator,
// key, window) would. Tests and backtests use it; a service stores entries
// in its own database instead.
type MemoryStore struct {
	m map[entryID][]byte
}

// Apply upserts or deletes each change.
func (s *MemoryStore) Apply(changes []StateEntry) {
	if s.m == nil {
		s.m = make(map[entryID][]byte)
	}
	for _, c := range changes {
		id := entryID{c.Operator, c.Key, c.Window}
		if c.Value == nil {
			delete(s.m, id)
			continue
		}
		s.m[id] = append([]byte(nil), c.Value...)
	}
}

// Entries returns every stored entry, sorted by (operator, key, window).
func (s *MemoryStore) Entries() []StateEntry {
	out := make([]StateEntry, 0, len(s.m))
	for id, v := range s.m {
		out = append(out, StateEntry{Operator: id.Operator, Key: id.Key, Window: id.Window, Value: v})
	}
	SortEntries(out)
	return out
}

// Len is the number of stored entries.
func (s *MemoryStore) Len() int { return len(s.m) }

// SortEntries sorts entries by (operator, key, window).
func SortEntries(es []StateEntry) {
	sort.Slice(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.Operator != b.Operator {
			return a.Operator < b.Operator
		}
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		return a.Window < b.Window
	})
}
