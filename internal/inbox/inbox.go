// Package inbox makes a service's event handlers idempotent and batched:
// a batch of records from one partition is applied in one database
// transaction, and every event's id is recorded in that same transaction,
// so a redelivered or replayed event has no second effect.
//
// The core (this file) decodes a record, skips it if the consumer does
// not want it (wants.go) or it was processed before, and applies a
// partition's batch in one transaction, combining the batches of
// partitions that arrive meanwhile into one commit. Around
// it, in the order they run for a batch and then for each record:
//
//  1. group commit (Handle): concurrent partitions' batches share a
//     transaction; if it fails, each batch is applied again alone.
//  2. the optimistic transaction: the whole batch without savepoints; if a
//     record fails, it is rolled back and the batch applied again record
//     by record, each behind a savepoint.
//  3. the retry policy (retry.go), for a record that fails there: in place
//     (the bus redelivers the batch) InPlaceRetries times, then parked for
//     delayed retries until MaxAttempts, then dead-lettered
//     (internal/deadletter); a permanent error is dead-lettered at once.
//
// Each record's handler runs inside the record middleware, outermost
// first, as composed in middleware.go:
//
//  1. tracing (tracing.go): the record's trace context, and a consumer span
//  2. metrics (metrics.go): the handler's latency
//  3. panic recovery (recover.go): a panic, like an error, becomes a
//     *HandlerError naming the event
//  4. failure injection (failinject.go): EVENTMART_FAIL_EVENTS
//  5. the handler registered for the event type (Consumer.Handlers)
package inbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/deadletter"
	"github.com/eventmart/eventmart/internal/obs"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Migration creates the table of processed event ids; services include it
// among their migrations. On SQLite the table is WITHOUT ROWID (a database
// created before keeps its rowid table, which works the same).
const Migration = `
CREATE TABLE IF NOT EXISTS processed_events (
	event_id     TEXT PRIMARY KEY,
	event_type   TEXT NOT NULL,
	processed_at BIGINT NOT NULL
){{WITHOUT_ROWID}};`

// Func applies one event's effects through tx. It may write to the outbox
// with outbox.Emit(ctx, tx, source, e.Origin(), payloads…). An error
// rolls back the whole batch, which the bus redelivers. e and p may be
// shared with the other consumer groups reading the record (decoded once
// per process, eventmsg.DecodeRecord): a Func never modifies e nor p —
// no assignment to their fields, no append to or write into their slices
// and maps, no passing p to outbox.Emit or event.New (which bound it in
// place). A handler that needs a changed payload copies it first. The
// same holds for Prepare and Wants.
type Func func(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p event.Payload) error

