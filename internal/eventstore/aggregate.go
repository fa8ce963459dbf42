package eventstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
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
}

// Load returns the state of stream and its version (0 and the zero S for a
// stream with no event), from its latest fresh snapshot and the events after it.
// An aggregate that never snapshots (SnapshotEvery 0) reads no snapshot: one
// query less per load of its short streams.
func (a Aggregate[S]) Load(ctx context.Context, q Querier, stream string) (S, int64, error) {
	var s S
	var version int64
	var data string
	var schema int
	err := sql.ErrNoRows
	if a.SnapshotEvery > 0 {
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
	return s, version, nil
}

// Save appends events to stream within tx, expecting it at version (as
// returned by Load), applies them to s and, when the new version crosses a
// multiple of SnapshotEvery, stores the resulting state as the stream's
// snapshot. It returns the new state and version.
func (a Aggregate[S]) Save(ctx context.Context, tx *sqldb.Tx, stream string, s S, version int64, events ...Event) (S, int64, error) {
	next, err := Append(ctx, tx, stream, Exactly(version), events...)
	if err != nil {
		return s, version, err
	}
	if next == version { // an idempotent repeat: nothing new to apply
		return s, next, nil
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
