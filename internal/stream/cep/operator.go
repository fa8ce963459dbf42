package cep

import (
	"bytes"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/eventmart/eventmart/internal/stream"
)

// ErrBadState is wrapped when a stored entry cannot be restored.
var ErrBadState = errors.New("malformed pattern state")

// Operator runs a rule set as one stream.Operator.
//
// Events whose type some rule uses are buffered until the watermark minus
// the grace passes their time, then matched in event-time order (ties by
// topic, partition, offset). An event is late, and dropped, when its
// partition's stream time is more than grace past its time. So every
// accepted event is matched in the same order whatever the batching and
// the partition interleaving, and a timeout fires only when no accepted
// event can still come before it: detections are the same on every run.
//
// Memory: the buffer holds the relevant events of the last grace (plus
// the partitions' skew), each with its payload. Per rule and key: the
// pending First events younger than Within (a Count rule: fewer than
// Count), or a WhileHeld rule's holders younger than Within; each about
// 100 bytes plus its ids; a key's state goes when it is empty.
type Operator struct {
	name    string
	grace   int64
	rules   []*compiledRule
	byType  map[string][]ruleSteps
	buffer  []*buffered
	added   []*buffered
	removed []stream.StateEntry
	states  map[stateID]*keyState
	changed map[stateID]struct{}
	stale   []stream.StateEntry
	timers  timerHeap
	held    map[holderID][]string // a WhileHeld rule's holder → keys it holds
	// Undecodable counts buffered events whose payload was not JSON (skipped).
	undecodable int
}

type compiledRule struct {
	Rule
	idx    int
	within int64
	first  compiledStep
	then   []compiledStep
	window string
}

type compiledStep struct {
	Step
	each, key, holder path
	where             []condition
}

// ruleSteps says which steps of one rule an event type feeds.
type ruleSteps struct {
	rule  int
	first bool
	then  []int
}

type buffered struct {
	T         int64           `json:"t"`
	Topic     string          `json:"topic"`
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Payload   json.RawMessage `json:"payload"`
	stored    bool
	released  bool
}

type stateID struct {
	rule int
	key  string
}

type holderID struct {
	rule   int
	holder string
}

// keyState is a rule's state for one key, stored as JSON.
type keyState struct {
	Pending []evRef          `json:"pending,omitempty"`
	Holders map[string]evRef `json:"holders,omitempty"`
}

type evRef struct {
	T  int64  `json:"t"`
	ID string `json:"id"`
}

// New returns an operator running rules (validated first). grace is how
// far behind its partition's stream time an event may be and still count.
func New(name string, rules []Rule, grace time.Duration) (*Operator, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: operator without a name", stream.ErrConfig)
	}
	if grace < 0 {
		return nil, fmt.Errorf("%w: negative grace %v", stream.ErrConfig, grace)
	}
	if err := Validate(rules); err != nil {
		return nil, err
	}
	o := &Operator{name: name, grace: int64(grace), byType: make(map[string][]ruleSteps),
		states: make(map[stateID]*keyState), changed: make(map[stateID]struct{}), held: make(map[holderID][]string)}
	for i, r := range rules {
		cr := &compiledRule{Rule: r, idx: i, within: int64(r.Within), first: compileStep(r.First), window: "rule:" + r.Name}
		if cr.Detection == "" {
			cr.Detection = r.Name
		}
		steps := map[string]*ruleSteps{}
		get := func(typ string) *ruleSteps {
			if steps[typ] == nil {
				steps[typ] = &ruleSteps{rule: i}
			}
			return steps[typ]
		}
		get(r.First.EventType).first = true
		for j, s := range r.Then {
			cr.then = append(cr.then, compileStep(s))
			rs := get(s.EventType)
			rs.then = append(rs.then, j)
		}
		for typ, rs := range steps {
			o.byType[typ] = append(o.byType[typ], *rs)
		}
		o.rules = append(o.rules, cr)
	}
	return o, nil
}