// Consumer is one service's consumer group: its handlers by event type.
// Its fields are set before the first Handle or RetryDue, which composes
// the record middleware from them.
type Consumer struct {
	Group    string
	DB       *sqldb.DB
	Handlers map[event.Type]Func
	Log      *slog.Logger
	// Committed, if set, is called after every batch that wrote (for
	// example to wake the service's outbox relay).
	Committed func()
	// Prepare, if set, is called in every transaction of a batch before
	// its records are applied, with those it will apply (decoded, not
	// processed before), in batch order: for a service to lock, in one
	// global order, the rows the batch will change, so that concurrent
	// batches on PostgreSQL wait for each other instead of deadlocking
	// (see Preparer). An error fails the batch.
	Prepare func(ctx context.Context, tx *sqldb.Tx, batch []Event) error
	// Wants, if set, is asked before any transaction, for every decoded
	// record of a type a handler here takes, whether it has anything to
	// do here (see Wanter): one it turns down is consumed as ignored,
	// without its handler and without a processed-event record, and a
	// batch with nothing wanted costs no transaction at all.
	Wants func(ctx context.Context, e *event.Envelope, p event.Payload) bool
	// WantsType, if set, is asked before a record is decoded, by the type
	// its header names, whether events of that type have anything to do
	// here (see TypeWanter): a record of a type it turns down is consumed
	// as ignored without being decoded. Records retried from the retry
	// queue are not asked.
	WantsType func(ctx context.Context, t event.Type) bool
	// OwnDeduplication, if set, says the handlers recognise an event they
	// applied before themselves (see the OwnDeduplication interface): no
	// processed-event record is looked up or written, and every event
	// reaches its handler, redelivered or not.
	OwnDeduplication bool
	// EnvelopeOnly, if set, says the handlers read only the envelope (see
	// EnvelopeReader): payloads are not decoded, and handlers get nil.
	EnvelopeOnly bool
	// Linger lets a partition's batch wait up to this long for more
	// records before it is handled (bus.Linger, in SubscribeOptions):
	// fewer, larger transactions for a consumer nothing waits on; 0 (the
	// default) hands each batch over at once.
	Linger time.Duration
	// Retention is how long the records of the events applied are kept
	// (prune.go): an event older than it may be applied again if it is
	// delivered again. 0 (the default) keeps them forever.
	Retention time.Duration

	// Retry policy (retry.go): a failing event is retried in place (the
	// batch is redelivered after the bus's backoff) InPlaceRetries times
	// (default 3), then parked in the retry queue and retried without
	// blocking its partition after RetryDelays (default 1s, 5s, 30s, 2m,
	// 10m) until MaxAttempts (default 8) in all; then it is dead-lettered.
	// Permanent errors are dead-lettered at once.
	InPlaceRetries int
	MaxAttempts    int
	RetryDelays    []time.Duration
	Now            func() time.Time // default time.Now

	// Metrics, if set, count consumed events by outcome, handler latency,
	// retries and dead letters (see package obs).
	Metrics *obs.ConsumerMetrics
	// Tracing, if on, gives every handled event a consumer span, a child
	// of the trace context in the record's traceparent; the handler's
	// context carries it, so the events it emits continue the trace.
	Tracing *obs.Tracing
	// InjectedFailures, if set, makes the handlers of some event types fail
	// on purpose (failinject.go).
	InjectedFailures *InjectedFailures

	setup    sync.Once
	handle   recordHandler // the record middleware around the handlers, composed once
	mu       sync.Mutex
	queue    []*pending
	leading  bool
	attempts map[string]*failure // in-place failures by record
	stats    Stats
	wake     chan struct{} // RunRetries's nudge (WakeRetries)
}

// DeadLetters returns the consumer group's dead-letter queue; what it
// redrives wakes this Consumer's RunRetries.
func (c *Consumer) DeadLetters() *deadletter.Store {
	return &deadletter.Store{DB: c.DB, Group: c.Group, Now: c.Now, Queued: c.WakeRetries}
}

// pending is a batch waiting to be applied, and where its outcome goes.
type pending struct {
	batch []*bus.Message
	done  chan error
}

// SubscribeOptions are the options to subscribe the consumer's group
// with (bus.Subscriber): its Linger.
func (c *Consumer) SubscribeOptions() []bus.SubscribeOption {
	return []bus.SubscribeOption{bus.Linger(c.Linger)}
}

// Topics returns the topics the consumer's handlers need, each once.
func (c *Consumer) Topics() []string {
	seen := map[event.Topic]bool{}
	var ts []string
	for t := range c.Handlers {
		topic := event.TopicOf(t)
		if !seen[topic] {
			seen[topic] = true
			ts = append(ts, string(topic))
		}
	}
	return ts
}

