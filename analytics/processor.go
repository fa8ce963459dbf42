package analytics

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
	"github.com/eventmart/eventmart/internal/stream"
	"github.com/eventmart/eventmart/internal/stream/cep"
)

// The engine's operators.
const (
	opMinute = "minute" // one-minute tumbling windows of Counters
	opHour   = "hour"   // one-hour tumbling windows of Counters
	opRules  = "rules"  // the pattern rules (package cep)
	allKey   = "all"    // the windows' one key: figures are shop-wide
)

// Sizes are the window sizes, by the name the API and the tables use.
var Sizes = map[string]time.Duration{opMinute: time.Minute, opHour: time.Hour}

// NewEngine returns the analytics engine over partitions: the order →
// shipped join (shiptime.go), the minute and hour windows and the rules, each with the given grace. The service and
// the backtest build it the same way, so a backtest gives the live results.
func NewEngine(partitions []stream.Partition, rules []cep.Rule, grace time.Duration) (*stream.Engine, error) {
	// The order → shipped join first: it adds a shipment's delay to the
	// record's contributions before the windows count them.
	ops := []stream.Operator{newShipTimes()}
	for _, name := range []string{opMinute, opHour} {
		op, err := stream.NewAggregate(stream.Aggregation[Counters]{
			Name: name, Windows: stream.TumblingWindows(Sizes[name], grace), Aggregator: statsAggregator{},
			Key: func(*stream.Record) (string, bool) { return allKey, true },
		})
		if err != nil {
			return nil, fmt.Errorf("analytics: %w", err)
		}
		ops = append(ops, op)
	}
	rulesOp, err := cep.New(opRules, rules, grace)
	if err != nil {
		return nil, fmt.Errorf("analytics: %w", err)
	}
	e, err := stream.New(partitions, append(ops, rulesOp)...)
	if err != nil {
		return nil, fmt.Errorf("analytics: %w", err)
	}
	return e, nil
}

// Record adapts a bus message to the engine. Its event time is the
// message's log timestamp: within a partition it only grows, so a
// partition read to its end can be declared idle up to the moment its end
// was read (see processor.idle) without making later events late. A
// message that does not decode still moves its partition on (it counts as
// an event and matches nothing).
func Record(m *bus.Message) stream.Record {
	r := stream.Record{Partition: stream.Partition{Topic: m.Topic, Number: m.Partition}, Offset: m.Offset,
		Key: string(m.Key), Time: m.Timestamp}
	e, err := eventmsg.DecodeShared(m) // read only: the envelope other groups got
	if err != nil {
		r.Decoded = []contribution{{cEvents, 1}}
		return r
	}
	r.EventID, r.EventType, r.Payload = e.EventID, string(e.EventType), e.Data
	r.Decoded = contributions(r.EventType, e.Data)
	return r
}

// Topics are the topics the analytics service reads: every business topic
// but its own analytics-events, so a rule may use any event type of the
// catalog but the audit trail's and the detections'.
func Topics() []string {
	var ts []string
	for _, t := range event.BusinessTopics() {
		if t != event.TopicAnalytics { // its own detections
			ts = append(ts, string(t))
		}
	}
	return ts
}

// Partitions lists every partition of topics as the bus has them.
func Partitions(ctx context.Context, r bus.Reader, topics []string) ([]stream.Partition, error) {
	var ps []stream.Partition
	for _, t := range topics {
		offs, err := r.Offsets(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("analytics: partitions of %s: %w", t, err)
		}
		for _, o := range offs {
			ps = append(ps, stream.Partition{Topic: t, Number: o.Partition})
		}
	}
	return ps, nil
}

// idleLag is how far before the moment a partition's end was read it is
// declared idle: a record being produced while the end was read may carry
// a timestamp a little earlier (and producers' clocks differ a little).
const idleLag = 100 * time.Millisecond

// processor runs the engine for the service: batches from the consumer
// group, idle partitions from a clock, and rule changes, one at a time;
// every change of state is committed with the offsets it came from.
type processor struct {
	db      *sqldb.DB
	bus     bus.Bus
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time
	grace   time.Duration
	topics  []string // the topics read (Topics(), or a test's)
	parts   []stream.Partition

	// qmu guards queue: the batches waiting for the next group commit
	// (see handle). Never held while waiting for mu.
	qmu   sync.Mutex
	queue []*queued
	// recs holds a group commit's records for the engine, reused (p.mu).
	recs []stream.Record

	mu     sync.Mutex
	eng    *stream.Engine
	rules  []cep.Rule
	offset map[stream.Partition]int64 // last offset the engine processed, per partition
	// idled are the entries changed by idle passes that made no result
	// (partitions' stream times; released buffered events, pattern and
	// join state) and by commits that only moved stream times, not written
	// yet: written with the next commit that writes, before its own
	// changes. The stored state stays the engine's as of some commit, with
	// the offsets it came from: a crash before the next loses no result
	// (a pass that makes one commits at once), and the engine restored
	// from it repeats the passes.
	idled map[stateKey]stream.StateEntry
	// ends and idleParts are the idle pass's buffers, reused.
	ends      map[stream.Partition]int64
	idleParts []stream.Partition
	// lastRecord: when records were last processed; lastIdle: when the
	// last idle pass ran (quiet, the passes slow down to quietIdle).
	lastRecord, lastIdle time.Time
	// notify is called after a commit that emitted detection events (the
	// outbox relay's Notify).
	notify func()
}

