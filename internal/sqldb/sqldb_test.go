package sqldb_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/internal/sqldb"
	"github.com/eventmart/eventmart/internal/testenv"
)

var migrations = []sqldb.Migration{
	{Name: "0001_items.sql", SQL: `CREATE TABLE items (id {{ID}}, name TEXT NOT NULL UNIQUE, data {{BLOB}});`},
	{Name: "0002_count.sql", SQL: `ALTER TABLE items ADD COLUMN n BIGINT NOT NULL DEFAULT 0;`},
	{Name: "0003_n_index.sql", SQL: `CREATE INDEX items_n ON items {{BRIN}} (n);`},
}

func exercise(t *testing.T, db *sqldb.DB) {
	ctx := context.Background()
	// A primary (or SQLite) is not a read-only hot standby: the app migrates it.
	if in, err := db.InRecovery(ctx); err != nil || in {
		t.Fatalf("InRecovery: %v, %v; want false", in, err)
	}
	for i := 0; i < 2; i++ { // applying twice applies nothing the second time
		if err := db.Migrate(ctx, migrations...); err != nil {
			t.Fatal(err)
		}
	}
	var applied int
	db.QueryRow(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&applied)
	if applied != len(migrations) {
		t.Fatalf("%d migrations recorded, want %d", applied, len(migrations))
	}
	// {{BRIN}}: a BRIN index on PostgreSQL, a B-tree (SQLite's only kind) on SQLite.
	var kind string
	q := `SELECT 'btree' FROM sqlite_master WHERE type = 'index' AND name = 'items_n'`
	if db.Dialect == sqldb.Postgres {
		q = `SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam WHERE c.relname = 'items_n'`
	}
	if err := db.QueryRow(ctx, q).Scan(&kind); err != nil || kind != map[sqldb.Dialect]string{sqldb.Postgres: "brin", sqldb.SQLite: "btree"}[db.Dialect] {
		t.Fatalf("index items_n: %q, %v", kind, err)
	}
	err := db.InTx(ctx, func(tx *sqldb.Tx) error {
		for _, name := range []string{"a", "b?", "c"} { // a '?' inside a value is not a placeholder
			if _, err := tx.Exec(ctx, `INSERT INTO items (name, data, n) VALUES (?, ?, ?)`, name, []byte{0, 1}, len(name)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := db.QueryRow(ctx, `SELECT SUM(n) FROM items WHERE name <> 'x?' AND id > ?`, 0).Scan(&n); err != nil || n != 4 {
		t.Fatalf("sum = %d, %v", n, err)
	}
	// A failing transaction leaves nothing behind.
	err = db.InTx(ctx, func(tx *sqldb.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO items (name) VALUES (?)`, "d"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO items (name) VALUES (?)`, "a") // unique violation
		return err
	})
	if err == nil {
		t.Fatal("duplicate insert succeeded")
	}
	if !sqldb.IsUniqueViolation(err) || sqldb.IsUniqueViolation(errors.New("x")) || sqldb.IsUniqueViolation(nil) {
		t.Errorf("IsUniqueViolation misjudges %v", err)
	}
	if got := sqldb.Placeholders(3); got != "?,?,?" {
		t.Errorf("Placeholders(3) = %q", got)
	}
	var count int
	db.QueryRow(ctx, `SELECT COUNT(*) FROM items`).Scan(&count)
	if count != 3 {
		t.Fatalf("%d rows after a rolled back transaction, want 3", count)
	}
	exerciseHooks(t, db)
}

// exerciseHooks checks when a transaction's OnCommit and OnEnd functions
// run: OnEnd once the transaction has ended, whatever its outcome — after
// OnCommit's on a commit, after a rollback, a panic, or with the work it
// was registered by rolled back to a savepoint.
func exerciseHooks(t *testing.T, db *sqldb.DB) {
	ctx := context.Background()
	boom := errors.New("boom")
	var ran []string
	for _, c := range []struct {
		name string
		work func(tx *sqldb.Tx) error
		want string // the hooks run, in order
	}{
		{"commit", func(*sqldb.Tx) error { return nil }, "commit end"},
		{"rollback", func(*sqldb.Tx) error { return boom }, "end"},
		{"panic", func(*sqldb.Tx) error { panic(boom) }, "end"},
		{"rolled back to a savepoint", func(tx *sqldb.Tx) error {
			sp, err := tx.Savepoint(ctx, "s")
			if err != nil {
				return err
			}
			tx.OnCommit(func() { t.Error("a commit hook rolled back to a savepoint ran") })
			tx.OnEnd(func() { ran = append(ran, "end since the savepoint") })
			if err := tx.RollbackTo(ctx, sp); err != nil {
				return err
			}
			return tx.Release(ctx, sp)
		}, "commit end end since the savepoint"},
	} {
		t.Run("hooks/"+c.name, func(t *testing.T) {
			ran = nil
			func() {
				defer func() { recover() }()
				db.InTx(ctx, func(tx *sqldb.Tx) error {
					tx.OnEnd(func() { ran = append(ran, "end") })
					tx.OnCommit(func() { ran = append(ran, "commit") })
					return c.work(tx)
				})
			}()
			if got := strings.Join(ran, " "); got != c.want {
				t.Errorf("hooks run: %q, want %q", got, c.want)
			}
		})
	}
}

func TestSQLite(t *testing.T) {
	db, err := sqldb.Open(context.Background(), "test", "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Dialect != sqldb.SQLite || !strings.HasSuffix(db.Name, "test.db") {
		t.Fatalf("opened %v %s", db.Dialect, db.Name)
	}
	exercise(t, db)
}

func TestPostgresDatabasePerService(t *testing.T) {
	url := testenv.Postgres(t)
	b := make([]byte, 4)
	rand.Read(b)
	prefix := "t" + hex.EncodeToString(b)
	base := strings.Replace(url, "/postgres?", "/"+prefix+"?", 1)
	if base == url {
		t.Fatalf("EVENTMART_TEST_POSTGRES %q should name the postgres database", url)
	}
	db, err := sqldb.Open(context.Background(), "order", base, "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Dialect != sqldb.Postgres || db.Name != prefix+"_order" {
		t.Fatalf("opened %v %s, want %s_order", db.Dialect, db.Name, prefix)
	}
	exercise(t, db)
	again, err := sqldb.Open(context.Background(), "order", base, "") // exists now: opened, not created
	if err != nil {
		t.Fatal(err)
	}
	again.Close()
}
