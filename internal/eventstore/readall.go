package eventstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/eventmart/eventmart/internal/sqldb"
)

// Cursor is where a reader of all streams stands: after the event at
// (TxID, Position). The zero Cursor is the start. Readers keep it in their
// own checkpoint and pass it back to ReadAll.
type Cursor struct {
	TxID     int64 `json:"txId"`
	Position int64 `json:"position"`
}

// After returns the cursor just after e, to pass to the next ReadAll.
func After(e Event) Cursor { return Cursor{TxID: e.txID, Position: e.Position} }

// ReadAll returns at most limit events of every stream after c, in the
// order of (writing transaction, position), and the cursor after the last
// one (c itself when there is none).
//
// It never passes an event that becomes visible later. On PostgreSQL a
// position is taken from a sequence at insert but becomes visible at
// commit, so a reader ordering by position alone would pass position 5 of
// a transaction still in flight after reading position 6 of one that
// committed first — and never come back for it. ReadAll therefore reads
// only the events of transactions older than the oldest transaction still
// in flight (pg_snapshot_xmin of the current snapshot), which are all
// settled, in transaction order: any transaction that commits later has a
// larger transaction id than everything already read. On SQLite writes are
// serial and every event's transaction id is 0: the order is the position.
func ReadAll(ctx context.Context, db *sqldb.DB, c Cursor, limit int) ([]Event, Cursor, error) {
	if limit <= 0 {
		return nil, c, fmt.Errorf("eventstore: read all: limit %d, want > 0", limit)
	}
	var rows *sql.Rows
	var err error
	if db.Dialect == sqldb.Postgres {
		// (tx_id, position) > (c.TxID, c.Position), written out for the
		// planner.
		rows, err = db.Query(ctx, `SELECT `+eventColumns+` FROM es_events
			WHERE (tx_id > ? OR (tx_id = ? AND position > ?)) AND tx_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
			ORDER BY tx_id, position LIMIT ?`, c.TxID, c.TxID, c.Position, limit)
	} else {
		// Every tx_id is 0: position order, the rowid's (SQLiteMigration
		// dropped the index on tx_id).
		rows, err = db.Query(ctx, `SELECT `+eventColumns+` FROM es_events WHERE position > ? ORDER BY position LIMIT ?`, c.Position, limit)
	}
	if err != nil {
		return nil, c, fmt.Errorf("eventstore: read all: %w", err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, c, fmt.Errorf("eventstore: read all: %w", err)
	}
	if len(evs) > 0 {
		c = After(evs[len(evs)-1])
	}
	return evs, c, nil
}