// Handle is the consumer's bus.Handler. Records whose eventType header
// names no handler are skipped without decoding. Failures follow the retry
// policy (see Consumer): a poison record never stalls its partition.
//
// Batches of different partitions arriving while a transaction runs are
// combined into the next one (group commit): the database sees one
// transaction, and one fsync, for many partitions' batches. If a combined
// transaction fails, each batch is retried alone, so one failing batch
// does not fail the others.
func (c *Consumer) Handle(ctx context.Context, batch []*bus.Message) error {
	c.setup.Do(c.compose)
	p := &pending{batch: batch, done: make(chan error, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, p)
	if c.leading {
		c.mu.Unlock()
		return <-p.done
	}
	c.leading = true
	c.mu.Unlock()
	// This caller leads: it applies what is queued, round after round,
	// until the queue is empty.
	for {
		c.mu.Lock()
		round := c.queue
		c.queue = nil
		if len(round) == 0 {
			c.leading = false
			c.mu.Unlock()
			break
		}
		c.mu.Unlock()
		// A combined round does not count a failing record's attempt:
		// each batch is then applied alone, and counts it there once.
		err := c.apply(ctx, round, len(round) == 1)
		if err != nil && len(round) > 1 {
			for _, q := range round {
				q.done <- c.apply(ctx, []*pending{q}, true)
			}
			continue
		}
		for _, q := range round {
			q.done <- err
		}
	}
	return <-p.done
}

// apply applies batches in one transaction, each record behind a
// savepoint: a record that fails permanently is dead-lettered, one that has
// failed InPlaceRetries times is parked, and the rest of the batch commits.
// Any other failure rolls the whole transaction back and is returned, so
// the bus redelivers the batch after its backoff.
//
// With count false, a record failing with a transient error fails the
// whole transaction at once, without counting the attempt (the caller
// applies the batches again, counting).
func (c *Consumer) apply(ctx context.Context, batches []*pending, count bool) error {
	var msgs []*bus.Message
	for _, b := range batches {
		msgs = append(msgs, b.batch...)
	}
	// Optimistically first: the whole batch without a savepoint per record
	// (two statements each, a sixth of a batch's SQL). Should any record
	// fail, that transaction is rolled back and the batch applied again,
	// record by record behind savepoints.
	start := time.Now()
	var unwantedType func(event.Type) bool
	if c.WantsType != nil {
		unwantedType = func(t event.Type) bool { return t != "" && !c.WantsType(ctx, t) }
	}
	decs := c.decodeAll(msgs, unwantedType)
	c.filter(ctx, decs)
	if !slices.ContainsFunc(decs, needsTx) {
		// Only events no handler here wants (another group's types on a
		// shared topic, or turned down by Wants): a transaction would
		// read and write nothing.
		outcomes := make([]consumed, len(msgs))
		for i, m := range msgs {
			outcomes[i] = consumed{m, obs.OutcomeIgnored}
		}
		c.Metrics.Batch(time.Since(start))
		c.countConsumed(outcomes)
		return nil
	}
	wrote, outcomes, err := c.applyFast(ctx, msgs, decs)
	if errors.Is(err, errIsolate) {
		wrote, outcomes, err = c.applyIsolated(ctx, msgs, decs, count)
	}
	c.Metrics.Batch(time.Since(start))
	if err != nil {
		return err
	}
	c.countConsumed(outcomes)
	if wrote && c.Committed != nil {
		c.Committed()
	}
	return nil
}

// errIsolate makes applyFast roll back so that the batch is applied again
// record by record.
var errIsolate = errors.New("inbox: a record failed; applying the batch record by record")

// applyFast applies msgs in one transaction without savepoints; any
// record's failure rolls it all back with errIsolate.
func (c *Consumer) applyFast(ctx context.Context, msgs []*bus.Message, decs []*decoded) (bool, []consumed, error) {
	wrote := false
	var outcomes []consumed
	r := new(record) // one for the batch: the middleware sees each record in turn
	err := c.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		wrote, outcomes = false, outcomes[:0]
		ids, err := c.processedBefore(ctx, tx, msgs, decs)
		if err != nil {
			return err
		}
		if err := c.prepare(ctx, tx, decs, ids); err != nil {
			return err
		}
		for i, m := range msgs {
			if decs[i] == nil {
				outcomes = append(outcomes, consumed{m, obs.OutcomeIgnored})
				continue
			}
			w, outcome, herr := c.process(ctx, tx, m, decs[i], r, ids)
			if herr != nil {
				return errIsolate
			}
			wrote = wrote || w
			outcomes = append(outcomes, consumed{m, outcome})
		}
		return nil
	})
	return wrote, outcomes, err
}

// applyIsolated applies msgs with a savepoint around each record; the
// retry policy decides on those that fail.
func (c *Consumer) applyIsolated(ctx context.Context, msgs []*bus.Message, decs []*decoded, count bool) (bool, []consumed, error) {
	wrote := false
	var outcomes []consumed
	var t tallies // counted once the transaction has ended
	r := new(record)
	err := c.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		wrote, outcomes = false, outcomes[:0]
		t.reset()
		ids, err := c.processedBefore(ctx, tx, msgs, decs)
		if err != nil {
			return err
		}
		if err := c.prepare(ctx, tx, decs, ids); err != nil {
			return err
		}
		for i, m := range msgs {
			w, outcome, herr := c.processIsolated(ctx, tx, m, decs[i], r, ids)
			wrote = wrote || w
			if herr != nil {
				var err error
				if outcome, err = c.retry(ctx, tx, m, herr, count, &t); err != nil {
					return err
				}
			}
			outcomes = append(outcomes, consumed{m, outcome})
		}
		return nil
	})
	if err := c.settle(&t, err); err != nil {
		return false, nil, err
	}
	return wrote, outcomes, nil
}