// start builds the engine with rules and restores it from the database.
func (p *processor) start(ctx context.Context, rules []cep.Rule) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = rules
	return p.restore(ctx)
}

// restore rebuilds the engine from the stored state: at start, and after a
// failed commit left the engine ahead of the database.
func (p *processor) restore(ctx context.Context) error {
	eng, err := NewEngine(p.parts, p.rules, p.grace)
	if err != nil {
		return err
	}
	entries, err := loadState(ctx, p.db)
	if err != nil {
		return err
	}
	if err := eng.Restore(entries); err != nil {
		return fmt.Errorf("analytics: restore: %w", err)
	}
	p.eng = eng
	p.idled = map[stateKey]stream.StateEntry{}
	p.offset = make(map[stream.Partition]int64, len(p.parts))
	for _, en := range entries {
		if en.Operator == "" && len(en.Value) == 16 {
			for _, part := range p.parts {
				if part.String() == en.Key {
					p.offset[part] = decodeOffset(en.Value)
				}
			}
		}
	}
	return nil
}

// decodeOffset reads the last offset from the engine's partition entry
// (stream time, then offset, 8 bytes big-endian each).
func decodeOffset(b []byte) int64 {
	var v uint64
	for _, c := range b[8:16] {
		v = v<<8 | uint64(c)
	}
	return int64(v)
}

// handle is the consumer group's handler: one partition's batch. The bus
// hands over the batches of different partitions concurrently; they are
// committed together (group commit): a batch waits for the engine lock, and
// whoever takes it processes every batch queued by then, in the order they
// arrived, and commits them in ONE transaction (state, offsets, results).
// Under load this turns one SQLite transaction per partition batch into one
// per round, which is what kept detections waiting.
func (p *processor) handle(ctx context.Context, batch []*bus.Message) error {
	recs := make([]stream.Record, len(batch))
	for i, m := range batch {
		recs[i] = Record(m)
	}
	b := &queued{recs: recs, done: make(chan error, 1)}
	p.qmu.Lock()
	p.queue = append(p.queue, b)
	p.qmu.Unlock()
	p.mu.Lock()
	p.qmu.Lock()
	bs := p.queue
	p.queue = nil
	p.qmu.Unlock()
	if len(bs) > 0 { // else an earlier holder of the lock committed b
		p.processQueued(ctx, bs)
	}
	p.mu.Unlock()
	return <-b.done
}

// queued is a partition's batch waiting for the group commit; done gets
// its outcome.
type queued struct {
	recs []stream.Record
	done chan error
}

// processQueued runs bs through the engine and commits them together. A
// batch the engine rejects (it changes nothing then) fails alone; a failed
// commit fails all of them (the engine is rebuilt from the database, and
// the bus hands each batch over again). Called with p.mu held.
func (p *processor) processQueued(ctx context.Context, bs []*queued) {
	var outs []stream.Output
	ok := bs
	if len(bs) > 1 {
		// All in one Process: the engine advances and hands out its
		// changes (the windows' counters encoded, the patterns' state)
		// once for the commit, not once per batch. The results are the
		// same whatever the batching (internal/stream).
		n := 0
		for _, b := range bs {
			n += len(b.recs)
		}
		if p.recs == nil || cap(p.recs) < n {
			p.recs = make([]stream.Record, 0, n)
		}
		recs := p.recs[:0]
		for _, b := range bs {
			recs = append(recs, b.recs...)
		}
		out, err := p.eng.Process(recs)
		clear(recs) // drop the payloads until the next round
		if err == nil {
			outs = []stream.Output{out}
		}
	}
	if outs == nil {
		// One batch, or one the engine rejects (it rejects a batch whole,
		// before any change): batch by batch, so a rejected one fails alone.
		ok = bs[:0:0]
		for _, b := range bs {
			out, err := p.eng.Process(b.recs)
			if err != nil {
				b.done <- fmt.Errorf("analytics: %w", err)
				continue
			}
			outs = append(outs, out)
			ok = append(ok, b)
		}
	}
	err := p.commit(ctx, outs)
	if err == nil {
		for _, b := range ok {
			for _, r := range b.recs {
				p.offset[r.Partition] = max(p.offset[r.Partition], r.Offset)
			}
		}
		p.lastRecord = p.now()
	}
	for _, b := range ok {
		b.done <- err
	}
}

