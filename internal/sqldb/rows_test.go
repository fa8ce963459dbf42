package sqldb

import (
	"context"
	"fmt"
	"testing"
)

// TestRowsPadToSizeClasses: on SQLite every row count from 1 to maxRows
// inserts exactly its rows through one of nine statement texts (powers of
// two, padded with NULL rows that are left out); upserts keep the last row
// of a key; a row whose first column is NULL is inserted too (that batch
// gets the exact statement).
func TestRowsPadToSizeClasses(t *testing.T) {
	ctx := context.Background()
	db := openTestSQLite(t)
	if _, err := db.Exec(ctx, `CREATE TABLE r (k INTEGER, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `CREATE TABLE u (k INTEGER PRIMARY KEY, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	texts := map[string]bool{}
	probe := NewRows(`INSERT INTO r (k, v) VALUES`, 2, "")
	for n := 1; n <= maxRows; n++ {
		_, args := probe.statement(SQLite, make([]any, 2*n)) // NULLs: exact
		if len(args) != 2*n {
			t.Fatalf("%d rows with NULL keys: %d arguments", n, len(args))
		}
		vals := make([]any, 2*n)
		for i := range vals {
			vals[i] = i
		}
		q, args := probe.statement(SQLite, vals)
		texts[q] = true
		if len(args) != 2*SizeClass(n) {
			t.Fatalf("%d rows: %d arguments, want %d", n, len(args), 2*SizeClass(n))
		}
		if q2, _ := probe.statement(Postgres, vals); q2 == q {
			t.Fatalf("%d rows: PostgreSQL got the padded statement %q", n, q2)
		}
	}
	if len(texts) != 9 {
		t.Errorf("%d statement texts for 1…%d rows, want 9", len(texts), maxRows)
	}

	total := 0
	for _, n := range []int{1, 3, 64, 65, 200, 201, 450} {
		err := db.InTx(ctx, func(tx *Tx) error {
			rows := NewRows(`INSERT INTO r (k, v) VALUES`, 2, "")
			for i := range n {
				rows.Add(total+i, fmt.Sprint("v", total+i))
			}
			return rows.Flush(ctx, tx)
		})
		if err != nil {
			t.Fatalf("%d rows: %v", n, err)
		}
		total += n
		var count, sum int
		if err := db.QueryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(k), 0) FROM r`).Scan(&count, &sum); err != nil {
			t.Fatal(err)
		}
		if count != total || sum != total*(total-1)/2 {
			t.Fatalf("after %d rows: %d rows summing %d, want %d summing %d", n, count, sum, total, total*(total-1)/2)
		}
	}
	err := db.InTx(ctx, func(tx *Tx) error {
		rows := NewRows(`INSERT INTO r (k, v) VALUES`, 2, "")
		rows.Add(nil, "null key")
		rows.Add(7, "seven")
		return rows.Flush(ctx, tx)
	})
	if err != nil {
		t.Fatal(err)
	}
	var nulls int
	if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM r WHERE k IS NULL AND v = 'null key'`).Scan(&nulls); err != nil || nulls != 1 {
		t.Errorf("row with a NULL first column: %d inserted (%v), want 1", nulls, err)
	}

	err = db.InTx(ctx, func(tx *Tx) error {
		rows := NewUpserts(`INSERT INTO u (k, v) VALUES`, 2, 1, `ON CONFLICT (k) DO UPDATE SET v = excluded.v`)
		for i := range 5 {
			rows.Add(i%3, fmt.Sprint("v", i))
		}
		return rows.Flush(ctx, tx)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.InTx(ctx, func(tx *Tx) error {
		rows := NewUpserts(`INSERT INTO u (k, v) VALUES`, 2, 1, `ON CONFLICT (k) DO UPDATE SET v = excluded.v`)
		rows.Add(2, "again")
		return rows.Flush(ctx, tx)
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	rs, err := db.Query(ctx, `SELECT k, v FROM u ORDER BY k`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		var k int
		var v string
		if err := rs.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprint(k, "=", v))
	}
	if fmt.Sprint(got) != "[0=v3 1=v4 2=again]" {
		t.Errorf("upserts: %v, want [0=v3 1=v4 2=again]", got)
	}
}

// TestRowsTailArgsAndEach: the tail's placeholders take SetTailArgs'
// values in every statement (here, two: 250 rows); Each visits the rows a
// flush inserts, the last of each key for upserts.
func TestRowsTailArgsAndEach(t *testing.T) {
	ctx := context.Background()
	db := openTestSQLite(t)
	if _, err := db.Exec(ctx, `CREATE TABLE u (k INTEGER PRIMARY KEY, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	const n = 250
	err := db.InTx(ctx, func(tx *Tx) error {
		rows := NewUpserts(`INSERT INTO u (k, v) VALUES`, 2, 1, `ON CONFLICT (k) DO UPDATE SET v = excluded.v || ?`)
		rows.SetTailArgs("!")
		for i := range n {
			rows.Add(i, "first")
		}
		for i := range n {
			rows.Add(i, fmt.Sprint("v", i)) // the last of key i
		}
		seen := 0
		rows.Each(func(row []any) {
			if row[0] != seen || row[1] != fmt.Sprint("v", seen) {
				t.Errorf("Each: row %d is %v", seen, row)
			}
			seen++
		})
		if seen != n {
			t.Errorf("Each visited %d rows, want %d", seen, n)
		}
		if err := rows.Flush(ctx, tx); err != nil {
			return err
		}
		for i := range n {
			rows.Add(i, fmt.Sprint("v", i))
		}
		return rows.Flush(ctx, tx) // conflicts on every row: the tail's update
	})
	if err != nil {
		t.Fatal(err)
	}
	var bad int
	if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM u WHERE v <> 'v' || k || '!'`).Scan(&bad); err != nil || bad != 0 {
		t.Errorf("%d rows not updated through the tail with its argument (err %v)", bad, err)
	}
}
