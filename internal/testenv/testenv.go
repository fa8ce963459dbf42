// Package testenv finds the real servers integration tests run against.
//
// make test starts Apache Kafka, PostgreSQL and Apicurio Registry
// (deploy/scripts/with-servers.sh) and names them in EVENTMART_TEST_KAFKA,
// EVENTMART_TEST_POSTGRES and EVENTMART_TEST_REGISTRY. A test
// that needs a server which is not named is skipped when run by hand, and
// fails under CI (CI=true), so CI never silently skips them.
package testenv

import (
	"os"
	"strings"
	"testing"
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
