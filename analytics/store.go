package analytics

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/eventmart/eventmart/internal/sqldb"
	"github.com/eventmart/eventmart/internal/stream"
)

// loadState reads every stored engine entry.
func loadState(ctx context.Context, db *sqldb.DB) ([]stream.StateEntry, error) {
	es, err := sqldb.List(ctx, db, `SELECT operator, key, win, value FROM analytics_state ORDER BY operator, key, win`, nil,
		func(r sqldb.Scanner) (stream.StateEntry, error) {
			var e stream.StateEntry
			err := r.Scan(&e.Operator, &e.Key, &e.Window, &e.Value)
			return e, err
		})
	if err != nil {
		return nil, fmt.Errorf("analytics: load state: %w", err)
	}
	return es, nil
}

// saveChanges upserts or deletes each changed entry, in order.
func saveChanges(ctx context.Context, tx *sqldb.Tx, changes []stream.StateEntry) error {
	for _, c := range changes {
		var err error
		if c.Value == nil {
			_, err = tx.Exec(ctx, `DELETE FROM analytics_state WHERE operator = ? AND key = ? AND win = ?`, c.Operator, c.Key, c.Window)
		} else {
			_, err = tx.Exec(ctx, `INSERT INTO analytics_state (operator, key, win, value) VALUES (?, ?, ?, ?)
				ON CONFLICT (operator, key, win) DO UPDATE SET value = excluded.value`, c.Operator, c.Key, c.Window, c.Value)
		}
		if err != nil {
			return fmt.Errorf("analytics: save state %s/%s/%s: %w", c.Operator, c.Key, c.Window, err)
		}
	}
	return nil
}

