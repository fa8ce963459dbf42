package eventstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/eventmart/eventmart/internal/sqldb"
)

// RetriedConflicts returns how many tries of Retry and RetryInTx in this
// process ended in a version conflict, and how many transactions' appends
// at commit did (each then run again): a measure of contention.
func RetriedConflicts() int64 { return retried.Load() }

var retried atomic.Int64

// RetryInTx runs fn within tx until it returns without a version conflict,
// at most attempts times, and returns its last error. It is Retry for a
// command that must commit in a transaction the caller owns — an inbox
// handler's, whose batch holds other records and the processed-event ids:
// failing the handler would roll the whole batch back and count an
// attempt towards parking and dead-lettering the event, for a conflict
// that re-reading fixes at once.
//
// On PostgreSQL each try runs behind a savepoint, rolled back on a
// conflict (a failed statement aborts the rest of a transaction otherwise),
// together with the OnCommit hooks and pending writes (sqldb.Tx.Pending)
// registered meanwhile; under READ
// COMMITTED the next try reads what the winner committed: an append that
// conflicts waits for the concurrent transaction first. Tries are spread
// by a short random pause, as Retry's, or the losers of one round would
// all race again for the next version at once.
//
// The savepoint is lazy (sqldb.Tx.LazySavepoint): its SAVEPOINT goes to
// the server with the try's first write, and its RELEASE with the
// transaction's next write, in the same round trips — a try costs no
// round trip of its own (it cost two, the most frequent statements of the
// services' databases), and a try that writes nothing sends neither. A
// conflict is either an append's failed insert (a write, sent behind the
// savepoint) or an expectation found unmet by a read, so the savepoint is
// set on the server whenever there is something to roll back to it.
// Weighed and left: appending with ON CONFLICT DO NOTHING and reading the
// conflict from the rows inserted would need no savepoint for the append
// alone, but a multi-row append partly inserted (a concurrent writer
// appended fewer events) must be deleted again, and a try's other writes
// before its append (inventory's reservation row and its earlier
// streams' appends) still need a savepoint to be undone; locking the
// streams before reading them would avoid conflicts, at a statement per
// stream and the deadlocks of batches locking them in different orders.
// On SQLite writes are serial (one write connection, see sqldb), so no
// append can conflict with a concurrent one; fn runs once, without a
// savepoint, and a conflict (an expectation not met) is returned.
func RetryInTx(ctx context.Context, tx *sqldb.Tx, attempts int, fn func() error) error {
	if tx.Dialect() != sqldb.Postgres {
		return fn()
	}
	for i := 1; ; i++ {
		sp, err := tx.LazySavepoint(ctx, "eventstore_retry")
		if err != nil {
			return fmt.Errorf("eventstore: %w", err)
		}
		err = fn()
		if err != nil && errors.Is(err, ErrConflict) {
			retried.Add(1)
			if rerr := tx.RollbackTo(ctx, sp); rerr != nil {
				return fmt.Errorf("eventstore: %w (after %w)", rerr, err)
			}
		}
		if rerr := tx.Release(ctx, sp); rerr != nil && err == nil {
			return fmt.Errorf("eventstore: %w", rerr)
		}
		if err == nil || !errors.Is(err, ErrConflict) || i >= attempts {
			return err
		}
		select {
		case <-time.After(time.Duration(rand.Int64N(int64(i) * int64(2*time.Millisecond)))):
		case <-ctx.Done():
			return err
		}
	}
}
