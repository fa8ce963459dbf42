// Package testenv finds the real servers integration tests run against.
//
// make test starts Apache Kafka, PostgreSQL and Apicurio Registry
// (deploy/scripts/with-servers.sh) and names them in EVENTMART_TEST_KAFKA,
// EVENTMART_TEST_POSTGRES and EVENTMART_TEST_REGISTRY. A test
// that needs a server which is not named is skipped when run by hand, and
// fails under CI (CI=true), so CI never silently skips them.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Kafka returns the bootstrap brokers of the test Kafka cluster.
func Kafka(t testing.TB) []string {
	t.Helper()
	v := need(t, "EVENTMART_TEST_KAFKA")
	return strings.Split(strings.TrimPrefix(v, "kafka://"), ",")
}

// Postgres returns the connection URL of the test PostgreSQL server.
func Postgres(t testing.TB) string {
	t.Helper()
	return need(t, "EVENTMART_TEST_POSTGRES")
}

// Registry returns the base URL of the test schema registry's
// Confluent-compatible API (Apicurio Registry's
// http://host:port/apis/ccompat/v7).
func Registry(t testing.TB) string {
	t.Helper()
	return strings.TrimSuffix(need(t, "EVENTMART_TEST_REGISTRY"), "/")
}

func need(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v != "" {
		return v
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not set; under CI the real server is required (make test sets it)", name)
	}
	t.Skipf("%s is not set: run make test, or point it at a running server", name)
	return ""
}

// FreshPostgres returns a PostgreSQL URL whose database name is a prefix
// unique to this test (sqldb.Open makes one database per service under
// it), and drops the databases of the services named when the test ends.
// The test is skipped (or fails under CI) without a server.
func FreshPostgres(t testing.TB, services ...string) string {
	base := Postgres(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	var id [10]byte
	rand.Read(id[:])
	prefix := "t" + hex.EncodeToString(id[:])
	u.Path = "/" + prefix
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), base)
		if err != nil {
			t.Errorf("drop test databases: %v", err)
			return
		}
		defer conn.Close(context.Background())
		for _, s := range services {
			name := pgx.Identifier{prefix + "_" + s}.Sanitize()
			if _, err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
				t.Errorf("drop %s: %v", name, err)
			}
		}
	})
	return u.String()
}
