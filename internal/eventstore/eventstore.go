// Package eventstore keeps streams of a service's domain events in the
// service's own database (SQLite or PostgreSQL, through sqldb): each event
// has a version within its stream and a global position.
//
// Contracts:
//   - Append writes events at the end of a stream if the stream is at the
//     version the caller expects; otherwise it fails with an error for which
//     errors.Is(err, ErrConflict) holds, and the caller re-reads, decides
//     again and appends again (see Retry). Appends are idempotent by event
//     id: appending events whose first id is already stored is a no-op.
//   - Append runs in the caller's transaction: the events, the projections
//     updated from them and the outbox rows of the integration events they
//     cause commit together or not at all.
//   - ReadAll returns events in an order every reader sees the same and
//     never passes an event that commits later (see ReadAll).
//   - A command that conflicts re-reads and decides again: Retry runs it
//     in a fresh transaction per try, RetryInTx behind a savepoint in a
//     transaction the caller owns (an inbox handler's). An aggregate
//     appending at commit (Aggregate.AppendAtCommit) meets a conflict as
//     its transaction commits, and InTx runs the whole transaction again
//     (sqldb.ErrRunAgain).
//   - Reads return events as stored, with their schema version; a
//     service's Catalog upcasts older versions as it decodes them
//     (DecodeFrom). Stored events are never rewritten.
package eventstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/eventmart/eventmart/internal/sqldb"
)

// Migration creates the store's tables; services that keep streams include
// it among their migrations. tx_id is the writing transaction's id on
// PostgreSQL (0 on SQLite), the fence of ReadAll.
const Migration = `
CREATE TABLE IF NOT EXISTS es_events (
	position      {{ID}},
	stream_id     TEXT NOT NULL,
	version       BIGINT NOT NULL,
	event_id      TEXT NOT NULL UNIQUE,
	event_type    TEXT NOT NULL,
	event_version TEXT NOT NULL,
	data          TEXT NOT NULL,
	metadata      TEXT NOT NULL,
	recorded_at   BIGINT NOT NULL,
	tx_id         {{TXID}},
	UNIQUE (stream_id, version)
);
CREATE INDEX IF NOT EXISTS es_events_by_tx ON es_events (tx_id, position);
CREATE TABLE IF NOT EXISTS es_snapshots (
	stream_id      TEXT PRIMARY KEY,
	version        BIGINT NOT NULL,
	schema_version BIGINT NOT NULL,
	data           TEXT NOT NULL,
	taken_at       BIGINT NOT NULL
);`

// SQLiteMigration follows Migration on SQLite: it drops es_events_by_tx,
// which only ReadAll's fence on PostgreSQL reads. On SQLite tx_id is always
// 0 and ReadAll reads in position order (the rowid's), so the index cost
// an insert into a B-tree of its own per event appended, and its page
// written to the WAL per commit, for no query. An older release on a
// database without it still works (its ReadAll sorts instead of walking
// the index).
const SQLiteMigration = `DROP INDEX IF EXISTS es_events_by_tx;`

// ErrConflict is wrapped by the error of an append whose expectation of the
// stream's version did not hold, or that lost a race with a concurrent
// append to the same stream.
var ErrConflict = errors.New("eventstore: stream version conflict")

// ConflictError says which expectation failed.
type ConflictError struct {
	Stream   string
	Expected Expected
	Actual   int64 // the stream's version when checked; -1 when a concurrent append won
}

func (e *ConflictError) Error() string {
	if e.Actual < 0 {
		return fmt.Sprintf("eventstore: stream %s: a concurrent append won (expected %s)", e.Stream, e.Expected)
	}
	return fmt.Sprintf("eventstore: stream %s is at version %d, expected %s", e.Stream, e.Actual, e.Expected)
}

// Unwrap makes errors.Is(err, ErrConflict) hold.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// Expected is what an append expects of its stream's version.
type Expected struct {
	kind    expectKind
	version int64
}

type expectKind int

const (
	expectAny expectKind = iota
	expectNoStream
	expectExists
	expectExact
)

// The expectations, as in EventStoreDB: Any appends whatever the version;
// NoStream only to a stream with no event yet; StreamExists only to one
// with at least one; Exactly(v) only to a stream at version v (0 is
// NoStream).
var (
	Any          = Expected{kind: expectAny}
	NoStream     = Expected{kind: expectNoStream}
	StreamExists = Expected{kind: expectExists}
)

