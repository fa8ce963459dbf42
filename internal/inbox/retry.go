package inbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/obs"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// The retry policy: what happens to a record whose handler fails.
//
//   - A permanent error (Permanent; an undecodable record, an unknown type
//     or version, a schema violation) is dead-lettered at once.
//   - Otherwise the batch is redelivered by the bus after its backoff: the
//     record is retried in place, InPlaceRetries times in all (default 3).
//   - Then it is parked in the retry queue and retried without blocking its
//     partition (RetryDue), after RetryDelays (default 1s, 5s, 30s, 2m,
//     10m), until MaxAttempts in all (default 8).
//   - Then it is dead-lettered (package deadletter), where an operator can
//     redrive it (a fresh attempt count) or discard it.
//
// A record's attempt is counted once per delivery: not again when its
// transaction function runs again, nor when a combined round is retried
// batch by batch.

// Retry policy defaults (see Consumer).
const (
	DefaultInPlaceRetries = 3
	DefaultMaxAttempts    = 8
)

// DefaultRetryDelays are the waits before the delayed retries of a parked
// event: attempt 4 after 1s, 5 after 5s, … then the dead-letter queue.
var DefaultRetryDelays = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent: the event goes straight to the
// dead-letter queue instead of being retried. Handlers use it for events
// that fail validation; undecodable records and unknown types or versions
// are permanent by themselves.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err was marked permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
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

// failure counts the in-place failures of one record.
type failure struct {
	n     int64
	first time.Time
}

// tallies is what a record-by-record transaction decided on its failing
// records, applied by settle once the transaction has ended (its function
// may run again).
type tallies struct {
	failed []failedRecord
	parked []string // keys of records parked: their in-place tally ends
}

type failedRecord struct {
	key   string
	m     *bus.Message
	first time.Time
}

func (t *tallies) reset() { t.failed, t.parked = t.failed[:0], t.parked[:0] }

// retry decides on m, whose handler failed with herr in tx, and returns
// its outcome: dead-lettered if permanent, else parked once it has failed
// InPlaceRetries times; before that, herr, which fails the transaction so
// that the bus redelivers the batch. With count false, herr at once, the
// attempt not counted (the caller applies the batch again, counting).
func (c *Consumer) retry(ctx context.Context, tx *sqldb.Tx, m *bus.Message, herr error, count bool, t *tallies) (string, error) {
	if IsPermanent(herr) {
		if err := c.deadLetter(ctx, tx, m, herr, 1, c.now()); err != nil {
			return "", err
		}
		return obs.OutcomeDeadLettered, nil
	}
	if !count {
		return "", herr
	}
	key := recordKey(m)
	f := c.tally(key)
	t.failed = append(t.failed, failedRecord{key, m, f.first})
	if f.n < int64(c.inPlace()) && f.n < c.maxAttempts() {
		return "", herr // the bus redelivers the batch after its backoff
	}
	if f.n >= c.maxAttempts() {
		// MaxAttempts counts every attempt, in place ones too: with fewer
		// than InPlaceRetries, the record is dead before any delayed retry.
		if err := c.deadLetter(ctx, tx, m, herr, f.n, f.first); err != nil {
			return "", err
		}
		t.parked = append(t.parked, key) // its tally ends with the transaction, as a parked one's
		return obs.OutcomeDeadLettered, nil
	}
	if err := c.park(ctx, tx, m, herr, f.n, f.first); err != nil {
		return "", err
	}
	t.parked = append(t.parked, key)
	return obs.OutcomeParked, nil
}

// settle counts the failures of a record-by-record transaction that ended
// with err; if it committed, the parked records' tallies end.
func (c *Consumer) settle(t *tallies, err error) error {
	for _, f := range t.failed {
		c.failed(f.key, f.m, f.first)
	}
	if err != nil {
		var he *HandlerError
		if errors.As(err, &he) {
			c.Log.WarnContext(he.ctx, "event handler failed; batch will be redelivered", "group", c.Group, "eventType", he.Envelope.EventType,
				"eventId", he.Envelope.EventID, "correlationId", he.Envelope.CorrelationID, "causationId", he.Envelope.CausationID, "error", he.Err)
		}
		return err
	}
	c.mu.Lock()
	for _, k := range t.parked {
		delete(c.attempts, k)
	}
	c.mu.Unlock()
	return nil
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

func (c *Consumer) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Consumer) inPlace() int {
	if c.InPlaceRetries > 0 {
		return c.InPlaceRetries
	}
	return DefaultInPlaceRetries
}