// processIsolated runs process behind a savepoint, rolling back to it if
// the record fails (with the writes it buffered and its OnCommit hooks), so
// the transaction can go on with the next record.
func (c *Consumer) processIsolated(ctx context.Context, tx *sqldb.Tx, m *bus.Message, d *decoded, r *record, ids *eventIDs) (bool, string, error) {
	if d == nil {
		return false, obs.OutcomeIgnored, nil
	}
	sp, err := tx.Savepoint(ctx, "record")
	if err != nil {
		return false, "", fmt.Errorf("inbox: %w", err)
	}
	wrote, outcome, herr := c.process(ctx, tx, m, d, r, ids)
	if herr != nil {
		// What the failed handler wrote, buffered and meant to do after
		// commit did not happen.
		if err := tx.RollbackTo(ctx, sp); err != nil {
			return false, "", fmt.Errorf("inbox: %w", err)
		}
		wrote = false
	}
	if err := tx.Release(ctx, sp); err != nil {
		return false, "", fmt.Errorf("inbox: %w", err)
	}
	return wrote, outcome, herr
}

// eventIDs is what a transaction knows of its records' event ids: which
// it looked up in processed_events (at once for a batch, by the ids the
// records' headers carry) and which were processed, before or in it.
type eventIDs struct {
	asked, done map[string]bool
	// own: the handlers deduplicate themselves (Consumer.OwnDeduplication);
	// nothing is looked up nor recorded.
	own bool
}

// processedBefore looks up the event ids of msgs' headers in
// processed_events (sqldb.ListIn) and returns what it found; not those
// of records decs already settled as ignored.
//
// The ids processed in the transaction are inserted together before it
// commits (sqldb.Rows), without ON CONFLICT: should another consumer
// process one of them meanwhile (two members of the group during a
// rebalance, on PostgreSQL), the insert fails on the primary key, the
// transaction rolls back and the bus redelivers the batch, whose lookup
// then finds the id. An event is never applied twice.
func (c *Consumer) processedBefore(ctx context.Context, tx *sqldb.Tx, msgs []*bus.Message, decs []*decoded) (*eventIDs, error) {
	if c.OwnDeduplication {
		return &eventIDs{own: true}, nil
	}
	ids := &eventIDs{asked: make(map[string]bool, len(msgs)), done: map[string]bool{}}
	var args []string
	for i, m := range msgs {
		if id := m.Header(eventmsg.HeaderEventID); id != "" && !ids.asked[id] && needsTx(decs[i]) {
			ids.asked[id] = true
			args = append(args, id)
		}
	}
	found, err := sqldb.ListIn(ctx, tx, `SELECT event_id FROM processed_events WHERE event_id`, "", args, sqldb.ScanOne[string])
	if err != nil {
		return nil, fmt.Errorf("inbox: processed events: %w", err)
	}
	for _, id := range found {
		ids.done[id] = true
	}
	return ids, nil
}