// Exactly expects the stream to be at version v (v events appended).
func Exactly(v int64) Expected { return Expected{kind: expectExact, version: v} }

func (x Expected) String() string {
	switch x.kind {
	case expectNoStream:
		return "no stream"
	case expectExists:
		return "an existing stream"
	case expectExact:
		return fmt.Sprintf("version %d", x.version)
	}
	return "any version"
}

func (x Expected) holds(actual int64) bool {
	switch x.kind {
	case expectNoStream:
		return actual == 0
	case expectExists:
		return actual > 0
	case expectExact:
		return actual == x.version
	}
	return true
}

// Event is one stored domain event. Callers fill ID, Type, SchemaVersion,
// Data and (optionally) Metadata and Time; the store sets the rest.
type Event struct {
	ID            string          // unique; appending an id twice is a no-op
	Type          string          // e.g. "OrderPlaced"
	SchemaVersion string          // the payload's version, "v1"…, for upcasting on read
	Data          json.RawMessage // the payload
	Metadata      json.RawMessage // correlation and causation, who; "{}" when empty
	Time          time.Time       // when it happened; the append time when zero

	Stream   string // set by the store
	Version  int64  // 1 for a stream's first event
	Position int64  // global, increasing in append order on SQLite; see ReadAll
	txID     int64
}

// MaxAppend bounds the events of one append: a command decides a handful.
const MaxAppend = 1000

// Append appends events to stream within tx if the stream is at the version
// expected, and returns the stream's version after it. If the first event's
// id is already stored in the stream the append was made before (a
// redelivered command): it returns the stream's current version and
// writes nothing.
func Append(ctx context.Context, tx *sqldb.Tx, stream string, expected Expected, events ...Event) (int64, error) {
	if stream == "" {
		return 0, errors.New("eventstore: append: empty stream id")
	}
	if len(events) == 0 || len(events) > MaxAppend {
		return 0, fmt.Errorf("eventstore: append to %s: %d events, want 1 to %d", stream, len(events), MaxAppend)
	}
	// The stream's version and whether the first event is stored in it,
	// in one round trip (two index lookups).
	var current, stored int64
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0),
		(SELECT COUNT(*) FROM es_events WHERE event_id = ? AND stream_id = ?) FROM es_events WHERE stream_id = ?`,
		events[0].ID, stream, stream).Scan(&current, &stored); err != nil {
		return 0, fmt.Errorf("eventstore: append to %s: %w", stream, err)
	}
	if stored > 0 {
		return current, nil
	}
	if p := pendingAppends(tx); p != nil && p.version(stream) > 0 {
		// Inserted now, its events would precede those at commit in the
		// store's order (position) though they follow them in the stream.
		return 0, fmt.Errorf("eventstore: append to %s: the transaction appends to it at commit already (Aggregate.AppendAtCommit)", stream)
	}
	if !expected.holds(current) {
		return 0, &ConflictError{Stream: stream, Expected: expected, Actual: current}
	}
	return insertAt(ctx, tx, stream, expected, current, events)
}

// insertAt inserts events at the versions after current, in one statement:
// a stream that has moved past current since the caller read it (another
// transaction's append) fails the insert on its (stream, version) key, a
// ConflictError.
func insertAt(ctx context.Context, tx *sqldb.Tx, stream string, expected Expected, current int64, events []Event) (int64, error) {
	if err := checkEvents(stream, events); err != nil {
		return 0, err
	}
	now := time.Now().UTC()
	var q strings.Builder
	q.WriteString(insertEvents + ` `)
	args := make([]any, 0, 8*len(events))
	for i, e := range events {
		md := metadataOf(e)
		at := e.Time
		if at.IsZero() {
			at = now
		}
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?)")
		args = append(args, stream, current+int64(i)+1, e.ID, e.Type, e.SchemaVersion, string(e.Data), string(md), at.UnixMicro())
	}
	if _, err := tx.Exec(ctx, q.String(), args...); err != nil {
		if sqldb.IsUniqueViolation(err) {
			// Another transaction appended to the stream (or stored one of
			// these ids) after this one read its version.
			return 0, &ConflictError{Stream: stream, Expected: expected, Actual: -1}
		}
		return 0, fmt.Errorf("eventstore: append to %s: %w", stream, err)
	}
	return current + int64(len(events)), nil
}

// insertEvents heads an insert of events.
const insertEvents = `INSERT INTO es_events (stream_id, version, event_id, event_type, event_version, data, metadata, recorded_at) VALUES`

// checkEvents returns an error if an event to append to stream lacks what
// the store needs of it.
func checkEvents(stream string, events []Event) error {
	for i, e := range events {
		if e.ID == "" || e.Type == "" || e.SchemaVersion == "" || len(e.Data) == 0 {
			return fmt.Errorf("eventstore: append to %s: event %d lacks an id, type, schema version or data", stream, i)
		}
	}
	return nil
}

// metadataOf returns e's metadata as stored: {} for none.
func metadataOf(e Event) json.RawMessage {
	if len(e.Metadata) == 0 {
		return json.RawMessage("{}")
	}
	return e.Metadata
}

// Querier runs reads: a *sqldb.DB, or a *sqldb.Tx to read what it wrote.
type Querier interface {
	Query(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRow(ctx context.Context, q string, args ...any) *sql.Row
}

const eventColumns = `position, stream_id, version, event_id, event_type, event_version, data, metadata, recorded_at, tx_id`

// ReadStream returns the events of stream after version after (0: from the
// start), in version order, at most limit (≤ 0: all). Read through a
// transaction, they include those it appends at commit.
func ReadStream(ctx context.Context, q Querier, stream string, after int64, limit int) ([]Event, error) {
	query := `SELECT ` + eventColumns + ` FROM es_events WHERE stream_id = ? AND version > ? ORDER BY version`
	args := []any{stream, after}
	if limit > 0 {
		query += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("eventstore: read %s: %w", stream, err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("eventstore: read %s: %w", stream, err)
	}
	if limit <= 0 || len(evs) < limit {
		if len(evs) > 0 {
			after = evs[len(evs)-1].Version
		}
		more := pendingAfter(q, stream, after)
		if limit > 0 {
			more = more[:min(len(more), limit-len(evs))]
		}
		evs = append(evs, more...)
	}
	return evs, nil
}

// StreamVersion returns the version of stream (0 when it has no event);
// read through a transaction, with the events it appends at commit.
func StreamVersion(ctx context.Context, q Querier, stream string) (int64, error) {
	var v int64
	if err := q.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM es_events WHERE stream_id = ?`, stream).Scan(&v); err != nil {
		return 0, fmt.Errorf("eventstore: version of %s: %w", stream, err)
	}
	if tx, ok := q.(*sqldb.Tx); ok {
		if p := pendingAppends(tx); p != nil {
			v = max(v, p.version(stream))
		}
	}
	return v, nil
}

