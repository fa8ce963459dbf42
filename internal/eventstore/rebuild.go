package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eventmart/eventmart/internal/sqldb"
)

// Rebuild rewrites table, an inline projection of the streams whose ids
// start with prefix, from the store: in one transaction that holds off the
// table's writers, it deletes every row, folds each stream's events from
// its first with a.Apply (snapshots unused) and hands the state, the
// stream's id without prefix and its last event's time to project, which
// writes the row. It returns the number of events read.
//
// Writers append, then write their row; on PostgreSQL a SHARE ROW
// EXCLUSIVE lock on table keeps them waiting until the rebuild commits
// (readers go on), after which they write their row from their own state:
// nothing is lost. On SQLite writes are serial anyway.
func Rebuild[S any](ctx context.Context, db *sqldb.DB, table, prefix string, a Aggregate[S],
	project func(ctx context.Context, tx *sqldb.Tx, id string, s S, last time.Time) error) (int64, error) {
	var n int64
	err := db.InTx(ctx, func(tx *sqldb.Tx) error {
		n = 0
		if tx.Dialect() == sqldb.Postgres {
			if _, err := tx.Exec(ctx, `LOCK TABLE `+table+` IN SHARE ROW EXCLUSIVE MODE`); err != nil {
				return fmt.Errorf("eventstore: lock %s: %w", table, err)
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM `+table); err != nil {
			return fmt.Errorf("eventstore: clear %s: %w", table, err)
		}
		// Folded first, written after: a transaction's connection runs
		// one statement at a time.
		type folded struct {
			id    string
			state S
			last  time.Time
		}
		var all []*folded
		err := ReadCategory(ctx, tx, prefix, func(e Event) error {
			n++
			if id := e.Stream[len(prefix):]; len(all) == 0 || all[len(all)-1].id != id {
				all = append(all, &folded{id: id})
			}
			cur := all[len(all)-1]
			var err error
			if cur.state, err = a.Apply(cur.state, e); err != nil {
				return fmt.Errorf("eventstore: %s version %d (%s): %w", e.Stream, e.Version, e.Type, err)
			}
			cur.last = e.Time
			return nil
		})
		if err != nil {
			return err
		}
		for _, f := range all {
			if err := project(ctx, tx, f.id, f.state, f.last); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return n, fmt.Errorf("eventstore: rebuild %s: %w", table, err)
	}
	return n, err
}
