// Package inbox makes a service's event handlers idempotent and batched:
// a batch of records from one partition is applied in one database
// transaction, and every event's id is recorded in that same transaction,
// so a redelivered or replayed event has no second effect.
package inbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/obs"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Migration creates the table of processed event ids; services include it
// among their migrations.
const Migration = `
CREATE TABLE IF NOT EXISTS processed_events (
	event_id     TEXT PRIMARY KEY,
	event_type   TEXT NOT NULL,
	processed_at BIGINT NOT NULL
);`

// Func applies one event's effects through tx. It may write to the outbox
// with outbox.Emit(ctx, tx, source, e.Origin(), payloads…). An error
// rolls back the whole batch, which the bus redelivers.
type Func func(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p event.Payload) error

// Consumer is one service's consumer group: its handlers by event type.
type Consumer struct {
	Group    string
	DB       *sqldb.DB
	Handlers map[event.Type]Func
	Log      *slog.Logger
	// Committed, if set, is called after every batch that wrote (for
	// example to wake the service's outbox relay).
	Committed func()

	// Retry policy: a failing event is retried in place (the batch is
	// redelivered after the bus's backoff) InPlaceRetries times (default
	// 3), then parked in the retry queue and retried without blocking its
	// partition after RetryDelays (default 1s, 5s, 30s, 2m, 10m) until
	// MaxAttempts (default 8) in all; then it is dead-lettered. Permanent
	// errors are dead-lettered at once.
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

	mu       sync.Mutex
	queue    []*pending
	leading  bool
	attempts map[string]*failure // in-place failures by record
	stats    Stats
}

// failure counts the in-place failures of one record.
type failure struct {
	n     int64
	first time.Time
}

// Stats are the consumer's failure counters since start.
type Stats struct {
	Retried      int64 // failed attempts that will be retried
	Parked       int64 // events moved to the delayed-retry queue
	DeadLettered int64
}

// Stats returns a snapshot of the failure counters.
func (c *Consumer) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

func (c *Consumer) count(n *int64) {
	c.mu.Lock()
	*n++
	c.mu.Unlock()
}

// metricsOf returns the metrics of m's event type, or nil without metrics.
func (c *Consumer) metricsOf(m *bus.Message) *obs.EventMetrics {
	if c.Metrics == nil {
		return nil
	}
	return c.Metrics.Of(m)
}

// consumed is an event's outcome, counted once its transaction commits.
type consumed struct {
	m       *bus.Message
	outcome string
}

func (c *Consumer) countConsumed(cs []consumed) {
	if c.Metrics == nil {
		return
	}
	for _, x := range cs {
		if ev := c.metricsOf(x.m); ev != nil {
			ev.Consumed(x.outcome)
		}
	}
}

