package inbox

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/obs"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// FailuresMigration creates the tables of parked retries and dead letters;
// services include it among their migrations.
const FailuresMigration = `
CREATE TABLE IF NOT EXISTS retry_queue (
	id              {{ID}},
	grp             TEXT NOT NULL,
	topic           TEXT NOT NULL,
	part            BIGINT NOT NULL,
	msg_offset      BIGINT NOT NULL,
	msg_key         {{BLOB}},
	value           {{BLOB}} NOT NULL,
	headers         TEXT NOT NULL,
	event_id        TEXT NOT NULL,
	event_type      TEXT NOT NULL,
	attempts        BIGINT NOT NULL,
	last_error      TEXT NOT NULL,
	first_failed_at BIGINT NOT NULL,
	next_attempt_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS retry_queue_due ON retry_queue (next_attempt_at);
CREATE TABLE IF NOT EXISTS dead_letters (
	id              {{ID}},
	grp             TEXT NOT NULL,
	topic           TEXT NOT NULL,
	part            BIGINT NOT NULL,
	msg_offset      BIGINT NOT NULL,
	msg_key         {{BLOB}},
	value           {{BLOB}} NOT NULL,
	headers         TEXT NOT NULL,
	event_id        TEXT NOT NULL,
	event_type      TEXT NOT NULL,
	error           TEXT NOT NULL,
	permanent       BIGINT NOT NULL,
	attempts        BIGINT NOT NULL,
	first_failed_at BIGINT NOT NULL,
	dead_at         BIGINT NOT NULL,
	status          TEXT NOT NULL,
	updated_at      BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_status ON dead_letters (status, id);`

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

// Retry policy defaults (see Consumer).
const (
	DefaultInPlaceRetries = 3
	DefaultMaxAttempts    = 8
)

// DefaultRetryDelays are the waits before the delayed retries of a parked
// event: attempt 4 after 1s, 5 after 5s, … then the dead-letter queue.
var DefaultRetryDelays = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute}

// DeadLetter is a record the consumer group gave up on, with the original
// record and why.
type DeadLetter struct {
	ID        int64  `json:"id"`
	Group     string `json:"group"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Key       string `json:"key"`
	Value     string `json:"value"` // the record as received (an envelope, or what a bad producer sent), when it is UTF-8 text
	// ValueBase64 holds the record instead, base64-encoded, when it is not
	// UTF-8 text (Value is then ""): JSON strings cannot carry such bytes.
	ValueBase64   string       `json:"valueBase64,omitempty"`
	Headers       []bus.Header `json:"headers"`
	EventID       string       `json:"eventId,omitempty"`
	EventType     string       `json:"eventType,omitempty"`
	Error         string       `json:"error"`
	Permanent     bool         `json:"permanent"`
	Attempts      int64        `json:"attempts"`
	FirstFailedAt time.Time    `json:"firstFailedAt"`
	DeadAt        time.Time    `json:"deadAt"`
	Status        string       `json:"status"` // dead, redriven, discarded
	UpdatedAt     time.Time    `json:"updatedAt"`

	raw []byte // the record's value, byte for byte
}

// Dead-letter statuses.
const (
	StatusDead      = "dead"
	StatusRedriven  = "redriven"
	StatusDiscarded = "discarded"
)

func (c *Consumer) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func headersJSON(m *bus.Message) string {
	b, _ := json.Marshal(m.Headers)
	return string(b)
}

// park moves m to the retry queue, after attempts failed attempts.
func (c *Consumer) park(ctx context.Context, tx *sqldb.Tx, m *bus.Message, cause error, attempts int64, firstFailed time.Time) error {
	now := c.now()
	delay := c.retryDelay(attempts)
	_, err := tx.Exec(ctx, `INSERT INTO retry_queue (grp, topic, part, msg_offset, msg_key, value, headers, event_id, event_type, attempts, last_error, first_failed_at, next_attempt_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.Group, m.Topic, m.Partition, m.Offset, m.Key, m.Value, headersJSON(m), m.Header(eventmsg.HeaderEventID), m.Header(eventmsg.HeaderEventType),
		attempts, cause.Error(), firstFailed.UnixMilli(), now.Add(delay).UnixMilli())
	if err != nil {
		return fmt.Errorf("inbox: park %s: %w", m.Header(eventmsg.HeaderEventID), err)
	}
	c.count(&c.stats.Parked)
	if ev := c.metricsOf(m); ev != nil {
		ev.Parked.Inc()
	}
	c.Log.WarnContext(eventmsg.ContextWithTrace(ctx, m), "event parked for a delayed retry", "group", c.Group, "eventType", m.Header(eventmsg.HeaderEventType),
		"eventId", m.Header(eventmsg.HeaderEventID), "correlationId", m.Header(eventmsg.HeaderCorrelationID), "causationId", m.Header(eventmsg.HeaderCausationID),
		"attempts", attempts, "retry_in", delay, "error", cause)
	return nil
}

