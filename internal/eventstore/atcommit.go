package eventstore

import (
	"context"
	"fmt"
	"time"

	"github.com/eventmart/eventmart/internal/sqldb"
)

// atCommit is a transaction's appends deferred to its commit
// (Aggregate.AppendAtCommit): the events its Saves appended, in the order
// saved, inserted by one multi-row statement as the transaction commits
// (sqldb.Tx.Pending) — on PostgreSQL sent with the COMMIT, in its round
// trip. It is a sqldb.Rewinder: a rollback to a savepoint drops the
// events saved after it. Reads through the transaction see its events
// (pendingAfter), as they would see inserted rows.
//
// A stream that another transaction appended to since this one read it
// fails the insert on the stream's (stream, version) key; the error
// wraps ErrConflict and sqldb.ErrRunAgain, so InTx runs the whole
// transaction again, which reads the stream anew.
type atCommit struct {
	events []Event // Stream, Version and Time set
	// last is the version each stream reaches with events: a save and a
	// load look a stream up in it, not scan every event of the batch
	// (quadratic in the batch's saves).
	last map[string]int64
}

type atCommitKey struct{}

// pendingAppends returns tx's appends at commit, or nil if it has none.
func pendingAppends(tx *sqldb.Tx) *atCommit {
	if p, ok := tx.PendingOf(atCommitKey{}).(*atCommit); ok {
		return p
	}
	return nil
}

// appendAtCommit defers the append of events to stream, at the versions
// after version, to tx's commit. A save at a version the transaction's
// own appends have passed is a conflict at once.
func appendAtCommit(tx *sqldb.Tx, stream string, version int64, events []Event) error {
	if err := checkEvents(stream, events); err != nil {
		return err
	}
	p := tx.Pending(atCommitKey{}, func() sqldb.Pending { return &atCommit{last: map[string]int64{}} }).(*atCommit)
	if v := p.version(stream); v > version {
		return &ConflictError{Stream: stream, Expected: Exactly(version), Actual: v}
	}
	now := time.Now().UTC()
	for i, e := range events {
		e.Stream, e.Version = stream, version+int64(i)+1
		if e.Time.IsZero() {
			e.Time = now
		}
		p.events = append(p.events, e)
	}
	p.last[stream] = version + int64(len(events))
	return nil
}

// version returns the version stream reaches with p's events (0: none).
func (p *atCommit) version(stream string) int64 { return p.last[stream] }

// pendingAfter returns the events of stream after version after that
// the transaction q (if q is one) appends at its commit, in version order.
func pendingAfter(q Querier, stream string, after int64) []Event {
	tx, ok := q.(*sqldb.Tx)
	if !ok {
		return nil
	}
	p := pendingAppends(tx)
	if p == nil || p.version(stream) <= after {
		return nil
	}
	var evs []Event
	for _, e := range p.events {
		if e.Stream == stream && e.Version > after {
			evs = append(evs, e)
		}
	}
	return evs
}

// Flush inserts the events in one statement (per sqldb.Rows' bound).
func (p *atCommit) Flush(ctx context.Context, tx *sqldb.Tx) error {
	if len(p.events) == 0 {
		return nil
	}
	defer p.Discard()
	rows := sqldb.NewRows(insertEvents, 8, "").FailAs(func(err error) error {
		if sqldb.IsUniqueViolation(err) {
			retried.Add(1) // the transaction is run again (InTx)
			return fmt.Errorf("eventstore: append at commit: %w, %w: %w", ErrConflict, sqldb.ErrRunAgain, err)
		}
		return fmt.Errorf("eventstore: append at commit: %w", err)
	})
	for _, e := range p.events {
		rows.Add(e.Stream, e.Version, e.ID, e.Type, e.SchemaVersion, string(e.Data), string(metadataOf(e)), e.Time.UnixMicro())
	}
	return rows.Flush(ctx, tx)
}

// Discard drops the events: the work that saved them was rolled back.
func (p *atCommit) Discard() { p.Truncate(0) }

// Len is how many events p holds (sqldb.Rewinder).
func (p *atCommit) Len() int { return len(p.events) }

// Truncate drops the events saved after the first n (sqldb.Rewinder).
func (p *atCommit) Truncate(n int) {
	if n >= len(p.events) {
		return
	}
	clear(p.events[n:])
	p.events = p.events[:n]
	clear(p.last) // a rollback: rare, so counted again from what is left
	for _, e := range p.events {
		p.last[e.Stream] = max(p.last[e.Stream], e.Version)
	}
}