// pending is a batch waiting to be applied, and where its outcome goes.
type pending struct {
	batch []*bus.Message
	done  chan error
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
	wrote, outcomes, err := c.applyFast(ctx, msgs)
	if errors.Is(err, errIsolate) {
		wrote, outcomes, err = c.applyIsolated(ctx, msgs, count)
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
func (c *Consumer) applyFast(ctx context.Context, msgs []*bus.Message) (bool, []consumed, error) {
	wrote := false
	var outcomes []consumed
	err := c.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		wrote, outcomes = false, outcomes[:0]
		for _, m := range msgs {
			if c.ignored(m) {
				outcomes = append(outcomes, consumed{m, obs.OutcomeIgnored})
				continue
			}
			w, outcome, herr := c.process(ctx, tx, m)
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

// applyIsolated applies msgs with a savepoint around each record, following
// the retry policy for those that fail.
func (c *Consumer) applyIsolated(ctx context.Context, msgs []*bus.Message, count bool) (bool, []consumed, error) {
	wrote := false
	var settled []string
	var outcomes []consumed
	type failedRecord struct {
		key   string
		m     *bus.Message
		first time.Time
	}
	var failures []failedRecord // counted once the transaction has ended
	err := c.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		wrote, settled, outcomes, failures = false, settled[:0], outcomes[:0], failures[:0]
		for _, m := range msgs {
			w, outcome, herr := c.processIsolated(ctx, tx, m)
			wrote = wrote || w
			if herr == nil {
				outcomes = append(outcomes, consumed{m, outcome})
				continue
			}
			key := recordKey(m)
			if IsPermanent(herr) {
				if err := c.deadLetter(ctx, tx, m, herr, 1, c.now()); err != nil {
					return err
				}
				outcomes = append(outcomes, consumed{m, obs.OutcomeDeadLettered})
				continue
			}
			if !count {
				return herr
			}
			f := c.tally(key)
			failures = append(failures, failedRecord{key, m, f.first})
			if f.n < int64(c.inPlace()) {
				return herr // the bus redelivers the batch after its backoff
			}
			if err := c.park(ctx, tx, m, herr, f.n, f.first); err != nil {
				return err
			}
			outcomes = append(outcomes, consumed{m, obs.OutcomeParked})
			settled = append(settled, key)
		}
		return nil
	})
	for _, f := range failures {
		c.failed(f.key, f.m, f.first)
	}
	if err != nil {
		var he *HandlerError
		if errors.As(err, &he) {
			c.Log.WarnContext(he.ctx, "event handler failed; batch will be redelivered", "group", c.Group, "eventType", he.Envelope.EventType,
				"eventId", he.Envelope.EventID, "correlationId", he.Envelope.CorrelationID, "causationId", he.Envelope.CausationID, "error", he.Err)
		}
		return false, nil, err
	}
	c.mu.Lock()
	for _, k := range settled {
		delete(c.attempts, k)
	}
	c.mu.Unlock()
	return wrote, outcomes, nil
}

// recordKey identifies a record across redeliveries.
func recordKey(m *bus.Message) string {
	return fmt.Sprintf("%s/%d@%d", m.Topic, m.Partition, m.Offset)
}

// tally returns what the record with key's tally will be with one more
// failure, without counting it: the transaction function deciding on it
// may run again (a shared or retried transaction), and counts once, with
// failed, after its transaction has ended.
//
// The tally stops at InPlaceRetries, the attempt that parks the record:
// if a later record of the batch then fails in place, the park is rolled
// back with the batch, and the record fails again at the redelivery —
// the same attempt as far as the policy goes, or MaxAttempts would be
// exceeded.
func (c *Consumer) tally(key string) failure {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.attempts[key]; f != nil {
		return failure{n: min(f.n+1, int64(c.inPlace())), first: f.first}
	}
	return failure{n: 1, first: c.now()}
}

// failed counts one more failure of the record with key.
func (c *Consumer) failed(key string, m *bus.Message, first time.Time) {
	if ev := c.metricsOf(m); ev != nil {
		ev.Retries.Inc()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.attempts == nil {
		c.attempts = map[string]*failure{}
	}
	f := c.attempts[key]
	if f == nil {
		if len(c.attempts) > 10000 { // bounded: forget stale tallies of records handled elsewhere since
			clear(c.attempts)
		}
		f = &failure{first: first}
		c.attempts[key] = f
	}
	f.n++
	c.stats.Retried++
}

// processIsolated runs process behind a savepoint, rolling back to it if
// the record fails, so the transaction can go on with the next record.
func (c *Consumer) processIsolated(ctx context.Context, tx *sqldb.Tx, m *bus.Message) (bool, string, error) {
	if c.ignored(m) {
		return false, obs.OutcomeIgnored, nil
	}
	if _, err := tx.Exec(ctx, `SAVEPOINT record`); err != nil {
		return false, "", fmt.Errorf("inbox: savepoint: %w", err)
	}
	hooks := tx.CommitHooks()
	wrote, outcome, herr := c.process(ctx, tx, m)
	if herr != nil {
		if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT record`); err != nil {
			return false, "", fmt.Errorf("inbox: rollback to savepoint: %w", err)
		}
		tx.DropCommitHooks(hooks) // what the failed handler meant to do after commit did not happen
		wrote = false
	}
	if _, err := tx.Exec(ctx, `RELEASE SAVEPOINT record`); err != nil {
		return false, "", fmt.Errorf("inbox: release savepoint: %w", err)
	}
	return wrote, outcome, herr
}

// process applies one record that is not another group's (callers skip
// those first, see ignored): skipped if it was processed before. A
// record that is not a valid envelope of a known type and version (or
// whose header disagrees with its envelope), or whose payload does not
// match that version's JSON Schema (event.SchemaError: the reason names the
// fields), is a permanent error, whatever its header says. A prior
// version's payload is upcast before the handler sees it. A panicking
// handler is an error.
func (c *Consumer) process(ctx context.Context, tx *sqldb.Tx, m *bus.Message) (wrote bool, outcome string, err error) {
	typ := event.Type(m.Header(eventmsg.HeaderEventType))
	h, ok := c.Handlers[typ]
	// Handled here, or no known type at all: a record nobody can route
	// must not pass unnoticed, so it is decoded and fails below.
	e, err := eventmsg.Decode(m)
	if err == nil && typ == "" {
		// No header (a producer that is not ours): route by the envelope.
		typ = e.EventType
		if h, ok = c.Handlers[typ]; !ok {
			if _, known := event.Lookup(typ); known {
				return false, obs.OutcomeIgnored, nil
			}
		}
	}
	var p event.Payload
	if err == nil && e.EventType != typ {
		err = fmt.Errorf("inbox: the eventType header %q disagrees with the envelope's %q", typ, e.EventType)
	}
	if err == nil {
		p, err = e.Payload()
	}
	if err != nil {
		return false, "", Permanent(err)
	}
	res, err := tx.Exec(ctx, `INSERT INTO processed_events (event_id, event_type, processed_at) VALUES (?, ?, ?) ON CONFLICT (event_id) DO NOTHING`,
		e.EventID, string(e.EventType), e.Timestamp.UnixMilli())
	if err != nil {
		return false, "", fmt.Errorf("inbox: record %s: %w", e.EventID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, obs.OutcomeDuplicate, nil // processed before: a redelivery or replay
	}
	hctx := eventmsg.ContextWithTrace(ctx, m)
	var span trace.Span
	if c.Tracing.On() {
		hctx, span = c.Tracing.Tracer().Start(hctx, string(e.EventType)+" process", trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(
				attribute.String("messaging.system", "eventmart"),
				attribute.String("messaging.operation.type", "process"),
				attribute.String("messaging.destination.name", m.Topic),
				attribute.String("messaging.consumer.group.name", c.Group),
				attribute.Int("messaging.destination.partition.id", int(m.Partition)),
				attribute.Int64("messaging.kafka.offset", m.Offset),
				attribute.String("messaging.message.id", e.EventID),
				attribute.String("eventmart.event_type", string(e.EventType)),
				attribute.String("eventmart.correlation_id", e.CorrelationID),
				attribute.String("eventmart.causation_id", e.CausationID),
				attribute.String("eventmart.service", c.Group),
			))
	}
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			wrote, err = false, &HandlerError{Envelope: e, Err: fmt.Errorf("panic: %v", r), ctx: hctx}
		}
		if ev := c.metricsOf(m); ev != nil {
			ev.Duration.Observe(time.Since(start).Seconds())
		}
		if span != nil {
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, "handler failed")
			}
			span.End()
		}
	}()
	if err := h(hctx, tx, e, p); err != nil {
		return false, "", &HandlerError{Envelope: e, Err: err, ctx: hctx}
	}
	return true, obs.OutcomeProcessed, nil
}

// ignored reports whether m's eventType header names a catalog type no
// handler here wants: another group's event, skipped without decoding.
func (c *Consumer) ignored(m *bus.Message) bool {
	typ := event.Type(m.Header(eventmsg.HeaderEventType))
	_, mine := c.Handlers[typ]
	_, known := event.Lookup(typ)
	return known && !mine
}

// HandlerError says which event's handler failed.
type HandlerError struct {
	Envelope *event.Envelope
	Err      error
	ctx      context.Context // the handler's: its trace context, for the log
}

func (e *HandlerError) Error() string {
	return fmt.Sprintf("inbox: handle %s %s: %v", e.Envelope.EventType, e.Envelope.EventID, e.Err)
}

func (e *HandlerError) Unwrap() error { return e.Err }