func (c *Consumer) retryDelay(attempts int64) time.Duration {
	delays := c.RetryDelays
	if delays == nil {
		delays = DefaultRetryDelays
	}
	i := int(attempts) - c.inPlace()
	return delays[min(max(i, 0), len(delays)-1)]
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

// deadLetter records m in the dead-letter queue.
func (c *Consumer) deadLetter(ctx context.Context, tx *sqldb.Tx, m *bus.Message, cause error, attempts int64, firstFailed time.Time) error {
	now := c.now().UnixMilli()
	perm := 0
	if IsPermanent(cause) {
		perm = 1
	}
	_, err := tx.Exec(ctx, `INSERT INTO dead_letters (grp, topic, part, msg_offset, msg_key, value, headers, event_id, event_type, error, permanent, attempts, first_failed_at, dead_at, status, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.Group, m.Topic, m.Partition, m.Offset, m.Key, m.Value, headersJSON(m), m.Header(eventmsg.HeaderEventID), m.Header(eventmsg.HeaderEventType),
		cause.Error(), perm, attempts, firstFailed.UnixMilli(), now, StatusDead, now)
	if err != nil {
		return fmt.Errorf("inbox: dead-letter %s/%d@%d: %w", m.Topic, m.Partition, m.Offset, err)
	}
	c.count(&c.stats.DeadLettered)
	if ev := c.metricsOf(m); ev != nil {
		ev.DeadLettered.Inc()
	}
	c.Log.ErrorContext(eventmsg.ContextWithTrace(ctx, m), "event dead-lettered", "group", c.Group, "topic", m.Topic, "partition", m.Partition, "offset", m.Offset,
		"eventType", m.Header(eventmsg.HeaderEventType), "eventId", m.Header(eventmsg.HeaderEventID), "correlationId", m.Header(eventmsg.HeaderCorrelationID),
		"causationId", m.Header(eventmsg.HeaderCausationID),
		"attempts", attempts, "permanent", perm == 1, "error", cause)
	return nil
}

// RetryDue retries the parked events whose time has come, each in its own
// transaction, and returns how many it took up. Success removes an event
// from the queue; failure schedules the next attempt, or dead-letters it
// after MaxAttempts (at once if permanent).
func (c *Consumer) RetryDue(ctx context.Context) (int, error) {
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
	for _, d := range dues {
		wrote := false
		var outcome string
		err := c.DB.InTx(ctx, func(tx *sqldb.Tx) error {
			var herr error
			wrote, outcome, herr = c.processIsolated(ctx, tx, d.m)
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

// Depths returns how many of the group's events wait in the delayed-retry
// queue and how many dead letters it has (status dead): the gauges behind
// the "DLQ non-empty" alert.
func (c *Consumer) Depths(ctx context.Context) (retrying, dead int64, err error) {
	if err := c.DB.QueryRow(ctx, `SELECT COUNT(*) FROM retry_queue WHERE grp = ?`, c.Group).Scan(&retrying); err != nil {
		return 0, 0, fmt.Errorf("inbox: retry queue depth: %w", err)
	}
	if err := c.DB.QueryRow(ctx, `SELECT COUNT(*) FROM dead_letters WHERE status = ? AND grp = ?`, StatusDead, c.Group).Scan(&dead); err != nil {
		return 0, 0, fmt.Errorf("inbox: dead letters: %w", err)
	}
	return retrying, dead, nil
}

// RunRetries runs RetryDue every interval until ctx is cancelled.
func (c *Consumer) RunRetries(ctx context.Context, interval time.Duration) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if _, err := c.RetryDue(ctx); err != nil && ctx.Err() == nil {
				c.Log.Error("delayed retries failed; trying again at the next tick", "group", c.Group, "error", err)
			}
		}
	}
}

const deadLetterColumns = `id, grp, topic, part, msg_offset, msg_key, value, headers, event_id, event_type, error, permanent, attempts, first_failed_at, dead_at, status, updated_at`

func scanDeadLetter(r interface{ Scan(...any) error }) (*DeadLetter, error) {
	var d DeadLetter
	var key, value []byte
	var hdr string
	var perm, first, dead, updated int64
	if err := r.Scan(&d.ID, &d.Group, &d.Topic, &d.Partition, &d.Offset, &key, &value, &hdr, &d.EventID, &d.EventType,
		&d.Error, &perm, &d.Attempts, &first, &dead, &d.Status, &updated); err != nil {
		return nil, err
	}
	d.Key, d.raw, d.Permanent = string(key), value, perm == 1
	if utf8.Valid(value) {
		d.Value = string(value)
	} else {
		d.ValueBase64 = base64.StdEncoding.EncodeToString(value)
	}
	json.Unmarshal([]byte(hdr), &d.Headers)
	d.FirstFailedAt, d.DeadAt, d.UpdatedAt = time.UnixMilli(first).UTC(), time.UnixMilli(dead).UTC(), time.UnixMilli(updated).UTC()
	return &d, nil
}

// DeadLetters lists the group's dead letters with status ("" for any),
// oldest first.
func (c *Consumer) DeadLetters(ctx context.Context, status string, limit, offset int) ([]*DeadLetter, error) {
	rows, err := c.DB.Query(ctx, `SELECT `+deadLetterColumns+` FROM dead_letters WHERE grp = ? AND (? = '' OR status = ?) ORDER BY id LIMIT ? OFFSET ?`,
		c.Group, status, status, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("inbox: dead letters: %w", err)
	}
	defer rows.Close()
	out := []*DeadLetter{}
	for rows.Next() {
		d, err := scanDeadLetter(rows)
		if err != nil {
			return nil, fmt.Errorf("inbox: dead letters: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DeadLetter returns one dead letter; ENOTFOUND if there is none.
func (c *Consumer) DeadLetter(ctx context.Context, id int64) (*DeadLetter, error) {
	d, err := scanDeadLetter(c.DB.QueryRow(ctx, `SELECT `+deadLetterColumns+` FROM dead_letters WHERE grp = ? AND id = ?`, c.Group, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, eventmart.Errorf(eventmart.ENOTFOUND, "no dead letter %d in %s", id, c.Group)
	}
	if err != nil {
		return nil, fmt.Errorf("inbox: dead letter %d: %w", id, err)
	}
	return d, nil
}

// Redrive sends dead letters back to their group: they are queued for an
// immediate retry with a fresh attempt count, and marked redriven.
// ids nil redrives every dead letter in status "dead". Idempotent handlers
// make a redrive of an event that did get applied harmless. It returns how
// many it queued; a named id that is not "dead" is ECONFLICT.
func (c *Consumer) Redrive(ctx context.Context, ids []int64) (int, error) {
	n := 0
	err := c.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		q := `SELECT ` + deadLetterColumns + ` FROM dead_letters WHERE grp = ? AND status = ?`
		args := []any{c.Group, StatusDead}
		if ids != nil {
			if len(ids) != 1 {
				return eventmart.Errorf(eventmart.EINVALID, "redrive one id or all")
			}
			q += ` AND id = ?`
			args = append(args, ids[0])
		}
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		var letters []*DeadLetter
		for rows.Next() {
			d, err := scanDeadLetter(rows)
			if err != nil {
				rows.Close()
				return err
			}
			letters = append(letters, d)
		}
		rows.Close()
		if ids != nil && len(letters) == 0 {
			if _, err := c.DeadLetter(ctx, ids[0]); err != nil {
				return err
			}
			return eventmart.Errorf(eventmart.ECONFLICT, "dead letter %d was already redriven or discarded", ids[0])
		}
		now := c.now().UnixMilli()
		for _, d := range letters {
			hdr, _ := json.Marshal(d.Headers)
			if _, err := tx.Exec(ctx, `INSERT INTO retry_queue (grp, topic, part, msg_offset, msg_key, value, headers, event_id, event_type, attempts, last_error, first_failed_at, next_attempt_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)`,
				c.Group, d.Topic, d.Partition, d.Offset, []byte(d.Key), d.raw, string(hdr), d.EventID, d.EventType,
				d.Error, d.FirstFailedAt.UnixMilli(), now); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE dead_letters SET status = ?, updated_at = ? WHERE id = ?`, StatusRedriven, now, d.ID); err != nil {
				return err
			}
		}
		n = len(letters)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Discard marks a dead letter discarded: it stays for the record but is
// never retried. ECONFLICT unless it is "dead".
func (c *Consumer) Discard(ctx context.Context, id int64) error {
	d, err := c.DeadLetter(ctx, id)
	if err != nil {
		return err
	}
	if d.Status != StatusDead {
		return eventmart.Errorf(eventmart.ECONFLICT, "dead letter %d is %s", id, d.Status)
	}
	_, err = c.DB.Exec(ctx, `UPDATE dead_letters SET status = ?, updated_at = ? WHERE id = ? AND status = ?`, StatusDiscarded, c.now().UnixMilli(), id, StatusDead)
	return err
}
