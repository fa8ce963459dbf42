package sqldb

import (
	"context"
	"fmt"
	"strings"
)

// columnTypesQuery returns each column of a table with its type as SQL
// spells it, and whether an array of that type cannot stand for it: an
// array column (unnest would flatten it) or a type of the database's own
// (an enum or domain pgx may not know how to encode). to_regclass gives no
// rows rather than an error for a table that does not exist, for an error
// would abort the transaction the query runs in.
const columnTypesQuery = `SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typcategory = 'A' OR a.atttypid >= 16384
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`

// unnest returns the head of r's statement on PostgreSQL that takes one
// array argument per column, "INSERT INTO t (c1, …, cn) SELECT u1, …,
// un FROM unnest(?::T1[], …, ?::Tn[]) WITH ORDINALITY AS u(u1, …, un, n)
// ORDER BY n", or "" if r's insert cannot be written so.
// Its text does not depend on the number of rows, so that PostgreSQL
// prepares and plans one statement per insert and connection instead of
// one per row count (planning was a tenth of its CPU). The column types
// are read from the catalog the first time a DB flushes an insert and
// kept for the life of the process: a migration that changes a column's
// type takes a restart to be seen (until then the arrays are of the old
// type, which PostgreSQL converts to the new on insert where it has an
// assignment cast, and fails where not; no migration changes a column's
// type today). A failed read is not kept: the flush uses the exact
// statement (in a transaction the failure has ended anyway).
func (r *Rows) unnest(ctx context.Context, tx *Tx) string {
	if h, ok := tx.db.unnestHeads.Load(r.head); ok {
		return h.(string)
	}
	h, err := r.discoverUnnest(ctx, tx)
	if err != nil {
		return ""
	}
	tx.db.unnestHeads.Store(r.head, h)
	return h
}

// discoverUnnest builds r's unnest head (see unnest) from the catalog,
// read through tx's connection: a connection of the pool could be long in
// coming while every connection is held by a transaction flushing. The
// read is a catalog lookup once per insert and process, left out of the
// DB's Stats so that a transaction's counts do not depend on whether it
// came first; it runs before any statement queued (none of which changes
// the catalog).
func (r *Rows) discoverUnnest(ctx context.Context, tx *Tx) (string, error) {
	table, cols, ok := parseInsert(r.head)
	if !ok || len(cols) != r.cols {
		return "", nil
	}
	rows, err := tx.q.QueryContext(tx.context(ctx), columnTypesQuery, table)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	types := make(map[string]string, len(cols))
	for rows.Next() {
		var name, typ string
		var unfit bool
		if err := rows.Scan(&name, &typ, &unfit); err != nil {
			return "", err
		}
		if !unfit {
			types[name] = typ
		}
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	// The rows are numbered and inserted in the arrays' order, as a
	// VALUES list's: ids drawn from a sequence follow it, and the outbox
	// relays in id order.
	var b, names strings.Builder
	b.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") SELECT ")
	for i, c := range cols {
		if _, ok := types[identifier(c)]; !ok {
			return "", nil // no such column, or unfit: the exact statement
		}
		if i > 0 {
			names.WriteString(", ")
		}
		fmt.Fprintf(&names, "u%d", i+1)
	}
	b.WriteString(names.String() + " FROM unnest(")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("?::" + types[identifier(c)] + "[]")
	}
	b.WriteString(") WITH ORDINALITY AS u(" + names.String() + ", n) ORDER BY n")
	return b.String(), nil
}

// unnestStatement returns the statement inserting the rows of args under
// head (see unnest) and its arguments: one slice per column, then the
// tail's values.
func (r *Rows) unnestStatement(head string, args []any) (string, []any) {
	n := len(args) / r.cols
	a := make([]any, r.cols, r.cols+len(r.tailArgs))
	cols := make([]any, len(args)) // the columns, one after the other
	for c := range r.cols {
		col := cols[c*n : (c+1)*n : (c+1)*n] // pgx encodes each value by its type; nil is NULL
		for i := range n {
			col[i] = args[i*r.cols+c]
		}
		a[c] = col
	}
	a = append(a, r.tailArgs...)
	q := head
	if r.tail != "" {
		q += " " + r.tail
	}
	return q, a
}

// parseInsert splits "INSERT INTO t (a, b) VALUES" into its table and
// columns as written; ok is false for any other shape.
func parseInsert(insert string) (table string, cols []string, ok bool) {
	s := strings.TrimSpace(insert)
	const into = "INSERT INTO "
	if len(s) < len(into) || !strings.EqualFold(s[:len(into)], into) {
		return "", nil, false
	}
	s = s[len(into):]
	open, shut := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || shut < open || !strings.EqualFold(strings.TrimSpace(s[shut+1:]), "VALUES") {
		return "", nil, false
	}
	table = strings.TrimSpace(s[:open])
	for c := range strings.SplitSeq(s[open+1:shut], ",") {
		c = strings.TrimSpace(c)
		if c == "" || strings.ContainsAny(c, "() ") {
			return "", nil, false
		}
		cols = append(cols, c)
	}
	return table, cols, table != ""
}

// identifier returns the name PostgreSQL gives a column written c:
// unquoted names fold to lower case.
func identifier(c string) string {
	if len(c) >= 2 && c[0] == '"' && c[len(c)-1] == '"' {
		return strings.ReplaceAll(c[1:len(c)-1], `""`, `"`)
	}
	return strings.ToLower(c)
}
