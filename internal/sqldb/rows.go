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
	// selectHead is head for padded statements (see Flush):
	// INSERT INTO t (a, b) SELECT * FROM (VALUES
	selectHead string
	tail       string // e.g. ON CONFLICT (a) DO NOTHING
	row        string // (?, ?)
	cols       int
	keys       int // with NewUpserts: the leading columns that key a row
	args       []any
	tailArgs   []any             // the values of the tail's placeholders (SetTailArgs)
	as         func(error) error // FailAs's
}

// maxRows bounds the rows of one statement: PostgreSQL takes at most 65535
// parameters, SQLite 32766; fewer distinct statement texts get prepared.
const maxRows = 200

// maxSQLiteParams is SQLite's bound on a statement's parameters
// (SQLITE_MAX_VARIABLE_NUMBER).
const maxSQLiteParams = 32766

// NewRows returns an empty buffer of rows for insert, a statement
// "INSERT INTO t (c1, …, cn) VALUES" of cols columns; tail ("" or, say,
// "ON CONFLICT (id) DO NOTHING") ends every statement.
func NewRows(insert string, cols int, tail string) *Rows {
	row := "(" + Placeholders(cols) + ")"
	return &Rows{head: insert + " ", selectHead: selectHead(insert), tail: tail, row: row, cols: cols}
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

// SetTailArgs sets the values of the tail's placeholders, which every
// statement passes after its rows' values: say a tail "RETURNING
// pg_notify('c', id || ?)" tags each notification with a value of the
// transaction's.
func (r *Rows) SetTailArgs(args ...any) { r.tailArgs = args }

// FailAs makes the error of a failed insert of r's rows as(err)
// (Tx.ExecBatchedAs), and returns r.
func (r *Rows) FailAs(as func(error) error) *Rows {
	r.as = as
	return r
}

// Each calls fn with each row Flush would insert now (with NewUpserts,
// the last of each key), in order; fn must not keep or change row.
func (r *Rows) Each(fn func(row []any)) {
	args := r.args
	if r.keys > 0 {
		args = r.lastByKey()
	}
	for i := 0; i < len(args); i += r.cols {
		fn(args[i : i+r.cols])
	}
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
// empties the buffer. The inserts go through Tx.ExecBatched: on
// PostgreSQL, in the flush before a commit, they are sent with the other
// pending writes' in one round trip.
//
// On SQLite a statement of n rows has room for SizeClass(n) rows, a power
// of two, the rest padded with NULLs and left out (INSERT … SELECT * FROM
// (VALUES …) WHERE column1 IS NOT NULL, as the audit trail's blocks do): its
// text depends on the size class alone, so a table's inserts use nine
// prepared statements at most instead of one per row count, which kept
// SQLite parsing and holding up to 200 programs per table and filled the
// per-database cache of prepared statements (512). A batch whose first
// column holds a NULL, or an insert not ending in VALUES, gets the exact
// statement. PostgreSQL, which would type the padded VALUES as text, gets
// one statement text whatever the row count, taking one array per column
// (INSERT … SELECT … FROM unnest($1::bigint[], …) WITH ORDINALITY …
// ORDER BY n, see Rows.unnest), or the exact statement for a table whose
// column types are unknown or unfit.
func (r *Rows) Flush(ctx context.Context, tx *Tx) error {
	defer r.Discard()
	args := r.args
	if r.keys > 0 {
		args = r.lastByKey()
	}
	unnest := ""
	if tx.Dialect() == Postgres {
		unnest = r.unnest(ctx, tx)
	}
	for len(args) > 0 {
		n := min(len(args)/r.cols, maxRows)
		var q string
		var a []any
		if unnest != "" {
			q, a = r.unnestStatement(unnest, args[:n*r.cols])
		} else {
			q, a = r.statement(tx.Dialect(), args[:n*r.cols])
		}
		if err := tx.ExecBatchedAs(ctx, strings.TrimSpace(r.head), q, r.as, a...); err != nil {
			return err
		}
		args = args[n*r.cols:]
	}
	return nil
}

// statement returns the statement inserting the rows of args (at most
// maxRows) and its arguments: padded to a size class on SQLite when it can
// be (see Flush), else exactly len(args)/r.cols rows.
func (r *Rows) statement(d Dialect, args []any) (string, []any) {
	n := len(args) / r.cols
	head, rows, padded := r.head, n, false
	if d == SQLite && r.selectHead != "" && SizeClass(n)*r.cols <= maxSQLiteParams && firstColumnSet(args, r.cols) {
		head, rows, padded = r.selectHead, SizeClass(n), true
		all := make([]any, rows*r.cols) // the rows after n pad, all NULL
		copy(all, args)
		args = all
	}
	var q strings.Builder
	q.Grow(len(head) + rows*(len(r.row)+2) + len(r.tail) + 40)
	q.WriteString(head)
	for i := range rows {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString(r.row)
	}
	if padded {
		q.WriteString(") WHERE column1 IS NOT NULL")
	}
	if r.tail != "" {
		q.WriteString(" ")
		q.WriteString(r.tail)
	}
	if len(r.tailArgs) > 0 {
		args = append(args[:len(args):len(args)], r.tailArgs...) // a copy: args may be r.args
	}
	return q.String(), args
}

// SizeClass returns the power of two at least n: the rows (or keys) of
// the padded statement for n, so that statements of a few lengths serve
// every n (Rows on SQLite, PadIn, the audit trail's blocks).
func SizeClass(n int) int {
	c := 1
	for c < n {
		c *= 2
	}
	return c
}

// firstColumnSet reports whether no row of args (cols values each) has a
// NULL first column, which would be taken for padding.
func firstColumnSet(args []any, cols int) bool {
	for i := 0; i < len(args); i += cols {
		if args[i] == nil {
			return false
		}
	}
	return true
}

// selectHead turns "INSERT INTO t (c…) VALUES" into "INSERT INTO t (c…)
// SELECT * FROM (VALUES ", the head of a padded statement; "" for an insert
// that does not end in VALUES.
func selectHead(insert string) string {
	s := strings.TrimSpace(insert)
	if len(s) < 6 || !strings.EqualFold(s[len(s)-6:], "VALUES") {
		return ""
	}
	return strings.TrimSpace(s[:len(s)-6]) + " SELECT * FROM (VALUES "
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
