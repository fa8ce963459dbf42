package sqldb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventmart/eventmart/internal/testenv"
)

// openTestPostgres opens a database of its own on the test server, or
// skips the test without one.
func openTestPostgres(t testing.TB) *DB {
	ctx := context.Background()
	url := testenv.Postgres(t)
	b := make([]byte, 4)
	rand.Read(b)
	prefix := "t" + hex.EncodeToString(b)
	db, err := Open(ctx, "rows", strings.Replace(url, "/postgres?", "/"+prefix+"?", 1), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Close()
		if conn, err := pgx.Connect(ctx, url); err == nil {
			conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{prefix + "_rows"}.Sanitize()+" WITH (FORCE)")
			conn.Close(ctx)
		}
	})
	return db
}

// preparedInserts returns the distinct texts of the statements prepared on
// tx's connection that insert into table.
func preparedInserts(ctx context.Context, t *testing.T, tx *Tx, table string) []string {
	t.Helper()
	rows, err := tx.Query(ctx, `SELECT DISTINCT statement FROM pg_prepared_statements WHERE statement LIKE ?`, "INSERT INTO "+table+" %")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var texts []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		texts = append(texts, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return texts
}

// TestRowsUnnestOnPostgres: on PostgreSQL flushes of 1, 3 and 250 rows
// prepare one statement text (arrays through unnest) on the connection,
// insert every value of the column types the services use (bigint,
// integer, text, bytea, boolean, jsonb, timestamptz) and NULLs as given,
// in the order added (serials ascend with the rows),
// also when the flush is queued with the commit (ExecBatched); an upsert
// with a tail argument updates through its tail; driver.Valuers are
// stored as their values; a table with an array
// column gets the exact statement and is inserted all the same.
func TestRowsUnnestOnPostgres(t *testing.T) {
	ctx := context.Background()
	db := openTestPostgres(t)
	if _, err := db.Exec(ctx, `CREATE TABLE r (seq BIGSERIAL, k BIGINT PRIMARY KEY, n INTEGER, s TEXT, b BYTEA, ok BOOLEAN, j JSONB, ts TIMESTAMPTZ)`); err != nil {
		t.Fatal(err)
	}
	const insert = `INSERT INTO r (k, n, s, b, ok, j, ts) VALUES`
	at := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	row := func(k int) []any {
		if k%3 == 1 { // every column but the key NULL
			return []any{k, nil, nil, nil, nil, nil, nil}
		}
		return []any{int64(k), k * 2, fmt.Sprint("s", k), []byte{byte(k), 0, 'x'}, k%2 == 0, fmt.Sprintf(`{"k": %d}`, k), at.Add(time.Duration(k) * time.Second)}
	}
	next := 0
	add := func(rows *Rows, n int) {
		for range n {
			rows.Add(row(next)...)
			next++
		}
	}
	err := db.InTx(ctx, func(tx *Tx) error {
		rows := NewRows(insert, 7, "")
		for _, n := range []int{1, 3, 250} {
			add(rows, n)
			if err := rows.Flush(ctx, tx); err != nil {
				return err
			}
		}
		texts := preparedInserts(ctx, t, tx, "r")
		if len(texts) != 1 || !strings.Contains(texts[0], "unnest(") {
			t.Errorf("flushes of 1, 3 and 250 rows prepared %d statement texts, want one through unnest; the first: %.100q", len(texts), append(texts, "")[0])
		}
		// Flushed with the commit, in its batch.
		add(tx.Pending(struct{ committed int }{}, func() Pending { return NewRows(insert, 7, "") }).(*Rows), 5)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	q, _ := db.Query(ctx, `SELECT k, n, s, b, ok, j::text, ts FROM r ORDER BY k`)
	defer q.Close()
	got := 0
	for q.Next() {
		var k int64
		var n *int
		var s, j *string
		var b []byte
		var ok *bool
		var ts *time.Time
		if err := q.Scan(&k, &n, &s, &b, &ok, &j, &ts); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprint([]any{k, nil, nil, nil, nil, nil, nil})
		if k%3 != 1 {
			want = fmt.Sprint(row(int(k)))
		}
		have := fmt.Sprint([]any{k, deref(n), deref(s), bytesOrNil(b), deref(ok), deref(j), timeOrNil(ts)})
		if strings.ReplaceAll(have, " ", "") != strings.ReplaceAll(want, " ", "") {
			t.Errorf("row %d is %s, want %s", k, have, want)
		}
		if int(k) != got {
			t.Fatalf("row %d where %d was due", k, got)
		}
		got++
	}
	if err := q.Err(); err != nil {
		t.Fatal(err)
	}
	if got != next {
		t.Fatalf("%d rows inserted, want %d", got, next)
	}
	var outOfOrder int // rows take their serials in the order added, as the outbox's must
	if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM (SELECT k, lag(k) OVER (ORDER BY seq) AS prev FROM r) x WHERE prev > k`).Scan(&outOfOrder); err != nil || outOfOrder != 0 {
		t.Errorf("%d rows with a serial before an earlier row's (%v), want 0", outOfOrder, err)
	}

	// An upsert whose tail takes an argument: its value follows the arrays.
	err = db.InTx(ctx, func(tx *Tx) error {
		ups := NewUpserts(insert, 7, 1, `ON CONFLICT (k) DO UPDATE SET s = excluded.s || ?`)
		ups.SetTailArgs("!")
		for k := range 4 {
			ups.Add(k, nil, "first", nil, nil, nil, nil)
			ups.Add(k, nil, fmt.Sprint("u", k), nil, nil, nil, nil) // the last of key k
		}
		ups.Add(1000, 1, "new", nil, true, `[1, 2]`, nil)
		ups.Add(1001, sql.NullInt32{}, sealed("valued"), nil, nil, nil, nil) // driver.Valuers, as event.Personal
		return ups.Flush(ctx, tx)
	})
	if err != nil {
		t.Fatal(err)
	}
	var updated, added int
	if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM r WHERE k < 4 AND s = 'u' || k || '!'`).Scan(&updated); err != nil || updated != 4 {
		t.Errorf("%d rows updated through the tail with its argument (%v), want 4", updated, err)
	}
	if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM r WHERE k = 1000 AND s = 'new' AND j = '[1, 2]'::jsonb AND ok`).Scan(&added); err != nil || added != 1 {
		t.Errorf("new row of the upsert: %d inserted (%v), want 1", added, err)
	}

	var valued int
	if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM r WHERE k = 1001 AND s = 'sealed:valued' AND n IS NULL`).Scan(&valued); err != nil || valued != 1 {
		t.Errorf("row of driver.Valuers: %d inserted (%v), want 1", valued, err)
	}

	// An array column would be flattened by unnest: the exact statement.
	if _, err := db.Exec(ctx, `CREATE TABLE a (k BIGINT, tags TEXT[])`); err != nil {
		t.Fatal(err)
	}
	err = db.InTx(ctx, func(tx *Tx) error {
		rows := NewRows(`INSERT INTO a (k, tags) VALUES`, 2, "")
		if h := rows.unnest(ctx, tx); h != "" {
			t.Errorf("a table with an array column got %q", h)
		}
		rows.Add(1, []string{"x", "y"})
		return rows.Flush(ctx, tx)
	})
	if err != nil {
		t.Fatal(err)
	}
	var tags string
	if err := db.QueryRow(ctx, `SELECT array_to_string(tags, ',') FROM a`).Scan(&tags); err != nil || tags != "x,y" {
		t.Errorf("array column holds %q (%v), want x,y", tags, err)
	}
}

// TestUnnestStatementText: the statement of an unnest head is the same
// text for any row count, with one argument per column and then the
// tail's; an insert that parses as no "INSERT INTO t (…) VALUES" gets no
// head.
func TestUnnestStatementText(t *testing.T) {
	r := NewRows(`INSERT INTO t (a, "B") VALUES`, 2, `ON CONFLICT (a) DO UPDATE SET "B" = ?`)
	r.SetTailArgs("tail")
	const head = `INSERT INTO t (a, "B") SELECT * FROM unnest(?::bigint[], ?::text[])`
	q1, a1 := r.unnestStatement(head, []any{1, "x"})
	q3, a3 := r.unnestStatement(head, []any{1, "x", 2, nil, 3, "z"})
	if q1 != q3 || q1 != head+` ON CONFLICT (a) DO UPDATE SET "B" = ?` {
		t.Errorf("texts %q and %q", q1, q3)
	}
	if fmt.Sprint(a1) != "[[1] [x] tail]" || fmt.Sprint(a3) != "[[1 2 3] [x <nil> z] tail]" {
		t.Errorf("arguments %v and %v", a1, a3)
	}
	table, cols, ok := parseInsert(" insert into t (a, \"B\")\n\tVALUES ")
	if !ok || table != "t" || fmt.Sprint(cols) != `[a "B"]` || identifier(cols[0]) != "a" || identifier(cols[1]) != "B" {
		t.Errorf("parsed %q %q %v", table, cols, ok)
	}
	for _, bad := range []string{`INSERT INTO t VALUES`, `INSERT INTO t (a) SELECT`, `UPDATE t SET (a) VALUES`, `INSERT INTO t (f(a)) VALUES`} {
		if _, _, ok := parseInsert(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

// sealed is a driver.Valuer of a text column.
type sealed string

func (s sealed) Value() (driver.Value, error) { return "sealed:" + string(s), nil }

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func bytesOrNil(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

func timeOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC()
}
