package eventstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/eventmart/eventmart/internal/sqldb"
)

// Aggregate says how to rebuild the state S of one kind of stream from its
// events, and when to snapshot it. S must round-trip through encoding/json
// for snapshots.
type Aggregate[S any] struct {
	// Apply returns the state after e. It is pure: no I/O, no clock.
	Apply func(s S, e Event) (S, error)
	// SchemaVersion is the version of S's shape. A snapshot taken at another
	// version is stale: ignored, and replaced at the next save.
	SchemaVersion int
	// SnapshotEvery takes a snapshot when a save crosses a multiple of it
	// (0: never), so a load reads at most that many events after one.
	SnapshotEvery int64
	// Memory, when set, keeps the states of the streams this process
	// loaded and saved in committed transactions, so that a load reads
	// only the events after the remembered version (see Memory). nil: every
	// load reads the store.
	Memory *Memory[S]
	// AppendAtCommit defers Save's insert of the events to the
	// transaction's commit: a transaction's saves go to the store in one
	// multi-row statement, and a try of RetryInTx that writes nothing else
	// costs no savepoint. A stream another transaction appended to
	// meanwhile then fails the commit, not the save: the whole transaction
	// runs again (sqldb.ErrRunAgain), not the one command. So it suits
	// streams with one writer at a time: an order's (the consumer of its
	// partition), or a hot one whose writers all take a lock first (a
	// product's stock: its stock row, locked by every writer before it
	// loads) — not hot streams written without one, whose conflicts would
	// run whole transactions again, and not work that acts outside the
	// transaction on what it read (a payment provider's charge): only an
	// insert made at once claims the stream's next version, so that a
	// concurrent command waits for this one's commit instead of both
	// deciding on what they read.
	// Reads through the transaction see the events (Load, LoadMany,
	// ReadStream, StreamVersion); Append to such a stream in the same
	// transaction is refused.
	AppendAtCommit bool
	// Clone returns a copy of s that shares nothing Apply modifies: needed
	// with a Memory when Apply changes a state in place (a map it writes
	// to), since a remembered state must never change. nil: copying S's
	// value is enough (Apply replaces what it changes).
	Clone func(s S) S
}

// Load returns the state of stream and its version (0 and the zero S for a
// stream with no event), from its latest fresh snapshot and the events after it.
// An aggregate that never snapshots (SnapshotEvery 0) reads no snapshot: one
// query less per load of its short streams. With a Memory that remembers
// the stream, it starts from the remembered state instead of a snapshot.
func (a Aggregate[S]) Load(ctx context.Context, q Querier, stream string) (S, int64, error) {
	var s S
	var version int64
	var data string
	var schema int
	err := sql.ErrNoRows
	remembered := false
	if a.Memory != nil {
		if s, version, remembered = a.Memory.get(stream); remembered {
			s = a.clone(s)
		}
	}
	if a.SnapshotEvery > 0 && !remembered {
		err = q.QueryRow(ctx, `SELECT version, schema_version, data FROM es_snapshots WHERE stream_id = ?`, stream).Scan(&version, &schema, &data)
	}
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return s, 0, fmt.Errorf("eventstore: snapshot of %s: %w", stream, err)
	case schema == a.SchemaVersion:
		if err := json.Unmarshal([]byte(data), &s); err != nil {
			return s, 0, fmt.Errorf("eventstore: snapshot of %s: %w", stream, err)
		}
	default: // stale: rebuild from the first event
		version = 0
	}
	evs, err := ReadStream(ctx, q, stream, version, 0)
	if err != nil {
		return s, 0, err
	}
	for _, e := range evs {
		if s, err = a.Apply(s, e); err != nil {
			return s, 0, fmt.Errorf("eventstore: %s version %d (%s): %w", stream, e.Version, e.Type, err)
		}
		version = e.Version
	}
	if a.Memory != nil {
		a.Memory.note(q, stream, s, version)
	}
	return s, version, nil
}

// clone returns a copy of s the caller may change (Clone).
func (a Aggregate[S]) clone(s S) S {
	if a.Clone == nil {
		return s
	}
	return a.Clone(s)
}

