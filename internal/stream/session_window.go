package stream

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// sessionAgg aggregates session windows.
//
// Lateness: a record is late when its partition's stream time is more than
// grace past the record's own time. That is stricter than Kafka Streams
// (which measures from the merged session's end plus the gap) and is what
// makes a session's content independent of partition interleaving: a
// session closes when the watermark passes end+gap+grace, after which no
// accepted record can come within gap of it.
//
// Memory: one session (two times, V, about 64 bytes plus V) per open
// session, plus the key once per key; closed sessions are removed.
type sessionAgg[V any] struct {
	name       string
	gap, grace int64
	agg        Aggregator[V]
	key        func(*Record) (string, bool)
	keys       map[string]*sessionKey[V]
	minClose   int64 // no session closes before this watermark (NoTime: unknown)
	changed    map[entryID]bool
	changes    []StateEntry
}

type sessionKey[V any] struct {
	sessions []*session[V] // disjoint, by start
}

type session[V any] struct {
	start, end int64
	v          V
}

func (s *sessionAgg[V]) Name() string { return s.name }

func (s *sessionAgg[V]) Offer(r *Record, t, streamTime int64) bool {
	k, ok := s.key(r)
	if !ok {
		return false
	}
	if streamTime != NoTime && streamTime > t+s.grace {
		return true
	}
	sk := s.keys[k]
	if sk == nil {
		sk = &sessionKey[V]{}
		s.keys[k] = sk
	}
	// Sessions within gap of t merge with it (and with each other).
	merged := &session[V]{start: t, end: t, v: s.agg.Add(s.agg.Init(), r)}
	kept := sk.sessions[:0:0]
	for _, ss := range sk.sessions {
		if ss.end+s.gap < t || ss.start-s.gap > t {
			kept = append(kept, ss)
			continue
		}
		merged.start, merged.end = min(merged.start, ss.start), max(merged.end, ss.end)
		merged.v = s.agg.Merge(ss.v, merged.v)
		s.mark(k, ss.start, false)
	}
	i := sort.Search(len(kept), func(i int) bool { return kept[i].start > merged.start })
	kept = append(kept, nil)
	copy(kept[i+1:], kept[i:])
	kept[i] = merged
	sk.sessions = kept
	s.mark(k, merged.start, true)
	if c := merged.end + s.gap + s.grace; s.minClose == NoTime || c < s.minClose {
		s.minClose = c
	}
	return false
}

// mark records that the entry (k, start) changed: live or deleted.
func (s *sessionAgg[V]) mark(k string, start int64, live bool) {
	if s.changed == nil {
		s.changed = make(map[entryID]bool)
	}
	s.changed[entryID{s.name, k, strconv.FormatInt(start, 10)}] = live
}

func (s *sessionAgg[V]) Advance(wm int64, emit func(Result)) {
	if s.minClose == NoTime || wm <= s.minClose {
		return
	}
	var closed []Result
	next := NoTime
	for k, sk := range s.keys {
		kept := sk.sessions[:0]
		for _, ss := range sk.sessions {
			c := ss.end + s.gap + s.grace
			if wm > c {
				closed = append(closed, Result{Operator: s.name, Key: k, Start: time.Unix(0, ss.start).UTC(),
					End: time.Unix(0, ss.end).UTC(), At: time.Unix(0, c).UTC(), Value: ss.v})
				s.mark(k, ss.start, false)
				continue
			}
			if next == NoTime || c < next {
				next = c
			}
			kept = append(kept, ss)
		}
		sk.sessions = kept
		if len(kept) == 0 {
			delete(s.keys, k)
		}
	}
	s.minClose = next
	sort.Slice(closed, func(i, j int) bool {
		a, b := closed[i], closed[j]
		if !a.At.Equal(b.At) {
			return a.At.Before(b.At)
		}
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		return a.Start.Before(b.Start)
	})
	for _, r := range closed {
		emit(r)
	}
}

func (s *sessionAgg[V]) Changes(dst []StateEntry) []StateEntry {
	if len(s.changed) == 0 {
		return dst
	}
	ids := make([]entryID, 0, len(s.changed))
	for id := range s.changed {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		if ids[i].Key != ids[j].Key {
			return ids[i].Key < ids[j].Key
		}
		return ids[i].Window < ids[j].Window
	})
	for _, id := range ids {
		e := StateEntry{Operator: s.name, Key: id.Key, Window: id.Window}
		if s.changed[id] {
			if ss := s.find(id.Key, id.Window); ss != nil {
				e = s.entry(id.Key, ss)
			}
		}
		dst = append(dst, e)
	}
	clear(s.changed)
	return dst
}

func (s *sessionAgg[V]) find(k, window string) *session[V] {
	start, err := strconv.ParseInt(window, 10, 64)
	if err != nil || s.keys[k] == nil {
		return nil
	}
	for _, ss := range s.keys[k].sessions {
		if ss.start == start {
			return ss
		}
	}
	return nil
}

// entry encodes a session as its end (8 bytes, big-endian) then the aggregate.
func (s *sessionAgg[V]) entry(k string, ss *session[V]) StateEntry {
	b, err := s.agg.Encode(ss.v)
	if err != nil {
		b = nil // see fixedAgg.entry
	}
	v := make([]byte, 8, 8+len(b))
	binary.BigEndian.PutUint64(v, uint64(ss.end))
	return StateEntry{Operator: s.name, Key: k, Window: strconv.FormatInt(ss.start, 10), Value: append(v, b...)}
}

func (s *sessionAgg[V]) Snapshot(dst []StateEntry) []StateEntry {
	for k, sk := range s.keys {
		for _, ss := range sk.sessions {
			dst = append(dst, s.entry(k, ss))
		}
	}
	return dst
}

func (s *sessionAgg[V]) Restore(e StateEntry) error {
	start, err := strconv.ParseInt(e.Window, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: window %q: %w", ErrBadState, e.Window, err)
	}
	if len(e.Value) < 8 {
		return fmt.Errorf("%w: session of %d bytes", ErrBadState, len(e.Value))
	}
	v, err := s.agg.Decode(e.Value[8:])
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadState, err)
	}
	ss := &session[V]{start: start, end: int64(binary.BigEndian.Uint64(e.Value)), v: v}
	sk := s.keys[e.Key]
	if sk == nil {
		sk = &sessionKey[V]{}
		s.keys[e.Key] = sk
	}
	i := sort.Search(len(sk.sessions), func(i int) bool { return sk.sessions[i].start > start })
	sk.sessions = append(sk.sessions, nil)
	copy(sk.sessions[i+1:], sk.sessions[i:])
	sk.sessions[i] = ss
	if c := ss.end + s.gap + s.grace; s.minClose == NoTime || c < s.minClose {
		s.minClose = c
	}
	return nil
}