// quietIdle is how often idle passes run once no record has arrived for
// quietAfter: the watermark then only needs to move for windows to close
// and timeouts to fire, which a second's delay does not hurt. Until then
// they run at every tick, so a detection waits for the other partitions
// no longer than the grace and a tick.
const (
	quietIdle  = time.Second
	quietAfter = 2 * time.Second
)

// idle declares idle every partition the engine has read to its end, up
// to the moment before its end was read, so the watermark moves (windows
// close, timeouts fire) while some partitions have no records. A pass
// with nothing to declare (every partition's stream time, hence the
// watermark, is past that moment already) asks the bus nothing.
func (p *processor) idle(ctx context.Context) error {
	now := p.now()
	t0 := now.Add(-idleLag)
	p.mu.Lock()
	if now.Sub(p.lastRecord) > quietAfter+p.grace && now.Sub(p.lastIdle) < quietIdle || p.eng.Watermark() >= t0.UnixNano() {
		p.mu.Unlock()
		return nil
	}
	p.lastIdle = now
	p.mu.Unlock()
	if p.ends == nil {
		p.ends = make(map[stream.Partition]int64, len(p.parts))
	}
	clear(p.ends)
	// One request per broker for every topic (bus.EndLister), where
	// Offsets takes three per topic: at ten passes a second under load
	// that was most of the broker's requests.
	ends, err := bus.Ends(ctx, p.bus, p.topics)
	if err != nil {
		return fmt.Errorf("analytics: end offsets: %w", err)
	}
	for t, parts := range ends {
		for n, end := range parts {
			p.ends[stream.Partition{Topic: t, Number: n}] = end
		}
	}
	return p.declareIdle(ctx, p.ends, t0)
}

// declareIdle declares idle up to t0 every partition read to its end
// (ends: each partition's end offset, the offset its next record gets), in
// one Engine.IdleAll, and commits it: at once if it made results (closed
// windows, detections), else with the next commit that writes (see idled).
func (p *processor) declareIdle(ctx context.Context, ends map[stream.Partition]int64, t0 time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	idle := p.idleParts[:0]
	for _, part := range p.parts {
		last, seen := p.offset[part]
		if !seen {
			last = -1
		}
		if end, ok := ends[part]; !ok || last+1 < end {
			continue
		}
		idle = append(idle, part)
	}
	p.idleParts = idle
	out, err := p.eng.IdleAll(idle, t0)
	if err != nil {
		return fmt.Errorf("analytics: %w", err)
	}
	if len(out.Results) == 0 {
		p.deferChanges(out.Changes)
		p.observe([]stream.Output{out}, nil)
		return nil
	}
	return p.commit(ctx, []stream.Output{out})
}

// deferChanges keeps changes in p.idled, for the next commit that writes.
func (p *processor) deferChanges(changes []stream.StateEntry) {
	for _, c := range changes {
		p.idled[stateKey{c.Operator, c.Key, c.Window}] = c
	}
}

// setRules swaps the rule set, keeping all state (a changed rule keeps its
// pending matches; a removed rule's state is deleted with the next changes).
func (p *processor) setRules(ctx context.Context, rules []cep.Rule) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	eng, err := NewEngine(p.parts, rules, p.grace)
	if err != nil {
		return err
	}
	if err := eng.Restore(p.eng.Snapshot()); err != nil {
		return fmt.Errorf("analytics: restore for new rules: %w", err)
	}
	p.eng, p.rules = eng, rules
	return nil
}

