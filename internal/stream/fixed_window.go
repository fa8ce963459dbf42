package stream

import (
	"fmt"
	"sort"
	"strconv"
	"time"
)

// Aggregation describes a windowed aggregation operator.
type Aggregation[V any] struct {
	Name       string
	Windows    Windows
	Aggregator Aggregator[V]
	// Key returns the grouping key of a record and whether the record takes
	// part at all; nil groups by Record.Key and takes every record.
	Key func(*Record) (string, bool)
}

// NewAggregate returns the operator for a: fixed windows (tumbling,
// hopping) or sessions. Results carry a V as Value.
func NewAggregate[V any](a Aggregation[V]) (Operator, error) {
	if a.Name == "" {
		return nil, fmt.Errorf("%w: aggregation without a name", ErrConfig)
	}
	if a.Aggregator == nil {
		return nil, fmt.Errorf("%w: aggregation %q without an aggregator", ErrConfig, a.Name)
	}
	if err := a.Windows.Validate(); err != nil {
		return nil, fmt.Errorf("aggregation %q: %w", a.Name, err)
	}
	key := a.Key
	if key == nil {
		key = func(r *Record) (string, bool) { return r.Key, true }
	}
	if a.Windows.Kind == Session {
		return &sessionAgg[V]{name: a.Name, gap: int64(a.Windows.Gap), grace: int64(a.Windows.Grace),
			agg: a.Aggregator, key: key, keys: make(map[string]*sessionKey[V]), minClose: NoTime}, nil
	}
	return &fixedAgg[V]{name: a.Name, size: int64(a.Windows.Size), advance: int64(a.Windows.Advance),
		grace: int64(a.Windows.Grace), agg: a.Aggregator, key: key, open: make(map[int64]map[string]*fixedWin[V])}, nil
}

// fixedAgg aggregates tumbling or hopping windows.
//
// Memory: one fixedWin (key string, V, a few words: about 80 bytes plus the
// key and V) per open (key, window); windows are removed when they close.
type fixedAgg[V any] struct {
	name                 string
	size, advance, grace int64
	agg                  Aggregator[V]
	key                  func(*Record) (string, bool)
	open                 map[int64]map[string]*fixedWin[V] // by window start
	starts               []int64                           // open starts, ascending
	dirty                []*fixedWin[V]
	deleted              []StateEntry
}

type fixedWin[V any] struct {
	key    string
	start  int64
	v      V
	dirty  bool // in the dirty list
	stored bool // a change with this entry was handed out
	closed bool
}

func (f *fixedAgg[V]) Name() string { return f.name }

func (f *fixedAgg[V]) Offer(r *Record, t, streamTime int64) bool {
	k, ok := f.key(r)
	if !ok {
		return false
	}
	late := false
	// Windows [s, s+size) containing t, s a multiple of advance.
	for s := floorDiv(t, f.advance) * f.advance; s > t-f.size; s -= f.advance {
		if streamTime != NoTime && streamTime >= s+f.size+f.grace {
			late = true
			continue
		}
		f.window(s, k).add(f, r)
	}
	return late
}

func (w *fixedWin[V]) add(f *fixedAgg[V], r *Record) {
	w.v = f.agg.Add(w.v, r)
	if !w.dirty {
		w.dirty = true
		f.dirty = append(f.dirty, w)
	}
}

func (f *fixedAgg[V]) window(s int64, k string) *fixedWin[V] {
	byKey, ok := f.open[s]
	if !ok {
		byKey = make(map[string]*fixedWin[V])
		f.open[s] = byKey
		i := sort.Search(len(f.starts), func(i int) bool { return f.starts[i] >= s })
		f.starts = append(f.starts, 0)
		copy(f.starts[i+1:], f.starts[i:])
		f.starts[i] = s
	}
	w, ok := byKey[k]
	if !ok {
		w = &fixedWin[V]{key: k, start: s, v: f.agg.Init()}
		byKey[k] = w
	}
	return w
}

func (f *fixedAgg[V]) Advance(wm int64, emit func(Result)) {
	for len(f.starts) > 0 && f.starts[0]+f.size+f.grace <= wm {
		s := f.starts[0]
		f.starts = f.starts[1:]
		byKey := f.open[s]
		delete(f.open, s)
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		start, end := time.Unix(0, s).UTC(), time.Unix(0, s+f.size).UTC()
		at := time.Unix(0, s+f.size+f.grace).UTC()
		for _, k := range keys {
			w := byKey[k]
			w.closed = true
			if w.stored {
				f.deleted = append(f.deleted, StateEntry{Operator: f.name, Key: k, Window: strconv.FormatInt(s, 10)})
			}
			emit(Result{Operator: f.name, Key: k, Start: start, End: end, At: at, Value: w.v})
		}
	}
}

func (f *fixedAgg[V]) Changes(dst []StateEntry) []StateEntry {
	for _, w := range f.dirty {
		w.dirty = false
		if w.closed {
			continue
		}
		dst = append(dst, f.entry(w))
		w.stored = true
	}
	f.dirty = f.dirty[:0]
	dst = append(dst, f.deleted...)
	f.deleted = f.deleted[:0]
	return dst
}

func (f *fixedAgg[V]) entry(w *fixedWin[V]) StateEntry {
	b, err := f.agg.Encode(w.v)
	if err != nil {
		// An aggregator that cannot encode its own value is a programming
		// error; keep the entry (empty) so Restore reports it.
		b = []byte{}
	}
	return StateEntry{Operator: f.name, Key: w.key, Window: strconv.FormatInt(w.start, 10), Value: b}
}

func (f *fixedAgg[V]) Snapshot(dst []StateEntry) []StateEntry {
	for _, s := range f.starts {
		for _, w := range f.open[s] {
			dst = append(dst, f.entry(w))
		}
	}
	return dst
}

func (f *fixedAgg[V]) Restore(e StateEntry) error {
	s, err := strconv.ParseInt(e.Window, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: window %q: %w", ErrBadState, e.Window, err)
	}
	v, err := f.agg.Decode(e.Value)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadState, err)
	}
	w := f.window(s, e.Key)
	w.v, w.stored = v, true
	return nil
}