// ReadCategory calls fn with every event of the streams whose id starts
// with prefix ("stock-": every product's stock), stream after stream in
// id order, each in version order: what rebuilding a projection of one
// kind of stream from the store reads. An error from fn stops it. It does
// not see the events a transaction appends at commit.
func ReadCategory(ctx context.Context, q Querier, prefix string, fn func(Event) error) error {
	if prefix == "" {
		return errors.New("eventstore: read category: empty prefix")
	}
	// The ids in [prefix, prefix with its last byte incremented): a range
	// of the (stream_id, version) index, unlike LIKE with its wildcards.
	end := []byte(prefix)
	end[len(end)-1]++
	rows, err := q.Query(ctx, `SELECT `+eventColumns+` FROM es_events WHERE stream_id >= ? AND stream_id < ? ORDER BY stream_id, version`,
		prefix, string(end))
	if err != nil {
		return fmt.Errorf("eventstore: read category %s: %w", prefix, err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return fmt.Errorf("eventstore: read category %s: %w", prefix, err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("eventstore: read category %s: %w", prefix, err)
	}
	return nil
}

func scanEvents(rows *sql.Rows) ([]Event, error) {
	defer rows.Close()
	var evs []Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		evs = append(evs, e)
	}
	return evs, rows.Err()
}

func scanEvent(rows *sql.Rows) (Event, error) {
	var e Event
	var data, md string
	var at int64
	if err := rows.Scan(&e.Position, &e.Stream, &e.Version, &e.ID, &e.Type, &e.SchemaVersion, &data, &md, &at, &e.txID); err != nil {
		return e, err
	}
	e.Data, e.Metadata, e.Time = json.RawMessage(data), json.RawMessage(md), time.UnixMicro(at).UTC()
	return e, nil
}
