// Package deadletter is a consumer group's dead-letter queue: the records
// the group gave up on (see the retry policy in internal/inbox/retry.go),
// each kept byte for byte with why, and the admin API over them — list,
// get, redrive (back to the group for an immediate retry with a fresh
// attempt count) and discard.
package deadletter

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
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Migration creates the tables of failed events: the retry queue, where
// the inbox parks events for a delayed retry and a redrive queues them
// again, and the dead letters. Services include it among their migrations.
const Migration = `
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

// Store is the dead-letter queue of one consumer group in its service's
// database.
type Store struct {
	DB    *sqldb.DB
	Group string
	Now   func() time.Time // default time.Now
	// Queued, if set, is called after a redrive that queued events has
	// committed (to wake the group's delayed retries).
	Queued func()
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Add records m in the dead-letter queue in tx, after attempts failed
// attempts, the first at firstFailed; cause is why, permanent whether
// retrying could not have fixed it.
func (s *Store) Add(ctx context.Context, tx *sqldb.Tx, m *bus.Message, cause error, permanent bool, attempts int64, firstFailed time.Time) error {
	now := s.now().UnixMilli()
	perm := 0
	if permanent {
		perm = 1
	}
	hdr, _ := json.Marshal(m.Headers)
	_, err := tx.Exec(ctx, `INSERT INTO dead_letters (grp, topic, part, msg_offset, msg_key, value, headers, event_id, event_type, error, permanent, attempts, first_failed_at, dead_at, status, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		s.Group, m.Topic, m.Partition, m.Offset, m.Key, m.Value, string(hdr), m.Header(eventmsg.HeaderEventID), m.Header(eventmsg.HeaderEventType),
		cause.Error(), perm, attempts, firstFailed.UnixMilli(), now, StatusDead, now)
	if err != nil {
		return fmt.Errorf("deadletter: add %s/%d@%d: %w", m.Topic, m.Partition, m.Offset, err)
	}
	return nil
}

// Depths returns how many of the group's events wait in the delayed-retry
// queue and how many dead letters it has (status dead): the gauges behind
// the "DLQ non-empty" alert.
func (s *Store) Depths(ctx context.Context) (retrying, dead int64, err error) {
	if err := s.DB.QueryRow(ctx, `SELECT COUNT(*) FROM retry_queue WHERE grp = ?`, s.Group).Scan(&retrying); err != nil {
		return 0, 0, fmt.Errorf("deadletter: retry queue depth: %w", err)
	}
	if err := s.DB.QueryRow(ctx, `SELECT COUNT(*) FROM dead_letters WHERE status = ? AND grp = ?`, StatusDead, s.Group).Scan(&dead); err != nil {
		return 0, 0, fmt.Errorf("deadletter: dead letters: %w", err)
	}
	return retrying, dead, nil
}

const deadLetterColumns = `id, grp, topic, part, msg_offset, msg_key, value, headers, event_id, event_type, error, permanent, attempts, first_failed_at, dead_at, status, updated_at`

func scanDeadLetter(r sqldb.Scanner) (*DeadLetter, error) {
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

// List lists the group's dead letters with status ("" for any),
// oldest first.
func (s *Store) List(ctx context.Context, status string, limit, offset int) ([]*DeadLetter, error) {
	out, err := sqldb.List(ctx, s.DB, `SELECT `+deadLetterColumns+` FROM dead_letters WHERE grp = ? AND (? = '' OR status = ?) ORDER BY id LIMIT ? OFFSET ?`,
		[]any{s.Group, status, status, limit, offset}, scanDeadLetter)
	if err != nil {
		return nil, fmt.Errorf("deadletter: dead letters: %w", err)
	}
	return out, nil
}

// Get returns one dead letter; ENOTFOUND if there is none.
func (s *Store) Get(ctx context.Context, id int64) (*DeadLetter, error) {
	d, err := scanDeadLetter(s.DB.QueryRow(ctx, `SELECT `+deadLetterColumns+` FROM dead_letters WHERE grp = ? AND id = ?`, s.Group, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, eventmart.Errorf(eventmart.ENOTFOUND, "no dead letter %d in %s", id, s.Group)
	}
	if err != nil {
		return nil, fmt.Errorf("deadletter: dead letter %d: %w", id, err)
	}
	return d, nil
}

// Redrive sends dead letters back to their group: they are queued for an
// immediate retry with a fresh attempt count, and marked redriven.
// ids nil redrives every dead letter in status "dead". Idempotent handlers
// make a redrive of an event that did get applied harmless. It returns how
// many it queued; a named id that is not "dead" is ECONFLICT.
func (s *Store) Redrive(ctx context.Context, ids []int64) (int, error) {
	n := 0
	err := s.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		q := `SELECT ` + deadLetterColumns + ` FROM dead_letters WHERE grp = ? AND status = ?`
		args := []any{s.Group, StatusDead}
		if ids != nil {
			if len(ids) != 1 {
				return eventmart.Errorf(eventmart.EINVALID, "redrive one id or all")
			}
			q += ` AND id = ?`
			args = append(args, ids[0])
		}
		letters, err := sqldb.List(ctx, tx, q, args, scanDeadLetter)
		if err != nil {
			return err
		}
		if ids != nil && len(letters) == 0 {
			if _, err := s.Get(ctx, ids[0]); err != nil {
				return err
			}
			return eventmart.Errorf(eventmart.ECONFLICT, "dead letter %d was already redriven or discarded", ids[0])
		}
		now := s.now().UnixMilli()
		for _, d := range letters {
			hdr, _ := json.Marshal(d.Headers)
			if _, err := tx.Exec(ctx, `INSERT INTO retry_queue (grp, topic, part, msg_offset, msg_key, value, headers, event_id, event_type, attempts, last_error, first_failed_at, next_attempt_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)`,
				s.Group, d.Topic, d.Partition, d.Offset, []byte(d.Key), d.raw, string(hdr), d.EventID, d.EventType,
				d.Error, d.FirstFailedAt.UnixMilli(), now); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE dead_letters SET status = ?, updated_at = ? WHERE id = ?`, StatusRedriven, now, d.ID); err != nil {
				return err
			}
		}
		n = len(letters)
		if n > 0 && s.Queued != nil {
			tx.OnCommit(s.Queued)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Discard marks a dead letter discarded: it stays for the record but is
// never retried. ECONFLICT unless it is "dead".
func (s *Store) Discard(ctx context.Context, id int64) error {
	d, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	if d.Status != StatusDead {
		return eventmart.Errorf(eventmart.ECONFLICT, "dead letter %d is %s", id, d.Status)
	}
	_, err = s.DB.Exec(ctx, `UPDATE dead_letters SET status = ?, updated_at = ? WHERE id = ? AND status = ?`, StatusDiscarded, s.now().UnixMilli(), id, StatusDead)
	return err
}
