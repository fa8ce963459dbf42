package analytics

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/sqldb"
	"github.com/eventmart/eventmart/internal/stream"
	"github.com/eventmart/eventmart/internal/testenv"
)

// saveChanges keeps the last change of each entry: a value is stored, a
// nil value deletes the entry, however many entries a commit changes
// (more than one statement's maxRows of each).
func TestSaveChangesKeepsTheLastChangeOfEachEntry(t *testing.T) {
	dsn := ""
	if os.Getenv("EVENTMART_TEST_SERVICES_DB") == "postgres" {
		dsn = testenv.Postgres(t)
	}
	db := openDB(t, "state", "an"+strings.ReplaceAll(event.NewID(), "-", "")[:12], dsn, t.TempDir())
	ctx := context.Background()
	entry := func(i int, value string) stream.StateEntry {
		e := stream.StateEntry{Operator: "op", Key: fmt.Sprintf("k%03d", i), Window: "w"}
		if value != "" {
			e.Value = []byte(value)
		}
		return e
	}
	save := func(changes ...[]stream.StateEntry) {
		t.Helper()
		if err := db.InTx(ctx, func(tx *sqldb.Tx) error { return saveChanges(ctx, tx, changes...) }); err != nil {
			t.Fatal(err)
		}
	}
	n := maxRows + 50
	var first []stream.StateEntry
	for i := range n {
		first = append(first, entry(i, "a"))
	}
	save(first)
	// Every even entry deleted, every third changed (after a delete of
	// it in the same commit, for the multiples of six), one more added.
	var deletes, changes []stream.StateEntry
	for i := 0; i < n; i += 2 {
		deletes = append(deletes, entry(i, ""))
	}
	for i := 0; i < n; i += 3 {
		changes = append(changes, entry(i, "b"))
	}
	save(deletes, append(changes, entry(n, "c")))
	var want []stream.StateEntry
	for i := range n + 1 {
		switch {
		case i == n:
			want = append(want, entry(i, "c"))
		case i%3 == 0:
			want = append(want, entry(i, "b"))
		case i%2 != 0:
			want = append(want, entry(i, "a"))
		}
	}
	got, err := loadState(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stored %d entries, want %d:\n%v\nwant\n%v", len(got), len(want), got, want)
	}
}
