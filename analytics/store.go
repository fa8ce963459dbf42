package analytics

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
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

// stateKey is an engine entry's key in analytics_state.
type stateKey struct{ operator, key, win string }

// maxRows bounds the rows of one of the statements below, as sqldb.Rows
// bounds its own (the databases' limits on parameters).
const maxRows = 200

// saveChanges writes the entries a commit changed, given as lists in the
// order they changed: of an entry changed several times (the windows' state
// and the partitions' offsets change in every batch of a group commit)
// only the last change counts. The entries that remain go in one multi-row
// upsert and one multi-row delete (per maxRows entries), not a statement
// each.
func saveChanges(ctx context.Context, tx *sqldb.Tx, changes ...[]stream.StateEntry) error {
	n := 0
	for _, cs := range changes {
		n += len(cs)
	}
	if n == 0 {
		return nil
	}
	at := make(map[stateKey]int, n)
	last := make([]stream.StateEntry, 0, n)
	for _, cs := range changes {
		for _, c := range cs {
			k := stateKey{c.Operator, c.Key, c.Window}
			if i, ok := at[k]; ok {
				last[i] = c
				continue
			}
			at[k] = len(last)
			last = append(last, c)
		}
	}
	ups := sqldb.NewRows(`INSERT INTO analytics_state (operator, key, win, value) VALUES`, 4,
		`ON CONFLICT (operator, key, win) DO UPDATE SET value = excluded.value`)
	var dels []stateKey
	for _, c := range last {
		if c.Value == nil {
			dels = append(dels, stateKey{c.Operator, c.Key, c.Window})
		} else {
			ups.Add(c.Operator, c.Key, c.Window, c.Value)
		}
	}
	if err := ups.Flush(ctx, tx); err != nil {
		return fmt.Errorf("analytics: save state: %w", err)
	}
	if err := deleteState(ctx, tx, dels); err != nil {
		return fmt.Errorf("analytics: delete state: %w", err)
	}
	return nil
}

// deleteState deletes the entries keys: on PostgreSQL in one statement
// whose keys are three arrays (one text, planned once, whatever their
// number); on SQLite in one multi-row statement per maxRows keys.
func deleteState(ctx context.Context, tx *sqldb.Tx, keys []stateKey) error {
	if len(keys) == 0 {
		return nil
	}
	if tx.Dialect() == sqldb.Postgres {
		ops, ks, wins := make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys))
		for i, k := range keys {
			ops[i], ks[i], wins[i] = k.operator, k.key, k.win
		}
		_, err := tx.Exec(ctx, `DELETE FROM analytics_state WHERE (operator, key, win) IN (SELECT * FROM unnest(?::text[], ?::text[], ?::text[]))`, ops, ks, wins)
		return err
	}
	for len(keys) > 0 {
		k := min(len(keys), maxRows)
		args := make([]any, 0, 3*k)
		for _, key := range keys[:k] {
			args = append(args, key.operator, key.key, key.win)
		}
		// A row value IN a VALUES list: SQLite takes row values only
		// against a subquery.
		q := `DELETE FROM analytics_state WHERE (operator, key, win) IN (VALUES ` +
			strings.TrimSuffix(strings.Repeat("(?, ?, ?), ", k), ", ") + `)`
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return err
		}
		keys = keys[k:]
	}
	return nil
}

// windowRows returns a buffer for closed windows' counters: a window
// closed again (a late change within the grace) keeps its last figures.
func windowRows() *sqldb.Rows {
	return sqldb.NewUpserts(`INSERT INTO analytics_windows (size, start_ms, end_ms, counters) VALUES`, 4, 2,
		`ON CONFLICT (size, start_ms) DO UPDATE SET counters = excluded.counters, end_ms = excluded.end_ms`)
}

// addWindow buffers a closed window's counters in rows (windowRows).
func addWindow(rows *sqldb.Rows, r stream.Result) error {
	c, _ := r.Value.(Counters)
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("analytics: window %s %v: %w", r.Operator, r.Start, err)
	}
	rows.Add(r.Operator, r.Start.UnixMilli(), r.End.UnixMilli(), string(b))
	return nil
}

// saveDetections stores ds, in order, but those whose id is stored already
// (or comes earlier in ds), with one multi-row insert per maxRows
// detections; it returns the detections it stored, in order.
func saveDetections(ctx context.Context, tx *sqldb.Tx, ds []Detection) ([]Detection, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	const cols = 9
	row := "(" + sqldb.Placeholders(cols) + ")"
	fresh := make(map[string]bool, len(ds))
	var unique []Detection // a statement inserts each id once
	for _, d := range ds {
		if !fresh[d.ID] {
			fresh[d.ID] = true
			unique = append(unique, d)
		}
	}
	clear(fresh)
	for chunk := unique; len(chunk) > 0; {
		k := min(len(chunk), maxRows)
		args := make([]any, 0, k*cols)
		rows := make([]string, 0, k)
		for _, d := range chunk[:k] {
			ev, err := json.Marshal(d.Evidence)
			if err != nil {
				return nil, fmt.Errorf("analytics: detection %s: %w", d.ID, err)
			}
			args = append(args, d.ID, d.Rule, d.Type, d.Key, d.At.UnixMilli(), b2i(d.DryRun), string(ev), d.Holders, d.DetectedAt.UnixMilli())
			rows = append(rows, row)
		}
		chunk = chunk[k:]
		ids, err := insertReturning(ctx, tx, `INSERT INTO analytics_detections (event_id, rule, type, match_key, at_ms, dry_run, evidence, holders, created_at)
		VALUES `+strings.Join(rows, ", ")+` ON CONFLICT (event_id) DO NOTHING RETURNING event_id`, args)
		if err != nil {
			return nil, fmt.Errorf("analytics: save detections: %w", err)
		}
		for _, id := range ids {
			fresh[id] = true
		}
	}
	var stored []Detection
	for _, d := range unique {
		if fresh[d.ID] {
			stored = append(stored, d)
		}
	}
	return stored, nil
}

// insertReturning runs an INSERT … RETURNING of one text column and
// returns the values.
func insertReturning(ctx context.Context, tx *sqldb.Tx, q string, args []any) ([]string, error) {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
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
