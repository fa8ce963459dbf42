package audit

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
	"github.com/eventmart/eventmart/internal/testenv"
)

// openService returns the audit service on a fresh, migrated database of
// its own, without a bus or relay (its outbox rows stay for the test to
// read): SQLite, or PostgreSQL with EVENTMART_TEST_SERVICES_DB=postgres.
// It archives every block as it is appended, as the tests of blocks
// expect; archive_test.go tests the archive of several blocks.
func openService(t testing.TB) *Service {
	t.Helper()
	s := openServiceOn(t, testDSN(t))
	s.arch.delay = 0
	return s
}

// testDSN is the database for a test: "" (SQLite), or a PostgreSQL
// database of its own with EVENTMART_TEST_SERVICES_DB=postgres.
func testDSN(t testing.TB) string {
	if os.Getenv("EVENTMART_TEST_SERVICES_DB") == "postgres" {
		return freshPostgres(t)
	}
	return ""
}

// freshPostgres returns a URL naming a database prefix of its own on the
// test PostgreSQL server, dropped when t ends.
func freshPostgres(t testing.TB) string { return testenv.FreshPostgres(t, Name) }

func openServiceOn(t testing.TB, dsn string) *Service {
	t.Helper()
	return openServiceMigrated(t, dsn, t.TempDir(), func(ms []sqldb.Migration) []sqldb.Migration { return ms })
}

// openServiceMigrated is openServiceOn with the service's migrations that
// pick returns, its SQLite file in dir.
func openServiceMigrated(t testing.TB, dsn, dir string, pick func([]sqldb.Migration) []sqldb.Migration) *Service {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, Name, dsn, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	ms, err := sqldb.ReadMigrations(sub, "")
	if err != nil {
		t.Fatal(err)
	}
	ms = append([]sqldb.Migration{{Name: "inbox", SQL: inbox.Migration}, {Name: "outbox", SQL: outbox.Migration}}, pick(ms)...)
	if err := db.Migrate(ctx, ms...); err != nil {
		t.Fatal(err)
	}
	return New(service.Deps{DB: db, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now})
}

// recordBlock records envs as the inbox records a batch: in one
// transaction, so as one block.
func recordBlock(t testing.TB, s *Service, envs ...*event.Envelope) {
	t.Helper()
	ctx := context.Background()
	if err := s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		for _, e := range envs {
			if err := s.onEvent(ctx, tx, e, nil); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// events returns n events of a product, with names of size bytes.
func events(t testing.TB, n, size int) []*event.Envelope {
	t.Helper()
	o := event.FromRequest("chain-test", event.Metadata{})
	envs := make([]*event.Envelope, n)
	for i := range envs {
		e, err := event.New("test-service", o, &event.ProductCreated{ProductID: "p1", SKU: fmt.Sprint("S", i), Name: strings.Repeat("n", size), PriceCents: 1, Currency: "EUR"})
		if err != nil {
			t.Fatal(err)
		}
		e.Partition, e.Offset = 3, int64(100+i)
		envs[i] = e
	}
	return envs
}
