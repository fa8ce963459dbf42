package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Errors returned by the engine.
var (
	ErrUnknownPartition = errors.New("record from a partition the engine was not given")
	ErrUnknownOperator  = errors.New("state entry of an unknown operator")
	ErrBadState         = errors.New("malformed state entry")
	ErrConfig           = errors.New("invalid engine configuration")
	ErrNoEventTime      = errors.New("record without an event time")
)

// Engine runs operators over records from a fixed set of partitions.
// It is not safe for concurrent use; run one engine per consumer.
type Engine struct {
	ops       []Operator
	byName    map[string]Operator
	parts     map[Partition]*partState
	partList  []*partState
	watermark int64
	dirty     []*partState
	emitted   []Result
}

type partState struct {
	p          Partition
	id         string // p.String(), the state entry key
	streamTime int64  // max event time seen (NoTime before any)
	offset     int64  // last offset processed (-1 before any)
	dirty      bool
}

// New returns an engine over the given partitions (every source partition
// it will read; an unread partition holds the watermark back) and operators.
func New(partitions []Partition, ops ...Operator) (*Engine, error) {
	if len(partitions) == 0 {
		return nil, fmt.Errorf("%w: no partitions", ErrConfig)
	}
	e := &Engine{byName: make(map[string]Operator), parts: make(map[Partition]*partState), watermark: NoTime}
	for _, op := range ops {
		if op.Name() == "" {
			return nil, fmt.Errorf("%w: operator without a name", ErrConfig)
		}
		if _, dup := e.byName[op.Name()]; dup {
			return nil, fmt.Errorf("%w: two operators named %q", ErrConfig, op.Name())
		}
		e.byName[op.Name()] = op
		e.ops = append(e.ops, op)
	}
	for _, p := range partitions {
		if _, dup := e.parts[p]; dup {
			return nil, fmt.Errorf("%w: partition %s given twice", ErrConfig, p)
		}
		ps := &partState{p: p, id: p.String(), streamTime: NoTime, offset: -1}
		e.parts[p] = ps
		e.partList = append(e.partList, ps)
	}
	return e, nil
}

// Output is what one Process call produced.
type Output struct {
	// Results are the results that became final, ordered by (At, Operator)
	// and then in each operator's order. Concatenated over calls, they are
	// the same whatever the batching and partition interleaving.
	Results []Result
	// Changes are the state entries this call changed (nil Value: deleted).
	Changes []StateEntry
	// Late counts, per operator, the records dropped for arriving after
	// their window's grace period (or the pattern grace).
	Late map[string]int
	// Replayed counts records skipped because their offset was already processed.
	Replayed int
	// Watermark is the engine's watermark after the call (NoTime: none yet).
	Watermark int64
}

// Process applies a batch. Records of one partition must come in offset
// order; partitions may interleave in any way. A batch with a record of an
// unknown partition or without an event time is rejected whole, before any
// state changes.
func (e *Engine) Process(batch []Record) (Output, error) {
	for i := range batch {
		if _, ok := e.parts[batch[i].Partition]; !ok {
			return Output{}, fmt.Errorf("record %d (%s@%d): %w", i, batch[i].Partition, batch[i].Offset, ErrUnknownPartition)
		}
		if batch[i].Time.IsZero() {
			return Output{}, fmt.Errorf("record %d (%s@%d): %w", i, batch[i].Partition, batch[i].Offset, ErrNoEventTime)
		}
	}
	var out Output
	for i := range batch {
		r := &batch[i]
		ps := e.parts[r.Partition]
		if r.Offset <= ps.offset {
			out.Replayed++
			continue
		}
		t := r.Time.UnixNano()
		for _, op := range e.ops {
			if op.Offer(r, t, ps.streamTime) {
				if out.Late == nil {
					out.Late = make(map[string]int)
				}
				out.Late[op.Name()]++
			}
		}
		ps.offset = r.Offset
		if t > ps.streamTime {
			ps.streamTime = t
		}
		e.markDirty(ps)
	}
	e.advance(&out)
	return out, nil
}

// Idle raises an idle partition's stream time to t (never lowers it), so
// the watermark can move while the partition has no records; for example
// at the end of a backtest, or from a clock when a partition is quiet.
// Unlike records, such calls are not in the log: a rebuild by replay
// reproduces them only if the caller repeats them.
func (e *Engine) Idle(p Partition, t time.Time) (Output, error) {
	return e.IdleAll([]Partition{p}, t)
}

