package sqldb

import (
	"context"
	"fmt"
	"strings"
)

// Rows is a Pending of rows for one table, gathered over a transaction's
// work and inserted with one multi-row statement per maxRows rows when the
// transaction flushes them (see Tx.Pending): the processed-event ids,
// outbox rows and saga-log rows of a batch of events. It can rewind to a
// savepoint (Tx.Savepoint): rows added after it are dropped on a rollback
// to it.
type Rows struct {
	head string // INSERT INTO t (a, b) VALUES
	tail string // e.g. ON CONFLICT (a) DO NOTHING
	row  string // (?, ?)
	cols int
	keys int // with NewUpserts: the leading columns that key a row
	args []any
}

// maxRows bounds the rows of one statement: PostgreSQL takes at most 65535
// parameters, SQLite 32766; fewer distinct statement texts get prepared.
const maxRows = 200

// NewRows returns an empty buffer of rows for insert, a statement
// "INSERT INTO t (c1, …, cn) VALUES" of cols columns; tail ("" or, say,
// "ON CONFLICT (id) DO NOTHING") ends every statement.
func NewRows(insert string, cols int, tail string) *Rows {
	row := "(" + Placeholders(cols) + ")"
	return &Rows{head: insert + " ", tail: tail, row: row, cols: cols}
}

// NewUpserts is NewRows for an upsert (tail "ON CONFLICT (k…) DO UPDATE
// …") whose first keys columns are the conflict key: of rows added with the
// same key only the last is inserted (a statement may not update a row
// twice), so a projection written for every event of a batch is written
// once per row, as the batch left it.
func NewUpserts(insert string, cols, keys int, tail string) *Rows {
	if keys < 1 || keys > 4 || keys > cols {
		panic(fmt.Sprintf("sqldb: an upsert keyed by %d of %d columns", keys, cols)) // a programming error
	}
	r := NewRows(insert, cols, tail)
	r.keys = keys
	return r
}

// Add buffers one row: cols values.
func (r *Rows) Add(values ...any) {
	if len(values) != r.cols {
		panic(fmt.Sprintf("sqldb: a row of %d values for %d columns", len(values), r.cols)) // a programming error
	}
	r.args = append(r.args, values...)
}

// Len returns the number of rows buffered.
func (r *Rows) Len() int { return len(r.args) / r.cols }

// Truncate drops the rows buffered after the first n.
func (r *Rows) Truncate(n int) {
	if n*r.cols < len(r.args) {
		clear(r.args[n*r.cols:])
		r.args = r.args[:n*r.cols]
	}
}

// Flush inserts the rows buffered through tx, maxRows a statement, and
// empties the buffer.
func (r *Rows) Flush(ctx context.Context, tx *Tx) error {
	defer r.Discard()
	args := r.args
	if r.keys > 0 {
		args = r.lastByKey()
	}
	for len(args) > 0 {
		n := min(len(args)/r.cols, maxRows)
		var q strings.Builder
		q.Grow(len(r.head) + n*(len(r.row)+2) + len(r.tail) + 1)
		q.WriteString(r.head)
		for i := range n {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString(r.row)
		}
		if r.tail != "" {
			q.WriteString(" ")
			q.WriteString(r.tail)
		}
		if _, err := tx.Exec(ctx, q.String(), args[:n*r.cols]...); err != nil {
			return fmt.Errorf("sqldb: %s…: %w", strings.TrimSpace(r.head), err)
		}
		args = args[n*r.cols:]
	}
	return nil
}

// lastByKey returns the rows buffered, only the last of each key, in the
// order of their first addition.
func (r *Rows) lastByKey() []any {
	n := r.Len()
	type key [4]any // keys ≤ 4 columns of comparable values
	at := make(map[key]int, n)
	order := make([]int, 0, n)
	for i := range n {
		var k key
		copy(k[:r.keys], r.args[i*r.cols:i*r.cols+r.keys])
		if j, ok := at[k]; ok {
			order[j] = i
			continue
		}
		at[k] = len(order)
		order = append(order, i)
	}
	if len(order) == n {
		return r.args
	}
	out := make([]any, 0, len(order)*r.cols)
	for _, i := range order {
		out = append(out, r.args[i*r.cols:(i+1)*r.cols]...)
	}
	return out
}

// Discard empties the buffer.
func (r *Rows) Discard() {
	clear(r.args)
	r.args = r.args[:0]
}
