package sqldb

import (
	"context"
	"testing"
)

// The SQLite connections' pragmas are what makes a commit durable and keeps
// the statement journal off the disk: every connection of both pools must
// carry them (they are per connection, set from the DSN).
func TestSQLitePragmas(t *testing.T) {
	db := openTestSQLite(t)
	ctx := context.Background()
	want := map[string]int{"synchronous": 2, "temp_store": 2, "foreign_keys": 1} // FULL, MEMORY, on
	for name, conn := range map[string]func(string) (int, error){
		"writer": func(p string) (v int, err error) { err = db.w.QueryRowContext(ctx, "PRAGMA "+p).Scan(&v); return },
		"reader": func(p string) (v int, err error) { err = db.r.QueryRowContext(ctx, "PRAGMA "+p).Scan(&v); return },
	} {
		for p, w := range want {
			got, err := conn(p)
			if err != nil || got != w {
				t.Errorf("%s connection: PRAGMA %s = %d, %v; want %d", name, p, got, err, w)
			}
		}
	}
}