// Save appends events to stream within tx, expecting it at version (as
// returned by Load), applies them to s and, when the new version crosses a
// multiple of SnapshotEvery, stores the resulting state as the stream's
// snapshot. It returns the new state and version.
//
// Unlike Append it does not read the stream's version first (one statement
// per command fewer): it inserts the events at the versions after version,
// and a stream that has moved on since the load fails that insert on its
// (stream, version) key, an ErrConflict. So events must be new ones (as
// Encode makes them): an append repeated with the ids of stored events is
// a conflict here, not the no-op it is for Append.
//
// With a Memory, the new state and version are remembered once tx commits;
// a failed save (a conflict among others) forgets the stream.
func (a Aggregate[S]) Save(ctx context.Context, tx *sqldb.Tx, stream string, s S, version int64, events ...Event) (S, int64, error) {
	s, next, err := a.save(ctx, tx, stream, s, version, events)
	if a.Memory != nil {
		if err != nil {
			a.Memory.forget(tx, stream)
		} else {
			a.Memory.note(tx, stream, s, next)
		}
	}
	return s, next, err
}

func (a Aggregate[S]) save(ctx context.Context, tx *sqldb.Tx, stream string, s S, version int64, events []Event) (S, int64, error) {
	if stream == "" || len(events) == 0 || len(events) > MaxAppend {
		return s, version, fmt.Errorf("eventstore: save %d events to stream %q: want a stream and 1 to %d events", len(events), stream, MaxAppend)
	}
	next := version + int64(len(events))
	var err error
	if a.AppendAtCommit {
		err = appendAtCommit(tx, stream, version, events)
	} else {
		next, err = insertAt(ctx, tx, stream, Exactly(version), version, events)
	}
	if err != nil {
		return s, version, err
	}
	for i := range events {
		events[i].Stream, events[i].Version = stream, version+int64(i)+1
		if s, err = a.Apply(s, events[i]); err != nil {
			return s, version, fmt.Errorf("eventstore: %s version %d (%s): %w", stream, events[i].Version, events[i].Type, err)
		}
	}
	if a.SnapshotEvery > 0 && next/a.SnapshotEvery > version/a.SnapshotEvery {
		if err := SaveSnapshot(ctx, tx, stream, next, a.SchemaVersion, s); err != nil {
			return s, version, err
		}
	}
	return s, next, nil
}