func compileStep(s Step) compiledStep {
	cs := compiledStep{Step: s}
	cs.key, _ = parsePath(s.Key)
	cs.each, _ = parsePath(s.Each)
	cs.holder, _ = parsePath(s.Holder)
	for _, c := range s.Where {
		cc, _ := compileCondition(c) // validated
		cs.where = append(cs.where, cc)
	}
	return cs
}

// keys returns the step's keys in doc, in order, without repeats.
func (s *compiledStep) keys(doc any, into []string) []string {
	one := func(d any) {
		for _, c := range s.where {
			if !c.holds(d) {
				return
			}
		}
		v, ok := s.key.get(d)
		if !ok {
			return
		}
		k, ok := keyString(v)
		if !ok {
			return
		}
		for _, have := range into {
			if have == k {
				return
			}
		}
		into = append(into, k)
	}
	if s.each == nil {
		one(doc)
		return into
	}
	arr, _ := s.each.get(doc)
	elems, _ := arr.([]any)
	for _, e := range elems {
		one(e)
	}
	return into
}

// Name is the operator's name.
func (o *Operator) Name() string { return o.name }

// Undecodable is how many matched events had a payload that is not JSON.
func (o *Operator) Undecodable() int { return o.undecodable }

// Offer buffers r if some rule uses its type and it is not late.
func (o *Operator) Offer(r *stream.Record, t, streamTime int64) bool {
	if _, used := o.byType[r.EventType]; !used {
		return false
	}
	if streamTime != stream.NoTime && streamTime > t+o.grace {
		return true
	}
	b := &buffered{T: t, Topic: r.Partition.Topic, Partition: r.Partition.Number, Offset: r.Offset,
		ID: r.EventID, Type: r.EventType, Payload: append(json.RawMessage(nil), r.Payload...)}
	o.buffer = append(o.buffer, b)
	o.added = append(o.added, b)
	return false
}

// Advance matches, in order, the buffered events no accepted event can
// precede any more, and fires the timeouts due before them.
func (o *Operator) Advance(w int64, emit func(stream.Result)) {
	c := w - o.grace
	var ready []*buffered
	kept := o.buffer[:0]
	for _, b := range o.buffer {
		if b.T < c {
			ready = append(ready, b)
		} else {
			kept = append(kept, b)
		}
	}
	clear(o.buffer[len(kept):])
	o.buffer = kept
	sort.Slice(ready, func(i, j int) bool { return ready[i].before(ready[j]) })
	for _, b := range ready {
		o.fireTimers(b.T, emit)
		o.apply(b, emit)
		b.released = true
		if b.stored {
			o.removed = append(o.removed, stream.StateEntry{Operator: o.name, Window: b.window()})
		}
	}
	o.fireTimers(c, emit)
}

func (b *buffered) before(x *buffered) bool {
	if b.T != x.T {
		return b.T < x.T
	}
	if b.Topic != x.Topic {
		return b.Topic < x.Topic
	}
	if b.Partition != x.Partition {
		return b.Partition < x.Partition
	}
	return b.Offset < x.Offset
}

func (b *buffered) window() string {
	w := make([]byte, 0, len(b.Topic)+24)
	w = append(w, b.Topic...)
	w = append(w, '/')
	w = strconv.AppendInt(w, int64(b.Partition), 10)
	w = append(w, '@')
	return string(strconv.AppendInt(w, b.Offset, 10)) // "topic/partition@offset"
}

// fireTimers handles every timer due strictly before x.
func (o *Operator) fireTimers(x int64, emit func(stream.Result)) {
	for len(o.timers) > 0 && o.timers[0].d < x {
		tm := heap.Pop(&o.timers).(timer)
		id := stateID{tm.rule, tm.key}
		st := o.states[id]
		if st == nil {
			continue
		}
		r := o.rules[tm.rule]
		if r.Kind == WhileHeld {
			if h, ok := st.Holders[tm.holder]; ok && h.ID == tm.id {
				delete(st.Holders, tm.holder)
				o.unhold(holderID{tm.rule, tm.holder}, tm.key)
				o.touch(id, st)
			}
			continue
		}
		for i, p := range st.Pending {
			if p.ID != tm.id || p.T+r.within != tm.d {
				continue
			}
			st.Pending = append(st.Pending[:i], st.Pending[i+1:]...)
			o.touch(id, st)
			if r.Kind == NotFollowedBy {
				o.detect(emit, r, tm.key, p.T, tm.d, []string{p.ID}, 0)
			}
			break
		}
	}
}