// saveWindow stores a closed window's counters.
func saveWindow(ctx context.Context, tx *sqldb.Tx, r stream.Result) error {
	c, _ := r.Value.(Counters)
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("analytics: window: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO analytics_windows (size, start_ms, end_ms, counters) VALUES (?, ?, ?, ?)
		ON CONFLICT (size, start_ms) DO UPDATE SET counters = excluded.counters, end_ms = excluded.end_ms`,
		r.Operator, r.Start.UnixMilli(), r.End.UnixMilli(), string(b))
	if err != nil {
		return fmt.Errorf("analytics: save window %s %v: %w", r.Operator, r.Start, err)
	}
	return nil
}

// saveDetection stores d unless a detection with its id is stored already;
// it reports whether it stored it.
func saveDetection(ctx context.Context, tx *sqldb.Tx, d Detection) (bool, error) {
	ev, err := json.Marshal(d.Evidence)
	if err != nil {
		return false, fmt.Errorf("analytics: detection: %w", err)
	}
	res, err := tx.Exec(ctx, `INSERT INTO analytics_detections (event_id, rule, type, match_key, at_ms, dry_run, evidence, holders, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING`,
		d.ID, d.Rule, d.Type, d.Key, d.At.UnixMilli(), b2i(d.DryRun), string(ev), d.Holders, d.DetectedAt.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("analytics: save detection %s: %w", d.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("analytics: save detection %s: %w", d.ID, err)
	}
	return n == 1, nil
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// rawWindow is a window's counters before Window shapes them.
type rawWindow struct {
	start, end time.Time
	open       bool
	c          Counters
}

// closedWindows returns the stored windows of size starting in [from, to).
func closedWindows(ctx context.Context, db *sqldb.DB, size string, from, to time.Time) ([]rawWindow, error) {
	ws, err := sqldb.List(ctx, db, `SELECT start_ms, end_ms, counters FROM analytics_windows WHERE size = ? AND start_ms >= ? AND start_ms < ? ORDER BY start_ms`,
		[]any{size, from.UnixMilli(), to.UnixMilli()}, func(r sqldb.Scanner) (rawWindow, error) {
			var start, end int64
			var counters string
			if err := r.Scan(&start, &end, &counters); err != nil {
				return rawWindow{}, err
			}
			c, err := statsAggregator{}.Decode([]byte(counters))
			if err != nil {
				return rawWindow{}, err
			}
			return rawWindow{time.UnixMilli(start).UTC(), time.UnixMilli(end).UTC(), false, c}, nil
		})
	if err != nil {
		return nil, fmt.Errorf("analytics: windows: %w", err)
	}
	return ws, nil
}

// openWindows returns the windows of size still open, from the engine's
// stored state (what was committed last), starting in [from, to).
func openWindows(ctx context.Context, db *sqldb.DB, size string, from, to time.Time) ([]rawWindow, error) {
	d := Sizes[size]
	ws, err := sqldb.List(ctx, db, `SELECT win, value FROM analytics_state WHERE operator = ? AND key = ?`, []any{size, allKey},
		func(r sqldb.Scanner) (rawWindow, error) {
			var win string
			var value []byte
			if err := r.Scan(&win, &value); err != nil {
				return rawWindow{}, err
			}
			startNs, err := strconv.ParseInt(win, 10, 64)
			if err != nil {
				return rawWindow{}, fmt.Errorf("window %q: %w", win, err)
			}
			c, err := statsAggregator{}.Decode(value)
			if err != nil {
				return rawWindow{}, err
			}
			start := time.Unix(0, startNs).UTC()
			return rawWindow{start, start.Add(d), true, c}, nil
		})
	if err != nil {
		return nil, fmt.Errorf("analytics: open windows: %w", err)
	}
	var out []rawWindow
	for _, w := range ws {
		if !w.start.Before(from) && w.start.Before(to) {
			out = append(out, w)
		}
	}
	return out, nil
}

// listDetections returns detections newest first, of one rule if rule is
// set, with seq below before if before > 0.
func listDetections(ctx context.Context, db *sqldb.DB, rule string, before int64, limit int) ([]Detection, error) {
	q, args := sqldb.AndEq(`SELECT seq, event_id, rule, type, match_key, at_ms, dry_run, evidence, holders, created_at FROM analytics_detections WHERE 1 = 1`, nil,
		sqldb.Eq{Col: "rule", Value: rule})
	if before > 0 {
		q += ` AND seq < ?`
		args = append(args, before)
	}
	q += ` ORDER BY seq DESC LIMIT ?`
	args = append(args, limit)
	ds, err := sqldb.List(ctx, db, q, args, scanDetection)
	if err != nil {
		return nil, fmt.Errorf("analytics: detections: %w", err)
	}
	return ds, nil
}

func scanDetection(r sqldb.Scanner) (Detection, error) {
	var d Detection
	var seq, at, dry, created int64
	var ev string
	if err := r.Scan(&seq, &d.ID, &d.Rule, &d.Type, &d.Key, &at, &dry, &ev, &d.Holders, &created); err != nil {
		return d, err
	}
	d.At, d.DryRun, d.DetectedAt = time.UnixMilli(at).UTC(), dry == 1, time.UnixMilli(created).UTC()
	if err := json.Unmarshal([]byte(ev), &d.Evidence); err != nil {
		return d, fmt.Errorf("evidence of %s: %w", d.ID, err)
	}
	return d, nil
}

// storedRules returns the rule document set through the API and its
// version; ok false when none was set.
func storedRules(ctx context.Context, db *sqldb.DB) (doc string, version int64, ok bool, err error) {
	err = db.QueryRow(ctx, `SELECT document, version FROM analytics_rules WHERE id = 1`).Scan(&doc, &version)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, false, fmt.Errorf("analytics: rules: %w", err)
	}
	return doc, version, true, nil
}

// storeRules saves doc as the rule document, a new version.
func storeRules(ctx context.Context, db *sqldb.DB, doc string, now time.Time) (int64, error) {
	var version int64
	err := db.InTx(ctx, func(tx *sqldb.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO analytics_rules (id, version, document, updated_at) VALUES (1, 1, ?, ?)
			ON CONFLICT (id) DO UPDATE SET version = analytics_rules.version + 1, document = excluded.document, updated_at = excluded.updated_at`,
			doc, now.UnixMilli())
		if err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT version FROM analytics_rules WHERE id = 1`).Scan(&version)
	})
	if err != nil {
		return 0, fmt.Errorf("analytics: store rules: %w", err)
	}
	return version, nil
}