func (c *Consumer) maxAttempts() int64 {
	if c.MaxAttempts > 0 {
		return int64(c.MaxAttempts)
	}
	return DefaultMaxAttempts
}

func (c *Consumer) retryDelay(attempts int64) time.Duration {
	delays := c.RetryDelays
	if delays == nil {
		delays = DefaultRetryDelays
	}
	i := int(attempts) - c.inPlace()
	return delays[min(max(i, 0), len(delays)-1)]
}

// park moves m to the retry queue, after attempts failed attempts.
func (c *Consumer) park(ctx context.Context, tx *sqldb.Tx, m *bus.Message, cause error, attempts int64, firstFailed time.Time) error {
	now := c.now()
	delay := c.retryDelay(attempts)
	hdr, _ := json.Marshal(m.Headers)
	_, err := tx.Exec(ctx, `INSERT INTO retry_queue (grp, topic, part, msg_offset, msg_key, value, headers, event_id, event_type, attempts, last_error, first_failed_at, next_attempt_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.Group, m.Topic, m.Partition, m.Offset, m.Key, m.Value, string(hdr), m.Header(eventmsg.HeaderEventID), m.Header(eventmsg.HeaderEventType),
		attempts, cause.Error(), firstFailed.UnixMilli(), now.Add(delay).UnixMilli())
	if err != nil {
		return fmt.Errorf("inbox: park %s: %w", m.Header(eventmsg.HeaderEventID), err)
	}
	tx.OnCommit(c.WakeRetries)
	c.count(&c.stats.Parked)
	if ev := c.metricsOf(m); ev != nil {
		ev.Parked.Inc()
	}
	c.Log.WarnContext(eventmsg.ContextWithTrace(ctx, m), "event parked for a delayed retry", "group", c.Group, "eventType", m.Header(eventmsg.HeaderEventType),
		"eventId", m.Header(eventmsg.HeaderEventID), "correlationId", m.Header(eventmsg.HeaderCorrelationID), "causationId", m.Header(eventmsg.HeaderCausationID),
		"attempts", attempts, "retry_in", delay, "error", cause)
	return nil
}

// deadLetter records m in the group's dead-letter queue.
func (c *Consumer) deadLetter(ctx context.Context, tx *sqldb.Tx, m *bus.Message, cause error, attempts int64, firstFailed time.Time) error {
	perm := IsPermanent(cause)
	if err := c.DeadLetters().Add(ctx, tx, m, cause, perm, attempts, firstFailed); err != nil {
		return fmt.Errorf("inbox: %w", err)
	}
	c.count(&c.stats.DeadLettered)
	if ev := c.metricsOf(m); ev != nil {
		ev.DeadLettered.Inc()
	}
	c.Log.ErrorContext(eventmsg.ContextWithTrace(ctx, m), "event dead-lettered", "group", c.Group, "topic", m.Topic, "partition", m.Partition, "offset", m.Offset,
		"eventType", m.Header(eventmsg.HeaderEventType), "eventId", m.Header(eventmsg.HeaderEventID), "correlationId", m.Header(eventmsg.HeaderCorrelationID),
		"causationId", m.Header(eventmsg.HeaderCausationID),
		"attempts", attempts, "permanent", perm, "error", cause)
	return nil
}

// RetryDue retries the parked events whose time has come, each in its own
// transaction, and returns how many it took up. Success removes an event
// from the queue; failure schedules the next attempt, or dead-letters it
// after MaxAttempts (at once if permanent).
func (c *Consumer) RetryDue(ctx context.Context) (int, error) {
	c.setup.Do(c.compose)
	rows, err := c.DB.Query(ctx, `SELECT id, topic, part, msg_offset, msg_key, value, headers, attempts, first_failed_at
		FROM retry_queue WHERE grp = ? AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT 100`, c.Group, c.now().UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("inbox: due retries: %w", err)
	}
	type due struct {
		id, attempts, first int64
		m                   *bus.Message
	}
	var dues []due
	for rows.Next() {
		var d due
		var hdr string
		d.m = &bus.Message{}
		if err := rows.Scan(&d.id, &d.m.Topic, &d.m.Partition, &d.m.Offset, &d.m.Key, &d.m.Value, &hdr, &d.attempts, &d.first); err != nil {
			rows.Close()
			return 0, fmt.Errorf("inbox: due retries: %w", err)
		}
		json.Unmarshal([]byte(hdr), &d.m.Headers)
		dues = append(dues, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("inbox: due retries: %w", err)
	}
	r := new(record)
	for _, d := range dues {
		wrote := false
		var outcome string
		err := c.DB.InTx(ctx, func(tx *sqldb.Tx) error {
			var herr error
			ids := &eventIDs{asked: map[string]bool{}, done: map[string]bool{}}
			decs := c.decodeAll([]*bus.Message{d.m}, nil)
			if err := c.prepare(ctx, tx, decs, ids); err != nil {
				return err
			}
			wrote, outcome, herr = c.processIsolated(ctx, tx, d.m, decs[0], r, ids)
			if _, err := tx.Exec(ctx, `DELETE FROM retry_queue WHERE id = ?`, d.id); err != nil {
				return err
			}
			if herr == nil {
				return nil
			}
			c.count(&c.stats.Retried)
			if ev := c.metricsOf(d.m); ev != nil {
				ev.Retries.Inc()
			}
			attempts := d.attempts + 1
			if IsPermanent(herr) || attempts >= c.maxAttempts() {
				outcome = obs.OutcomeDeadLettered
				return c.deadLetter(ctx, tx, d.m, herr, attempts, time.UnixMilli(d.first))
			}
			outcome = obs.OutcomeParked
			return c.park(ctx, tx, d.m, herr, attempts, time.UnixMilli(d.first))
		})
		if err != nil {
			return 0, fmt.Errorf("inbox: retry %d: %w", d.id, err)
		}
		c.countConsumed([]consumed{{d.m, outcome}})
		if wrote && c.Committed != nil {
			c.Committed()
		}
	}
	return len(dues), nil
}

// RetryPoll is how long RunRetries waits at most without a nudge before
// it asks the retry queue again: an event parked by another instance of
// the service, or redriven through another instance's admin API, is
// retried within it of falling due. Those parked or redriven through this
// Consumer wake it at once (WakeRetries, after their commit).
const RetryPoll = 10 * time.Second

// retryErrorWait is how long RunRetries waits after a failed query before
// trying again.
const retryErrorWait = time.Second

// RunRetries retries parked events as they fall due (RetryDue) until ctx
// is cancelled. It costs no query while there is nothing to do: it learns
// when the queue's earliest event falls due and sleeps until then, or
// poll at most (RetryPoll in the services), or until WakeRetries.
func (c *Consumer) RunRetries(ctx context.Context, poll time.Duration) error {
	wake := c.retryWake()
	for ctx.Err() == nil {
		wait, err := c.retryRound(ctx, wake, poll)
		if err != nil && ctx.Err() == nil {
			c.Log.Error("delayed retries failed; trying again", "group", c.Group, "error", err, "retry_in", wait)
		}
		if wait <= 0 {
			continue
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-wake:
		case <-timer.C:
		}
		timer.Stop()
	}
	return nil
}

// retryRound runs the events due, if any, and returns how long to wait
// before the next round: until the earliest parked event falls due, or
// poll at most; 0 to go on at once (more may be due).
func (c *Consumer) retryRound(ctx context.Context, wake <-chan struct{}, poll time.Duration) (time.Duration, error) {
	// A wake sent before the lookup is answered by it: the lookup sees
	// every row committed before the signal (OnCommit runs after the
	// commit). One sent after it wakes the next wait.
	select {
	case <-wake:
	default:
	}
	next, ok, err := c.nextRetry(ctx)
	if err != nil {
		return min(poll, retryErrorWait), err
	}
	if !ok {
		return poll, nil
	}
	if wait := next.Sub(c.now()); wait > 0 {
		return min(poll, wait), nil
	}
	n, err := c.RetryDue(ctx)
	if err != nil {
		return min(poll, retryErrorWait), err
	}
	if n == 0 { // due by the lookup, taken by no one: do not spin
		return min(poll, retryErrorWait), nil
	}
	return 0, nil
}

// nextRetry returns when the group's earliest parked event falls due;
// false if none is parked.
func (c *Consumer) nextRetry(ctx context.Context) (time.Time, bool, error) {
	var next sql.NullInt64
	if err := c.DB.QueryRow(ctx, `SELECT MIN(next_attempt_at) FROM retry_queue WHERE grp = ?`, c.Group).Scan(&next); err != nil {
		return time.Time{}, false, fmt.Errorf("inbox: next retry: %w", err)
	}
	return time.UnixMilli(next.Int64), next.Valid, nil
}

// WakeRetries makes RunRetries look at the retry queue at once: an event
// was parked or redriven (called after the commit that queued it).
func (c *Consumer) WakeRetries() {
	select {
	case c.retryWake() <- struct{}{}:
	default: // a wake is pending already
	}
}

func (c *Consumer) retryWake() chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wake == nil {
		c.wake = make(chan struct{}, 1)
	}
	return c.wake
}