// apply matches one event against every rule that uses its type.
func (o *Operator) apply(b *buffered, emit func(stream.Result)) {
	dec := json.NewDecoder(bytes.NewReader(b.Payload))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		o.undecodable++
		return
	}
	var keys []string
	for _, rs := range o.byType[b.Type] {
		r := o.rules[rs.rule]
		// Then steps first, so an event never completes its own match.
		keys = keys[:0]
		for _, j := range rs.then {
			keys = r.then[j].keys(doc, keys)
		}
		for _, k := range keys {
			o.onThen(r, k, b, emit)
		}
		if rs.first {
			o.onFirst(r, r.first.keys(doc, keys[:0]), b, doc, emit)
		}
	}
}

func (o *Operator) onThen(r *compiledRule, k string, b *buffered, emit func(stream.Result)) {
	id := stateID{r.idx, k}
	st := o.states[id]
	if st == nil {
		return
	}
	switch r.Kind {
	case FollowedBy:
		for _, p := range st.Pending {
			o.detect(emit, r, k, p.T, b.T, []string{p.ID, b.ID}, 0)
		}
		st.Pending = nil
		o.touch(id, st)
	case NotFollowedBy:
		st.Pending = nil
		o.touch(id, st)
	case WhileHeld:
		if len(st.Holders) == 0 {
			return
		}
		hs := make([]evRef, 0, len(st.Holders))
		for _, h := range st.Holders {
			hs = append(hs, h)
		}
		sort.Slice(hs, func(i, j int) bool {
			if hs[i].T != hs[j].T {
				return hs[i].T < hs[j].T
			}
			return hs[i].ID < hs[j].ID
		})
		ev := make([]string, 0, min(len(hs), MaxHolderEvidence)+1)
		for _, h := range hs[:min(len(hs), MaxHolderEvidence)] {
			ev = append(ev, h.ID)
		}
		o.detect(emit, r, k, hs[0].T, b.T, append(ev, b.ID), len(hs))
	}
}

func (o *Operator) onFirst(r *compiledRule, keys []string, b *buffered, doc any, emit func(stream.Result)) {
	if r.Kind == WhileHeld {
		o.hold(r, keys, b, doc)
		return
	}
	for _, k := range keys {
		id := stateID{r.idx, k}
		st := o.states[id]
		if st == nil {
			st = &keyState{}
			o.states[id] = st
		}
		if st.has(b.ID) {
			continue // the same event again (redelivered under a new offset)
		}
		st.Pending = append(st.Pending, evRef{T: b.T, ID: b.ID})
		heap.Push(&o.timers, timer{d: b.T + r.within, rule: r.idx, key: k, id: b.ID})
		if r.Kind == Count && len(st.Pending) >= r.Count {
			ev := make([]string, len(st.Pending))
			for i, p := range st.Pending {
				ev[i] = p.ID
			}
			o.detect(emit, r, k, st.Pending[0].T, b.T, ev, 0)
			st.Pending = nil
		}
		o.touch(id, st)
	}
}

func (st *keyState) has(eventID string) bool {
	for _, p := range st.Pending {
		if p.ID == eventID {
			return true
		}
	}
	return false
}