// SaveSnapshot stores state as stream's snapshot at version, replacing an
// older one (and a newer one of another schema version).
func SaveSnapshot(ctx context.Context, tx *sqldb.Tx, stream string, version int64, schemaVersion int, state any) error {
	data, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("eventstore: snapshot of %s: %w", stream, err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO es_snapshots (stream_id, version, schema_version, data, taken_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, schema_version = excluded.schema_version,
			data = excluded.data, taken_at = excluded.taken_at
		WHERE es_snapshots.version < excluded.version OR es_snapshots.schema_version <> excluded.schema_version`,
		stream, version, schemaVersion, string(data), time.Now().UnixMicro())
	if err != nil {
		return fmt.Errorf("eventstore: snapshot of %s: %w", stream, err)
	}
	return nil
}

// Retry runs fn in a transaction of db until it commits without a version
// conflict, at most attempts times, pausing a short random while between
// tries so contending writers spread out. fn must re-read what it decides
// on: each try is a new transaction. Other errors are returned at once.
func Retry(ctx context.Context, db *sqldb.DB, attempts int, fn func(tx *sqldb.Tx) error) error {
	for i := 1; ; i++ {
		err := db.InTx(ctx, fn)
		if err != nil && errors.Is(err, ErrConflict) {
			retried.Add(1)
		}
		if err == nil || !errors.Is(err, ErrConflict) || i >= attempts {
			return err
		}
		pause := time.Duration(rand.Int64N(int64(i) * int64(2*time.Millisecond)))
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return err
		}
	}
}

// Loaded is a stream's state and version as LoadMany returns them.
type Loaded[S any] struct {
	State   S
	Version int64
}

// LoadMany is Load of several streams, for a batch of commands that will
// need them all: an aggregate that never snapshots reads their events in
// one query (with a Memory, only the events after the remembered versions).
// One that snapshots does so for the streams its Memory remembers (no
// snapshot to read for them) and loads the others one by one.
// A stream with no event is returned with the zero S at version 0.
func (a Aggregate[S]) LoadMany(ctx context.Context, q Querier, streams []string) (map[string]Loaded[S], error) {
	out := make(map[string]Loaded[S], len(streams))
	if a.SnapshotEvery > 0 {
		var remembered []string
		for _, stream := range streams {
			if a.Memory != nil {
				if _, ok := a.Memory.Version(stream); ok {
					remembered = append(remembered, stream)
					continue
				}
			}
			s, v, err := a.Load(ctx, q, stream)
			if err != nil {
				return nil, err
			}
			out[stream] = Loaded[S]{s, v}
		}
		streams = remembered
	}
	for len(streams) > 0 {
		chunk := streams[:min(len(streams), 500)]
		streams = streams[len(chunk):]
		query, args := a.readMany(q, out, chunk)
		rows, err := q.Query(ctx, query, args...)
		if err != nil {
			return nil, fmt.Errorf("eventstore: read %d streams: %w", len(chunk), err)
		}
		evs, err := scanEvents(rows)
		if err != nil {
			return nil, fmt.Errorf("eventstore: read %d streams: %w", len(chunk), err)
		}
		for _, stream := range chunk { // the events the transaction appends at commit follow
			l := out[stream]
			evs = append(evs, pendingAfter(q, stream, l.Version)...)
		}
		for _, e := range evs {
			l := out[e.Stream]
			if e.Version <= l.Version {
				continue // one of the store's, the transaction's own after it
			}
			if l.State, err = a.Apply(l.State, e); err != nil {
				return nil, fmt.Errorf("eventstore: %s version %d (%s): %w", e.Stream, e.Version, e.Type, err)
			}
			l.Version = e.Version
			out[e.Stream] = l
		}
		if a.Memory != nil {
			for _, stream := range chunk {
				l := out[stream]
				a.Memory.note(q, stream, l.State, l.Version)
			}
		}
	}
	return out, nil
}

// readMany returns the query of LoadMany for chunk's events, read through
// q, having put in out the state each stream starts from: the zero S, or a
// copy of the one a.Memory remembers, whose stream is read after its
// version only. With a Memory every stream is asked for after a version
// (0 when not remembered). The query's text depends on the number of
// streams alone, so a batch reuses prepared statements whichever of its
// streams are remembered; on PostgreSQL it is one text whatever their
// number, its streams and versions passed as arrays (an OR of n
// conditions was planned anew on every read).
func (a Aggregate[S]) readMany(q Querier, out map[string]Loaded[S], chunk []string) (string, []any) {
	postgres := sqldb.DialectOf(q) == sqldb.Postgres
	if a.Memory == nil {
		for _, stream := range chunk {
			out[stream] = Loaded[S]{}
		}
		if postgres {
			return `SELECT ` + eventColumns + ` FROM es_events WHERE stream_id = ANY(?) ORDER BY stream_id, version`, []any{chunk}
		}
		args := make([]any, len(chunk))
		for i, stream := range chunk {
			args[i] = stream
		}
		return `SELECT ` + eventColumns + ` FROM es_events WHERE stream_id IN (` + sqldb.Placeholders(len(chunk)) + `) ORDER BY stream_id, version`, args
	}
	versions := make([]int64, len(chunk))
	for i, stream := range chunk {
		var l Loaded[S]
		if s, v, ok := a.Memory.get(stream); ok {
			l = Loaded[S]{a.clone(s), v}
		}
		out[stream] = l
		versions[i] = l.Version
	}
	if postgres {
		return `SELECT ` + eventColumns + ` FROM es_events JOIN unnest(?::text[], ?::bigint[]) AS asked(stream, after)
			ON stream_id = asked.stream AND version > asked.after ORDER BY stream_id, version`, []any{chunk, versions}
	}
	args := make([]any, 0, 2*len(chunk))
	var where strings.Builder
	for i, stream := range chunk {
		args = append(args, stream, versions[i])
		if i > 0 {
			where.WriteString(` OR `)
		}
		where.WriteString(`(stream_id = ? AND version > ?)`)
	}
	return `SELECT ` + eventColumns + ` FROM es_events WHERE ` + where.String() + ` ORDER BY stream_id, version`, args
}
