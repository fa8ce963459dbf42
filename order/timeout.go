package order

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/eventmart/eventmart/internal/sqldb"
)

// The saga timeout made robust to queueing (docs/saga.md, "Timeouts"): a
// PENDING order's timeout does not count while the order merely waits its
// turn behind orders the pipeline is still deciding. The pipeline decides
// orders roughly in the order they were placed (every topic partition is
// a queue), so how far it has got is the newest-placed order it has
// decided — the frontier. An order placed after the frontier is still in
// line: its clock starts from the pipeline's last decision, so it runs only
// while the pipeline decides nothing at all (a stage down or stuck). An
// order at or before the frontier has been reached (an order placed after
// it is decided already): its clock starts when the first such order was
// decided, so an order whose own events are lost or stuck still times out,
// one timeout after the pipeline went past it.
//
// Partitions are queues of their own, and one may lag another by seconds
// (a consumer starved of CPU or of the database's lock): the frontier
// then runs past orders still waiting in the slow one. So the clock also
// restarts with every decision of the orders placed just before the order
// (aheadWindow of them: a few per partition of every topic of the saga),
// its neighbours in its own queue among them: while those are being
// decided, the order's turn is near.
//
// "Decided by the pipeline" is confirmed, shipped, or cancelled for lack of
// stock or a failed payment: cancellations for timeout or by the customer
// say nothing of the pipeline's progress (a timeout counting as progress
// would cascade to the orders behind it).

// frontier is how far the pipeline has got.
type frontier struct {
	Placed  time.Time // creation of the newest-placed order decided; zero: none decided
	Decided time.Time // when that order was decided (its last change)
}

// timeoutStart returns when the saga timeout of a PENDING order placed at
// placed starts counting, given the pipeline's frontier f; for an order
// that has been reached (placed at or before f.Placed), reached: when the
// first order placed at or after it was decided (zero if unknown); and
// ahead: the last decision of the orders placed just before it (zero if
// none).
func timeoutStart(placed time.Time, f frontier, reached, ahead time.Time) time.Time {
	switch {
	case f.Placed.IsZero(): // the pipeline has decided nothing yet: no line to wait in
		return placed
	case !placed.After(f.Placed): // reached: counts from when the pipeline went past it, or decided its neighbours
		return latest(latest(placed, reached), ahead)
	default: // in line behind orders being decided: counts from the last decision
		return latest(latest(placed, f.Decided), ahead)
	}
}

// expired reports whether a saga whose timeout started at start has timed
// out by until (the earlier of now and how far the service has read the
// events that decide a PENDING order).
func expired(start time.Time, timeout time.Duration, until time.Time) bool {
	return !start.Add(timeout).After(until)
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// decidedByPipeline is the SQL condition of an order decided by the
// pipeline (see above); its arguments are pipelineArgs.
const decidedByPipeline = `status <> ? AND reason_code NOT IN (?, ?)`

var pipelineArgs = []any{StatusPending, ReasonTimeout, ReasonCustomerCancelled}

// inFlightSQL is the SQL condition of an order in flight (PENDING or
// CONFIRMED), word for word the predicate of the partial index
// orders_in_flight (migration 0003), with literals: SQLite uses a partial
// index only for a query that names its predicate's terms, and PostgreSQL
// not in a generic plan of a parameter. A query for one of the statuses
// adds `status = '…'` to it.
const inFlightSQL = `status IN ('` + StatusPending + `', '` + StatusConfirmed + `')`

// pendingOrder is a PENDING order, a candidate of the timeout.
type pendingOrder struct {
	ID     string
	Placed time.Time
}

// pendingBefore returns the PENDING orders placed at or before cutoff,
// oldest first, at most limit (an index range scan of orders_in_flight).
func pendingBefore(ctx context.Context, db *sqldb.DB, cutoff time.Time, limit int) ([]pendingOrder, error) {
	out, err := sqldb.List(ctx, db, `SELECT id, created_at FROM orders WHERE `+inFlightSQL+` AND status = '`+StatusPending+`' AND created_at <= ?
		ORDER BY created_at LIMIT ?`,
		[]any{cutoff.UnixMilli(), limit}, func(r sqldb.Scanner) (pendingOrder, error) {
			var o pendingOrder
			var ms int64
			err := r.Scan(&o.ID, &ms)
			o.Placed = time.UnixMilli(ms).UTC()
			return o, err
		})
	if err != nil {
		return nil, fmt.Errorf("order: find timed-out orders: %w", err)
	}
	return out, nil
}

// readFrontier reads the pipeline's frontier: the newest orders backwards
// (orders_created) to the first one the pipeline decided. Only the orders
// in flight are passed over, which admission control bounds.
func readFrontier(ctx context.Context, db *sqldb.DB) (frontier, error) {
	var placed, decided int64
	err := db.QueryRow(ctx, `SELECT created_at, updated_at FROM orders WHERE `+decidedByPipeline+` ORDER BY created_at DESC LIMIT 1`,
		pipelineArgs...).Scan(&placed, &decided)
	if errors.Is(err, sql.ErrNoRows) {
		return frontier{}, nil
	}
	if err != nil {
		return frontier{}, fmt.Errorf("order: saga timeout: how far the pipeline has got: %w", err)
	}
	return frontier{Placed: time.UnixMilli(placed).UTC(), Decided: time.UnixMilli(decided).UTC()}, nil
}

// firstDecided is the first order placed at or after some instant that
// the pipeline decided: when it was placed, and decided (its last change).
type firstDecided struct{ Placed, Decided time.Time }

// reachedAt returns the first order placed at or after placed that the
// pipeline decided (zero if there is none): when it was decided is when
// the pipeline reached an order placed at placed.
func reachedAt(ctx context.Context, db *sqldb.DB, placed time.Time) (firstDecided, error) {
	var p, d int64
	err := db.QueryRow(ctx, `SELECT created_at, updated_at FROM orders WHERE created_at >= ? AND `+decidedByPipeline+` ORDER BY created_at LIMIT 1`,
		append([]any{placed.UnixMilli()}, pipelineArgs...)...).Scan(&p, &d)
	if errors.Is(err, sql.ErrNoRows) {
		return firstDecided{}, nil
	}
	if err != nil {
		return firstDecided{}, fmt.Errorf("order: saga timeout: when the pipeline reached an order: %w", err)
	}
	return firstDecided{Placed: time.UnixMilli(p).UTC(), Decided: time.UnixMilli(d).UTC()}, nil
}

// aheadWindow is how many of the orders placed just before an order
// count as ahead of it in its queues: about six per partition of
// order-events (20) and inventory-events (16).
const aheadWindow = 100

// lastDecidedAhead returns the last change of the orders the pipeline
// decided among the aheadWindow orders placed just before placed (zero if
// none): a backward range scan of orders_created, aheadWindow rows.
func lastDecidedAhead(ctx context.Context, db *sqldb.DB, placed time.Time) (time.Time, error) {
	var ms sql.NullInt64
	err := db.QueryRow(ctx, `SELECT MAX(updated_at) FROM (SELECT status, reason_code, updated_at FROM orders WHERE created_at < ?
		ORDER BY created_at DESC LIMIT ?) ahead WHERE `+decidedByPipeline,
		append([]any{placed.UnixMilli(), aheadWindow}, pipelineArgs...)...).Scan(&ms)
	if err != nil {
		return time.Time{}, fmt.Errorf("order: saga timeout: the orders ahead of one: %w", err)
	}
	if !ms.Valid {
		return time.Time{}, nil
	}
	return time.UnixMilli(ms.Int64).UTC(), nil
}