// hold replaces the set of keys b's holder holds.
func (o *Operator) hold(r *compiledRule, keys []string, b *buffered, doc any) {
	hv, ok := r.first.holder.get(doc)
	if !ok {
		return
	}
	holder, ok := keyString(hv)
	if !ok {
		return
	}
	hid := holderID{r.idx, holder}
	for _, k := range o.held[hid] {
		if !contains(keys, k) {
			id := stateID{r.idx, k}
			if st := o.states[id]; st != nil {
				delete(st.Holders, holder)
				o.touch(id, st)
			}
		}
	}
	for _, k := range keys {
		id := stateID{r.idx, k}
		st := o.states[id]
		if st == nil {
			st = &keyState{}
			o.states[id] = st
		}
		if st.Holders == nil {
			st.Holders = make(map[string]evRef)
		}
		st.Holders[holder] = evRef{T: b.T, ID: b.ID}
		heap.Push(&o.timers, timer{d: b.T + r.within, rule: r.idx, key: k, id: b.ID, holder: holder})
		o.touch(id, st)
	}
	if len(keys) == 0 {
		delete(o.held, hid)
	} else {
		o.held[hid] = append([]string(nil), keys...)
	}
}

// unhold forgets that the holder holds k (its hold expired).
func (o *Operator) unhold(hid holderID, k string) {
	ks := o.held[hid]
	for i, have := range ks {
		if have == k {
			ks = append(ks[:i], ks[i+1:]...)
			break
		}
	}
	if len(ks) == 0 {
		delete(o.held, hid)
	} else {
		o.held[hid] = ks
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// touch records that a key's state changed, dropping it when empty.
func (o *Operator) touch(id stateID, st *keyState) {
	if len(st.Pending) == 0 && len(st.Holders) == 0 {
		delete(o.states, id)
	}
	o.changed[id] = struct{}{}
}

func (o *Operator) detect(emit func(stream.Result), r *compiledRule, k string, start, at int64, evidence []string, holders int) {
	ts := time.Unix(0, at).UTC()
	emit(stream.Result{Operator: o.name, Key: k, Start: time.Unix(0, start).UTC(), End: ts, At: ts,
		Value: Detection{Rule: r.Name, Type: r.Detection, Key: k, At: ts, DryRun: r.DryRun, Evidence: evidence, Holders: holders}})
}

// Changes appends the buffer's and the keys' changed entries.
func (o *Operator) Changes(dst []stream.StateEntry) []stream.StateEntry {
	for _, b := range o.added {
		if !b.released {
			dst = append(dst, o.bufferEntry(b))
			b.stored = true
		}
	}
	clear(o.added)
	o.added = o.added[:0]
	dst = append(dst, o.removed...)
	o.removed = o.removed[:0]
	dst = append(dst, o.stale...)
	o.stale = nil
	if len(o.changed) == 0 {
		return dst
	}
	ids := make([]stateID, 0, len(o.changed))
	for id := range o.changed {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		if ids[i].rule != ids[j].rule {
			return ids[i].rule < ids[j].rule
		}
		return ids[i].key < ids[j].key
	})
	for _, id := range ids {
		e := stream.StateEntry{Operator: o.name, Key: id.key, Window: o.rules[id.rule].window}
		if st := o.states[id]; st != nil {
			e = o.keyEntry(id, st)
		}
		dst = append(dst, e)
	}
	clear(o.changed)
	return dst
}

func (o *Operator) bufferEntry(b *buffered) stream.StateEntry {
	return stream.StateEntry{Operator: o.name, Window: b.window(), Value: b.encode()}
}

// encode is json.Marshal(b), byte for byte, written without reflection
// (every event a rule uses is stored so while it waits in the buffer) when
// its strings need no escape and its payload none of json.Marshal's HTML
// escapes; else json.Marshal's (nil for a payload that is not JSON).
func (b *buffered) encode() []byte {
	v := make([]byte, 0, 96+len(b.Topic)+len(b.ID)+len(b.Type)+len(b.Payload))
	v = append(v, `{"t":`...)
	v = strconv.AppendInt(v, b.T, 10)
	v = append(v, `,"topic":"`...)
	v = append(v, b.Topic...)
	v = append(v, `","partition":`...)
	v = strconv.AppendInt(v, int64(b.Partition), 10)
	v = append(v, `,"offset":`...)
	v = strconv.AppendInt(v, b.Offset, 10)
	v = append(v, `,"id":"`...)
	v = append(v, b.ID...)
	v = append(v, `","type":"`...)
	v = append(v, b.Type...)
	v = append(v, `","payload":`...)
	if plainJSONString(b.Topic) && plainJSONString(b.ID) && plainJSONString(b.Type) && b.Payload != nil && !htmlEscaped(b.Payload) {
		buf := bytes.NewBuffer(v)
		if json.Compact(buf, b.Payload) == nil {
			return append(buf.Bytes(), '}')
		}
	}
	v, _ = json.Marshal(b)
	return v
}

// htmlEscaped: json.Marshal would escape some of p's bytes (<, >, &, and
// U+2028, U+2029, which begin with 0xE2, as other characters do: those
// take json.Marshal's way too).
func htmlEscaped(p []byte) bool {
	for _, c := range p {
		if c == '<' || c == '>' || c == '&' || c == 0xE2 {
			return true
		}
	}
	return false
}

// plainJSONString: s is printable ASCII that json.Marshal writes as it is.
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

func (o *Operator) keyEntry(id stateID, st *keyState) stream.StateEntry {
	v, _ := json.Marshal(st) // plain fields: cannot fail
	return stream.StateEntry{Operator: o.name, Key: id.key, Window: o.rules[id.rule].window, Value: v}
}

// Snapshot appends the whole buffer and every key's state.
func (o *Operator) Snapshot(dst []stream.StateEntry) []stream.StateEntry {
	for _, b := range o.buffer {
		dst = append(dst, o.bufferEntry(b))
	}
	for id, st := range o.states {
		dst = append(dst, o.keyEntry(id, st))
	}
	return dst
}

// Restore loads one entry. Buffered events have an empty Key (match keys
// are never empty); a key's state has Window "rule:<name>". State of a
// rule no longer in the set is dropped and deleted with the next changes.
func (o *Operator) Restore(e stream.StateEntry) error {
	if e.Key == "" {
		b := &buffered{}
		if err := json.Unmarshal(e.Value, b); err != nil {
			return fmt.Errorf("%w: buffered event: %w", ErrBadState, err)
		}
		b.stored = true
		o.buffer = append(o.buffer, b)
		return nil
	}
	name, ok := strings.CutPrefix(e.Window, "rule:")
	if !ok {
		return fmt.Errorf("%w: window %q", ErrBadState, e.Window)
	}
	var r *compiledRule
	for _, cr := range o.rules {
		if cr.Name == name {
			r = cr
		}
	}
	if r == nil {
		o.stale = append(o.stale, stream.StateEntry{Operator: e.Operator, Key: e.Key, Window: e.Window})
		return nil
	}
	st := &keyState{}
	if err := json.Unmarshal(e.Value, st); err != nil {
		return fmt.Errorf("%w: rule %s: %w", ErrBadState, name, err)
	}
	o.states[stateID{r.idx, e.Key}] = st
	for _, p := range st.Pending {
		heap.Push(&o.timers, timer{d: p.T + r.within, rule: r.idx, key: e.Key, id: p.ID})
	}
	holders := make([]string, 0, len(st.Holders))
	for h := range st.Holders {
		holders = append(holders, h)
	}
	sort.Strings(holders)
	for _, h := range holders {
		p := st.Holders[h]
		heap.Push(&o.timers, timer{d: p.T + r.within, rule: r.idx, key: e.Key, id: p.ID, holder: h})
		hid := holderID{r.idx, h}
		o.held[hid] = append(o.held[hid], e.Key)
	}
	return nil
}

// timer is a pending event's or a hold's deadline.
type timer struct {
	d       int64
	rule    int
	key, id string
	holder  string
}

type timerHeap []timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	switch {
	case a.d != b.d:
		return a.d < b.d
	case a.rule != b.rule:
		return a.rule < b.rule
	case a.key != b.key:
		return a.key < b.key
	case a.id != b.id:
		return a.id < b.id
	}
	return a.holder < b.holder
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}
