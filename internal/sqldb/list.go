package sqldb

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Scanner is a row to read columns from: *sql.Row or *sql.Rows. A
// service's scan function takes it, so one function reads a record for a
// QueryRow and for each row of a List.
type Scanner interface {
	Scan(dest ...any) error
}

// Querier runs reads with ? placeholders: *DB, or *Tx inside a write
// transaction.
type Querier interface {
	Query(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// List runs query with args on q and returns its rows in the query's
// order, each read by scan; a list page is a query ending in
// "LIMIT ? OFFSET ?" with limit and offset last among args (httpx.Page
// reads them from a request). The slice is empty, never nil, when no row
// matches, so a JSON list shows [] rather than null. An error of the
// query, of scan or of reading the rows is returned as it is, for the
// caller to wrap with what it was listing; the rows are closed in every
// case.
func List[T any](ctx context.Context, q Querier, query string, args []any, scan func(Scanner) (T, error)) ([]T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return scanAll(rows, scan)
}

// rowIterator is what scanAll reads: *sql.Rows, or pgx's rows.
type rowIterator interface {
	Scanner
	Next() bool
	Err() error
}

// scanAll reads every row of rows with scan, into a slice that is empty,
// not nil, when there is none; the caller closes rows.
func scanAll[T any](rows rowIterator, scan func(Scanner) (T, error)) ([]T, error) {
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// ScanOne reads a row of one column into a T: List's scan function for a
// query of ids and the like.
func ScanOne[T any](r Scanner) (T, error) {
	var v T
	err := r.Scan(&v)
	return v, err
}

// Eq is an optional filter of a list query: column Col equals Value, or,
// when Value is "", no filter.
type Eq struct{ Col, Value string }

// AndEq appends " AND <Col> = ?" to query, and Value to args, for each
// filter that has a value, in order: the optional filters of a listing
// (?userId=, ?status=, …) after a WHERE clause. Col is written into the
// SQL as it is, so it must be a column name of the caller's, never input.
func AndEq(query string, args []any, filters ...Eq) (string, []any) {
	for _, f := range filters {
		if f.Value != "" {
			query += ` AND ` + f.Col + ` = ?`
			args = append(args, f.Value)
		}
	}
	return query, args
}

// inChunk bounds the keys of one IN list: SQLite and PostgreSQL take far
// more parameters, but a statement text per chunk size is prepared and
// kept, and a few hundred keys already make one read of a batch.
const inChunk = 500

// PadIn returns the keys of an IN list padded to the next power of two by
// repeating the last one (a copy of keys when it pads; keys itself when
// none is needed or keys is empty): a key twice in an IN list matches the
// rows it matched once, and the lists of a batch's keys, one length per
// batch size, make a few statement texts instead of one per length, each
// prepared and kept (on SQLite, up to maxStmts a database; parsed on
// every run beyond) where every new length cost two parses.
func PadIn(keys []any) []any {
	n := SizeClass(len(keys))
	if len(keys) == 0 || n == len(keys) {
		return keys
	}
	out := make([]any, n)
	copy(out, keys)
	for i := len(keys); i < n; i++ {
		out[i] = keys[len(keys)-1]
	}
	return out
}

// ListIn is List of `before IN (?, ?, …) after` for keys (before ends
// with the column or expression the keys are matched against): the rows
// of a batch's keys in a few reads, not one read a key.
//
// On PostgreSQL it is one statement, `before = ANY(?) after`, whose one
// parameter is keys as an array (so K must be a type pgx sends as one: a
// string or an integer): one statement text whatever the number of keys,
// planned once a connection and kept, where an IN list of n parameters is
// a text of its own, planned anew for each length (and a filter the
// planner may evaluate row by row). On SQLite, where an array is no
// parameter, it is `before IN (?, ?, …) after` in chunks of up to 500
// keys a statement, each padded by PadIn. Rows come in the query's order
// within a chunk, chunks in keys' order.
func ListIn[K, T any](ctx context.Context, q Querier, before, after string, keys []K, scan func(Scanner) (T, error)) ([]T, error) {
	if len(keys) == 0 {
		return []T{}, nil
	}
	if DialectOf(q) == Postgres {
		if tx, ok := q.(*Tx); ok && tx.conn != nil && !tx.begun && len(tx.queued) == 0 {
			return listBeginning(ctx, tx, before+` = ANY(?)`+after, []any{keys}, scan)
		}
		return List(ctx, q, before+` = ANY(?)`+after, []any{keys}, scan)
	}
	out := []T{}
	for len(keys) > 0 {
		n := min(len(keys), inChunk)
		chunk := make([]any, n)
		for i, k := range keys[:n] {
			chunk[i] = k
		}
		keys = keys[n:]
		chunk = PadIn(chunk)
		rows, err := List(ctx, q, before+` IN (`+Placeholders(len(chunk))+`)`+after, chunk, scan)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, nil
}

// DialectOf returns the dialect of q's database: a *DB's or a *Tx's, and
// SQLite for any other Querier.
func DialectOf(q Querier) Dialect {
	switch q := q.(type) {
	case *DB:
		return q.Dialect
	case *Tx:
		return q.db.Dialect
	}
	return SQLite
}

// listBeginning is List as the first statement of a PostgreSQL
// transaction: BEGIN and the query go in one round trip (a pgx batch on
// the transaction's connection) instead of two, and the rows are read as
// pgx returns them. A consumer's transaction starts so, with the lookup of
// its batch's event ids (ListIn). The scan functions of ListIn read
// strings and integers, which pgx scans as database/sql does.
func listBeginning[T any](ctx context.Context, tx *Tx, query string, args []any, scan func(Scanner) (T, error)) ([]T, error) {
	tx.db.stats.statements.Add(1)
	tx.db.stats.roundTrips.Add(1)
	tx.begun = true
	var out []T
	err := tx.withPgx(func(c *pgx.Conn) error {
		b := &pgx.Batch{}
		b.Queue(`BEGIN`)
		b.Queue(tx.db.Rebind(query), args...)
		br := c.SendBatch(tx.context(ctx), b)
		defer br.Close()
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("sqldb: begin: %w", err)
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		defer rows.Close()
		if out, err = scanAll(rows, scan); err != nil {
			return err
		}
		rows.Close()
		return br.Close()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
