package sqldb_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/internal/sqldb"
	"github.com/eventmart/eventmart/internal/testenv"
)

// listDialects runs test on an empty database of each dialect holding
// the rows (name, n, kind) = (a,1,odd) … (e,5,odd); PostgreSQL is skipped without a
// server.
func listDialects(t *testing.T, test func(t *testing.T, db *sqldb.DB)) {
	ctx := context.Background()
	open := []struct {
		name string
		open func(t *testing.T) (*sqldb.DB, error)
	}{
		{"sqlite", func(t *testing.T) (*sqldb.DB, error) { return sqldb.Open(ctx, "list", "", t.TempDir()) }},
		{"postgres", func(t *testing.T) (*sqldb.DB, error) {
			url := testenv.Postgres(t)
			b := make([]byte, 4)
			rand.Read(b)
			return sqldb.Open(ctx, "list", strings.Replace(url, "/postgres?", "/t"+hex.EncodeToString(b)+"?", 1), "")
		}},
	}
	for _, d := range open {
		t.Run(d.name, func(t *testing.T) {
			db, err := d.open(t)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			err = db.InTx(ctx, func(tx *sqldb.Tx) error {
				if _, err := tx.Exec(ctx, `CREATE TABLE rows_ (name TEXT PRIMARY KEY, n BIGINT NOT NULL, kind TEXT NOT NULL)`); err != nil {
					return err
				}
				for i, name := range []string{"a", "b", "c", "d", "e"} {
					kind := map[bool]string{true: "odd", false: "even"}[i%2 == 0]
					if _, err := tx.Exec(ctx, `INSERT INTO rows_ (name, n, kind) VALUES (?, ?, ?)`, name, i+1, kind); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			test(t, db)
		})
	}
}

type item struct {
	Name string
	N    int64
}

func scanItem(r sqldb.Scanner) (item, error) {
	var it item
	err := r.Scan(&it.Name, &it.N)
	return it, err
}

func TestList(t *testing.T) {
	ctx := context.Background()
	errScan := errors.New("scan refused")
	cases := []struct {
		name    string
		query   string
		args    []any
		scan    func(sqldb.Scanner) (item, error)
		want    []string // names, in order
		wantErr error    // errors.Is target; any error if errAny
		errAny  bool
	}{
		{name: "first page", query: `SELECT name, n FROM rows_ ORDER BY n LIMIT ? OFFSET ?`, args: []any{2, 0}, scan: scanItem, want: []string{"a", "b"}},
		{name: "later page", query: `SELECT name, n FROM rows_ ORDER BY n LIMIT ? OFFSET ?`, args: []any{2, 3}, scan: scanItem, want: []string{"d", "e"}},
		{name: "newest first", query: `SELECT name, n FROM rows_ ORDER BY n DESC LIMIT ? OFFSET ?`, args: []any{3, 1}, scan: scanItem, want: []string{"d", "c", "b"}},
		{name: "filter then page", query: `SELECT name, n FROM rows_ WHERE n > ? AND name <> ? ORDER BY n LIMIT ? OFFSET ?`, args: []any{1, "c", 2, 1}, scan: scanItem, want: []string{"d", "e"}},
		{name: "past the end is empty, not nil", query: `SELECT name, n FROM rows_ ORDER BY n LIMIT ? OFFSET ?`, args: []any{2, 10}, scan: scanItem, want: []string{}},
		{name: "no args", query: `SELECT name, n FROM rows_ WHERE name = 'b'`, scan: scanItem, want: []string{"b"}},
		{name: "scan error", query: `SELECT name, n FROM rows_ ORDER BY n`, scan: func(sqldb.Scanner) (item, error) { return item{}, errScan }, wantErr: errScan},
		{name: "query error", query: `SELECT name, n FROM no_such_table`, scan: scanItem, errAny: true},
		{name: "column count mismatch", query: `SELECT name FROM rows_`, scan: scanItem, errAny: true},
	}
	listDialects(t, func(t *testing.T, db *sqldb.DB) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				check := func(t *testing.T, got []item, err error) {
					t.Helper()
					if c.wantErr != nil || c.errAny {
						if err == nil || (c.wantErr != nil && !errors.Is(err, c.wantErr)) {
							t.Fatalf("err = %v, want %v", err, c.wantErr)
						}
						if got != nil {
							t.Fatalf("got %v with an error, want nil", got)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					if got == nil {
						t.Fatal("got a nil slice, want an empty one")
					}
					names := []string{}
					for _, it := range got {
						names = append(names, it.Name)
					}
					if !reflect.DeepEqual(names, c.want) {
						t.Fatalf("got %v, want %v", names, c.want)
					}
				}
				got, err := sqldb.List(ctx, db, c.query, c.args, c.scan)
				check(t, got, err)
				// The same inside a write transaction (*Tx is a Querier too),
				// which a failed statement aborts on PostgreSQL.
				err = db.InTx(ctx, func(tx *sqldb.Tx) error {
					got, err := sqldb.List(ctx, tx, c.query, c.args, c.scan)
					check(t, got, err)
					return err
				})
				if (err != nil) != (c.wantErr != nil || c.errAny) {
					t.Fatalf("transaction: %v", err)
				}
			})
		}
	})
}

func TestScanOne(t *testing.T) {
	ctx := context.Background()
	listDialects(t, func(t *testing.T, db *sqldb.DB) {
		names, err := sqldb.List(ctx, db, `SELECT name FROM rows_ WHERE n >= ? ORDER BY n DESC LIMIT ?`, []any{2, 3}, sqldb.ScanOne[string])
		if err != nil || !reflect.DeepEqual(names, []string{"e", "d", "c"}) {
			t.Fatalf("names = %v, %v", names, err)
		}
		ns, err := sqldb.List(ctx, db, `SELECT n FROM rows_ ORDER BY n LIMIT ? OFFSET ?`, []any{2, 1}, sqldb.ScanOne[int64])
		if err != nil || !reflect.DeepEqual(ns, []int64{2, 3}) {
			t.Fatalf("ns = %v, %v", ns, err)
		}
		if _, err := sqldb.List(ctx, db, `SELECT name, n FROM rows_`, nil, sqldb.ScanOne[string]); err == nil {
			t.Fatal("two columns read into one value without an error")
		}
	})
}

func TestAndEq(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name     string
		filters  []sqldb.Eq
		wantSQL  string
		wantArgs []any
		want     []string // names listed, after the page's LIMIT 2 OFFSET 0
	}{
		{name: "no filters", wantSQL: "", wantArgs: nil, want: []string{"a", "b"}},
		{name: "empty values filter nothing", filters: []sqldb.Eq{{Col: "kind", Value: ""}, {Col: "name", Value: ""}}, want: []string{"a", "b"}},
		{name: "one filter", filters: []sqldb.Eq{{Col: "kind", Value: "even"}}, wantSQL: " AND kind = ?", wantArgs: []any{"even"}, want: []string{"b", "d"}},
		{name: "two filters, in order", filters: []sqldb.Eq{{Col: "kind", Value: "odd"}, {Col: "name", Value: "c"}},
			wantSQL: " AND kind = ? AND name = ?", wantArgs: []any{"odd", "c"}, want: []string{"c"}},
		{name: "a skipped filter keeps the others' order", filters: []sqldb.Eq{{Col: "kind", Value: ""}, {Col: "name", Value: "e"}},
			wantSQL: " AND name = ?", wantArgs: []any{"e"}, want: []string{"e"}},
		{name: "nothing matches", filters: []sqldb.Eq{{Col: "kind", Value: "even"}, {Col: "name", Value: "a"}},
			wantSQL: " AND kind = ? AND name = ?", wantArgs: []any{"even", "a"}, want: []string{}},
	}
	const base = `SELECT name FROM rows_ WHERE 1 = 1`
	for _, c := range cases {
		q, args := sqldb.AndEq(base, nil, c.filters...)
		if q != base+c.wantSQL || !reflect.DeepEqual(args, c.wantArgs) {
			t.Errorf("%s: AndEq = %q %v, want %q %v", c.name, q, args, base+c.wantSQL, c.wantArgs)
		}
	}
	// Args already given stay first.
	if q, args := sqldb.AndEq(`x WHERE n > ?`, []any{1}, sqldb.Eq{Col: "kind", Value: "odd"}); q != `x WHERE n > ? AND kind = ?` || !reflect.DeepEqual(args, []any{1, "odd"}) {
		t.Errorf("AndEq after an argument = %q %v", q, args)
	}
	listDialects(t, func(t *testing.T, db *sqldb.DB) {
		for _, c := range cases {
			q, args := sqldb.AndEq(base, nil, c.filters...)
			got, err := sqldb.List(ctx, db, q+` ORDER BY n LIMIT ? OFFSET ?`, append(args, 2, 0), sqldb.ScanOne[string])
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Errorf("%s: listed %v, %v; want %v", c.name, got, err, c.want)
			}
		}
	})
}