// processed reports whether the event id was processed, looking it up if
// the batch's lookup did not.
func (ids *eventIDs) processed(ctx context.Context, tx *sqldb.Tx, id string) (bool, error) {
	if ids.own {
		return false, nil
	}
	if !ids.asked[id] {
		ids.asked[id] = true
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM processed_events WHERE event_id = ?`, id).Scan(&n); err != nil {
			return false, fmt.Errorf("inbox: processed event %s: %w", id, err)
		}
		ids.done[id] = n > 0
	}
	return ids.done[id], nil
}

// processedKey keys a transaction's buffer of processed event ids.
type processedKey struct{}

// markProcessed records id as processed in tx: its row is buffered and
// inserted with the batch's others before tx commits.
func (ids *eventIDs) markProcessed(tx *sqldb.Tx, e *event.Envelope) {
	if ids.own {
		return
	}
	ids.done[e.EventID] = true
	rows := tx.Pending(processedKey{}, func() sqldb.Pending {
		return sqldb.NewRows(`INSERT INTO processed_events (event_id, event_type, processed_at) VALUES`, 3, "")
	}).(*sqldb.Rows)
	rows.Add(e.EventID, string(e.EventType), e.Timestamp.UnixMilli())
}

// process applies one record that is not another group's (callers skip
// those first, see ignored): skipped if it was processed before. A
// record that is not a valid envelope of a known type and version (or
// whose header disagrees with its envelope), or whose payload does not
// match that version's JSON Schema (event.SchemaError: the reason names the
// fields), is a permanent error, whatever its header says. A prior
// version's payload is upcast before the handler sees it. The handler
// runs inside the record middleware (middleware.go), in r.
func (c *Consumer) process(ctx context.Context, tx *sqldb.Tx, m *bus.Message, d *decoded, r *record, ids *eventIDs) (wrote bool, outcome string, err error) {
	if d.outcome != "" {
		return false, d.outcome, nil
	}
	if d.err != nil {
		return false, "", d.err
	}
	e := d.e
	done, err := ids.processed(ctx, tx, e.EventID)
	if err != nil {
		return false, "", err
	}
	if done {
		return false, obs.OutcomeDuplicate, nil // processed before: a redelivery or replay
	}
	*r = record{Message: m, Envelope: e, Payload: d.p, handler: d.h}
	if err := c.handle(ctx, tx, r); err != nil {
		return false, "", err
	}
	ids.markProcessed(tx, e)
	return true, obs.OutcomeProcessed, nil
}

// decoded is a record as decoded once per delivery, before its
// transaction (whose function may run more than once): its envelope,
// payload and handler, or the outcome that needs no handler (ignored), or
// the permanent error that makes it undecodable.
type decoded struct {
	e       *event.Envelope
	p       event.Payload
	h       Func
	outcome string
	err     error
}

// decode decodes m (see process).
func (c *Consumer) decode(m *bus.Message) decoded {
	typ := event.Type(m.Header(eventmsg.HeaderEventType))
	h, ok := c.Handlers[typ]
	// Handled here, or no known type at all: a record nobody can route
	// must not pass unnoticed, so it is decoded and fails below. The
	// envelope and payload are shared with the other groups reading m
	// (handlers treat them as read-only, see Func), decoded once for them
	// all.
	r, err := eventmsg.DecodeRecord(m)
	if err != nil {
		return decoded{err: Permanent(err)}
	}
	e := r.Envelope
	if typ == "" {
		// No header (a producer that is not ours): route by the envelope.
		typ = e.EventType
		if h, ok = c.Handlers[typ]; !ok {
			if _, known := event.Lookup(typ); known {
				return decoded{outcome: obs.OutcomeIgnored}
			}
		}
	}
	if e.EventType != typ {
		return decoded{err: Permanent(fmt.Errorf("inbox: the eventType header %q disagrees with the envelope's %q", typ, e.EventType))}
	}
	if c.EnvelopeOnly {
		if err := e.Known(); err != nil {
			return decoded{err: Permanent(err)}
		}
		return decoded{e: e, h: h}
	}
	p, err := r.Payload()
	if err != nil {
		return decoded{err: Permanent(err)}
	}
	return decoded{e: e, p: p, h: h}
}

// decodeAll decodes the records of msgs that are this group's (nil for
// the others, see ignored).
func (c *Consumer) decodeAll(msgs []*bus.Message, unwantedType func(event.Type) bool) []*decoded {
	out := make([]*decoded, len(msgs))
	for i, m := range msgs {
		switch {
		case c.ignored(m):
		case unwantedType != nil && unwantedType(event.Type(m.Header(eventmsg.HeaderEventType))):
			out[i] = unwanted
		default:
			d := c.decode(m)
			out[i] = &d
		}
	}
	return out
}

// Event is a record of a batch that its transaction is about to apply
// (see Consumer.Prepare).
type Event struct {
	Envelope *event.Envelope
	Payload  event.Payload
}

// prepare calls Prepare, if set, with the records of decs that tx will
// apply: decoded, and not processed before.
func (c *Consumer) prepare(ctx context.Context, tx *sqldb.Tx, decs []*decoded, ids *eventIDs) error {
	if c.Prepare == nil {
		return nil
	}
	var evs []Event
	for _, d := range decs {
		if d != nil && d.e != nil && d.outcome == "" && d.err == nil && !ids.done[d.e.EventID] {
			evs = append(evs, Event{d.e, d.p})
		}
	}
	if len(evs) == 0 {
		return nil
	}
	if err := c.Prepare(ctx, tx, evs); err != nil {
		return fmt.Errorf("inbox: prepare a batch of %d events: %w", len(evs), err)
	}
	return nil
}

// ignored reports whether m's eventType header names a catalog type no
// handler here wants: another group's event, skipped without decoding.
func (c *Consumer) ignored(m *bus.Message) bool {
	typ := event.Type(m.Header(eventmsg.HeaderEventType))
	_, mine := c.Handlers[typ]
	_, known := event.Lookup(typ)
	return known && !mine
}