// commit writes the outputs' state changes, closed windows and detections
// in one transaction; on failure the engine is rebuilt from the database,
// which still holds the state before the outputs.
func (p *processor) commit(ctx context.Context, outs []stream.Output) error {
	var dets []Detection
	writes := false
	for _, o := range outs {
		writes = writes || len(o.Results) > 0
		for _, c := range o.Changes {
			if c.Operator == "" && !writes {
				continue
			}
			writes = true
		}
	}
	if !writes {
		for _, o := range outs {
			p.deferChanges(o.Changes)
		}
		p.observe(outs, nil)
		return nil
	}
	idled := make([]stream.StateEntry, 0, len(p.idled))
	for _, c := range p.idled {
		idled = append(idled, c)
	}
	now := p.now()
	// The outputs' effects are gathered first and written with a few
	// multi-row statements (store.go), not a statement per change, window
	// or detection.
	changes := make([][]stream.StateEntry, 0, len(outs)+1)
	changes = append(changes, idled) // older than outs' changes: first
	var found []Detection
	var closed []stream.Result
	for _, o := range outs {
		changes = append(changes, o.Changes)
		for _, r := range o.Results {
			switch r.Operator {
			case opMinute, opHour:
				closed = append(closed, r)
			case opRules:
				if d, ok := r.Value.(cep.Detection); ok {
					found = append(found, newDetection(d, now))
				}
			}
		}
	}
	err := p.db.InTx(ctx, func(tx *sqldb.Tx) error {
		dets = nil
		if err := saveChanges(ctx, tx, changes...); err != nil {
			return err
		}
		windows := windowRows()
		for _, r := range closed {
			if err := addWindow(windows, r); err != nil {
				return err
			}
		}
		if err := windows.Flush(ctx, tx); err != nil {
			return fmt.Errorf("analytics: save windows: %w", err)
		}
		stored, err := saveDetections(ctx, tx, found)
		if err != nil {
			return err
		}
		for _, det := range stored {
			if err := emitDetection(ctx, tx, det); err != nil {
				return err
			}
		}
		dets = stored
		return nil
	})
	if err != nil {
		if rerr := p.restore(context.WithoutCancel(ctx)); rerr != nil {
			return fmt.Errorf("analytics: commit: %w (and the engine could not be restored: %w)", err, rerr)
		}
		return fmt.Errorf("analytics: commit: %w", err)
	}
	clear(p.idled)
	p.observe(outs, dets)
	if len(dets) > 0 && p.notify != nil {
		p.notify()
	}
	return nil
}

func (p *processor) observe(outs []stream.Output, dets []Detection) {
	if p.metrics == nil {
		return
	}
	for _, o := range outs {
		for op, n := range o.Late {
			p.metrics.late.WithLabelValues(op).Add(float64(n))
		}
	}
	for _, d := range dets {
		p.metrics.detections.WithLabelValues(d.Rule, d.Type, strconv.FormatBool(d.DryRun)).Inc()
	}
	if w := p.eng.Watermark(); w != stream.NoTime {
		p.metrics.watermark.Set(float64(w) / 1e9)
	}
}

// Detection is a stored detection as the API shows it.
type Detection struct {
	ID       string    `json:"id"` // the same on every run over the same events
	Rule     string    `json:"rule"`
	Type     string    `json:"type"`
	Key      string    `json:"key"`
	At       time.Time `json:"at"` // event time of the match
	DryRun   bool      `json:"dryRun"`
	Evidence []string  `json:"evidence"` // eventIds
	Holders  int       `json:"holders,omitempty"`
	// DetectedAt is when the service stored it (not part of the match).
	DetectedAt time.Time `json:"detectedAt"`
}

func newDetection(d cep.Detection, now time.Time) Detection {
	return Detection{ID: detectionID(d), Rule: d.Rule, Type: d.Type, Key: d.Key, At: d.At.UTC(), DryRun: d.DryRun,
		Evidence: append([]string{}, d.Evidence...), Holders: d.Holders, DetectedAt: now.UTC()}
}

// detectionID derives a detection's id from what was matched, so a
// detection made again (a backtest, a replay) has the same id: a UUID-shaped
// hash of rule, key, time and evidence.
func detectionID(d cep.Detection) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00%s", d.Rule, d.Key, d.At.UnixNano(), strings.Join(d.Evidence, ","))
	s := hex.EncodeToString(h.Sum(nil)[:16])
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}

// emitDetection writes d's event (analytics-events) into the outbox, in
// the transaction that stores d. A dry-run rule's detections are stored,
// not published: nothing acts on them.
func emitDetection(ctx context.Context, tx *sqldb.Tx, d Detection) error {
	if d.DryRun {
		return nil
	}
	v := event.Detection{DetectionID: d.ID, Rule: d.Rule, Key: d.Key, At: d.At, Evidence: d.Evidence, Holders: d.Holders}
	var p event.Payload
	switch d.Type {
	case "FraudSuspected":
		p = (*event.FraudSuspected)(&v)
	case "OrderSlaBreached":
		p = (*event.OrderSlaBreached)(&v)
	case "StockoutWithDemand":
		p = (*event.StockoutWithDemand)(&v)
	default:
		p = (*event.PatternDetected)(&v)
	}
	if _, err := outbox.EmitOne(ctx, tx, service.Source(Name), event.Origin{}, p); err != nil {
		return fmt.Errorf("analytics: detection event: %w", err)
	}
	return nil
}