// ListIn reads the rows of more keys than one statement of an IN list
// takes, in the keys' order, with what follows the list applied: on SQLite
// chunk by chunk, on PostgreSQL in one read of an array of every key.
func TestListIn(t *testing.T) {
	listDialects(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		keys := make([]string, 0, 1203)
		for i := range 1200 {
			keys = append(keys, "missing-"+strings.Repeat("x", i%7)+string(rune('A'+i%26))+strings.Repeat("y", i/26))
		}
		keys = append([]string{"e"}, keys...) // the first chunk
		keys = append(keys, "d", "a")         // the last chunk, itself in the query's order
		before := db.Stats()
		got, err := sqldb.ListIn(ctx, db, `SELECT name, n FROM rows_ WHERE name`, ` ORDER BY name`, keys, scanItem)
		if err != nil {
			t.Fatal(err)
		}
		want, reads := []item{{"e", 5}, {"a", 1}, {"d", 4}}, int64(3) // each chunk in the query's order
		if db.Dialect == sqldb.Postgres {
			want, reads = []item{{"a", 1}, {"d", 4}, {"e", 5}}, 1
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ListIn = %v, want %v", got, want)
		}
		if n := db.Stats().Sub(before).Reads; n != reads {
			t.Errorf("%d keys in %d reads, want %d", len(keys), n, reads)
		}
		// Integer keys, and none.
		got, err = sqldb.ListIn(ctx, db, `SELECT name, n FROM rows_ WHERE n`, ` ORDER BY n DESC`, []int64{2, 4, 9}, scanItem)
		if want := []item{{"d", 4}, {"b", 2}}; err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ListIn of integers = %v, %v; want %v", got, err, want)
		}
		if got, err = sqldb.ListIn(ctx, db, `SELECT name, n FROM rows_ WHERE n`, ``, []int64{}, scanItem); err != nil || got == nil || len(got) != 0 {
			t.Errorf("ListIn of no keys = %#v, %v; want an empty list", got, err)
		}
		// As a transaction's first statement (on PostgreSQL BEGIN goes in
		// its round trip): it is in the transaction, so are its locks, and
		// the writes after it roll back with it.
		failed := errors.New("undo")
		err = db.InTx(ctx, func(tx *sqldb.Tx) error {
			got, err := sqldb.ListIn(ctx, tx, `SELECT name, n FROM rows_ WHERE name`, ` ORDER BY name`+tx.ForUpdate(), []string{"a", "b"}, scanItem)
			if want := []item{{"a", 1}, {"b", 2}}; err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("ListIn first in a transaction = %v, %v; want %v", got, err, want)
			}
			if db.Dialect == sqldb.Postgres {
				if _, err := db.Exec(ctx, `SELECT name FROM rows_ WHERE name = 'a' FOR UPDATE NOWAIT`); err == nil {
					t.Error("a row ListIn locked first in a transaction was not locked")
				}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO rows_ (name, n, kind) VALUES ('z', 26, 'even')`); err != nil {
				t.Fatal(err)
			}
			return failed
		})
		if !errors.Is(err, failed) {
			t.Fatalf("InTx = %v, want its work's error", err)
		}
		if got, err := sqldb.ListIn(ctx, db, `SELECT name, n FROM rows_ WHERE name`, ``, []string{"z"}, scanItem); err != nil || len(got) != 0 {
			t.Errorf("after the rollback, %v (%v); want the insert undone", got, err)
		}
		// A transaction that sends nothing commits without a statement.
		if err := db.InTx(ctx, func(tx *sqldb.Tx) error { return nil }); err != nil {
			t.Errorf("an empty transaction: %v", err)
		}
	})
}

// TestPadIn: keys are padded to a power of two by repeating the last, so
// lists of different lengths share a statement text (TestListIn reads
// through padded lists).
func TestPadIn(t *testing.T) {
	for _, tc := range []struct {
		keys []any
		want []any
	}{
		{nil, nil},
		{[]any{"a"}, []any{"a"}},
		{[]any{"a", "b"}, []any{"a", "b"}},
		{[]any{"a", "b", "c"}, []any{"a", "b", "c", "c"}},
		{[]any{1, 2, 3, 4, 5}, []any{1, 2, 3, 4, 5, 5, 5, 5}},
	} {
		keys := slices.Clone(tc.keys)
		if got := sqldb.PadIn(keys); !slices.Equal(got, tc.want) {
			t.Errorf("PadIn(%v) = %v, want %v", tc.keys, got, tc.want)
		}
		if !slices.Equal(keys, tc.keys) {
			t.Errorf("PadIn changed its argument: %v, was %v", keys, tc.keys)
		}
	}
}