// IdleAll is Idle of each of ps to the same t, with one advance of the
// watermark instead of one per partition: the state it leaves and the
// changes it returns are those of the Idle calls in a row, and so are each
// operator's results, in its order (the order between operators' results
// may differ, as for other batchings). A pass over many partitions costs
// about one Idle; one that raises no stream time moves nothing. An unknown
// partition rejects the call whole, before any state changes.
func (e *Engine) IdleAll(ps []Partition, t time.Time) (Output, error) {
	for _, p := range ps {
		if _, ok := e.parts[p]; !ok {
			return Output{}, fmt.Errorf("idle %s: %w", p, ErrUnknownPartition)
		}
	}
	var out Output
	n := t.UnixNano()
	for _, p := range ps {
		if st := e.parts[p]; n > st.streamTime {
			st.streamTime = n
			e.markDirty(st)
		}
	}
	e.advance(&out)
	return out, nil
}

// Watermark is the minimum of the partitions' stream times (NoTime until
// every partition has a stream time).
func (e *Engine) Watermark() int64 { return e.watermark }

func (e *Engine) markDirty(ps *partState) {
	if !ps.dirty {
		ps.dirty = true
		e.dirty = append(e.dirty, ps)
	}
}

func (e *Engine) advance(out *Output) {
	w := e.partList[0].streamTime
	for _, ps := range e.partList[1:] {
		if ps.streamTime < w {
			w = ps.streamTime
		}
	}
	if w > e.watermark {
		e.watermark = w
		e.emitted = e.emitted[:0]
		emit := func(r Result) { e.emitted = append(e.emitted, r) }
		for _, op := range e.ops {
			op.Advance(w, emit)
		}
		if len(e.emitted) > 0 {
			rs := append([]Result(nil), e.emitted...)
			sort.SliceStable(rs, func(i, j int) bool {
				if !rs[i].At.Equal(rs[j].At) {
					return rs[i].At.Before(rs[j].At)
				}
				return rs[i].Operator < rs[j].Operator
			})
			out.Results = rs
		}
	}
	out.Watermark = e.watermark
	for _, ps := range e.dirty {
		ps.dirty = false
		out.Changes = append(out.Changes, StateEntry{Key: ps.id, Value: encodePartition(ps)})
	}
	e.dirty = e.dirty[:0]
	for _, op := range e.ops {
		out.Changes = op.Changes(out.Changes)
	}
}

func encodePartition(ps *partState) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(ps.streamTime))
	binary.BigEndian.PutUint64(b[8:], uint64(ps.offset))
	return b
}

// Snapshot returns all state: what a store holding every change returned
// so far would hold.
func (e *Engine) Snapshot() []StateEntry {
	var es []StateEntry
	for _, ps := range e.partList {
		if ps.offset >= 0 || ps.streamTime != NoTime {
			es = append(es, StateEntry{Key: ps.id, Value: encodePartition(ps)})
		}
	}
	for _, op := range e.ops {
		es = op.Snapshot(es)
	}
	SortEntries(es)
	return es
}

// Restore loads stored entries into a new engine built with the same
// partitions and operators, before its first Process. Entries of
// partitions no longer read are ignored (their stream time no longer
// counts); entries of unknown operators are an error.
func (e *Engine) Restore(entries []StateEntry) error {
	for _, en := range entries {
		if en.Operator == "" {
			if len(en.Value) != 16 {
				return fmt.Errorf("partition %q: %w: %d bytes", en.Key, ErrBadState, len(en.Value))
			}
			for _, ps := range e.partList {
				if ps.id == en.Key {
					ps.streamTime = int64(binary.BigEndian.Uint64(en.Value))
					ps.offset = int64(binary.BigEndian.Uint64(en.Value[8:]))
				}
			}
			continue
		}
		op, ok := e.byName[en.Operator]
		if !ok {
			return fmt.Errorf("%q: %w", en.Operator, ErrUnknownOperator)
		}
		if err := op.Restore(en); err != nil {
			return fmt.Errorf("restore %s %q %q: %w", en.Operator, en.Key, en.Window, err)
		}
	}
	// The operators already advanced to the stored watermark before the
	// snapshot; recompute it without emitting again.
	w := e.partList[0].streamTime
	for _, ps := range e.partList[1:] {
		w = min(w, ps.streamTime)
	}
	e.watermark = w
	return nil
}
