package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/internal/testenv"
)

func runCLI(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := Run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), err
}

// topicsApplyThenList checks the done-when of the foundation issue on one
// bus: apply creates ADR-0006's table, a second apply changes nothing, and
// the listing shows the ADR's partitions and retention.
func topicsApplyThenList(t *testing.T, args ...string) {
	if _, err := runCLI(t, nil, append([]string{"topics", "apply"}, args...)...); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, nil, append([]string{"topics", "apply"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, "unchanged") != 8 {
		t.Errorf("second apply changed something:\n%s", out)
	}
	out, err = runCLI(t, nil, append([]string{"topics"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range [][]string{
		{"user-events", "12", "30d", "2592000000"}, {"catalog-events", "8", "90d", "7776000000"},
		{"inventory-events", "16", "7d", "604800000"}, {"order-events", "20", "1y", "31536000000"},
		{"payment-events", "12", "7y", "220752000000"}, {"shipping-events", "8", "1y", "31536000000"},
		{"notification-events", "4", "30d", "2592000000"}, {"audit-events", "4", "7y", "220752000000"},
	} {
		if !containsFields(out, append(row, "ok")) {
			t.Errorf("listing lacks %v:\n%s", row, out)
		}
	}
}

func containsFields(out string, want []string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.Join(strings.Fields(line), " ") == strings.Join(want, " ") {
			return true
		}
	}
	return false
}

func TestTopicsOnEmbeddedLog(t *testing.T) {
	topicsApplyThenList(t, "--data", t.TempDir())
}

func TestTopicsOnKafka(t *testing.T) {
	brokers := testenv.Kafka(t)
	topicsApplyThenList(t, "--bus", "kafka://"+strings.Join(brokers, ","))
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"teleport"}, {"topics", "remove"}, {"dlq"}, {"dlq", "list"}, {"audit"}, {"audit", "check"}, {"replay", "catalog"}, {"serve"}, {"serve", "warehouse"}, {"topics", "--bus", "amqp://x"}, {"run", "extra"},
	} {
		_, err := runCLI(t, nil, args...)
		if !errors.As(err, new(usageError)) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
	if _, err := parseServiceURLs("order=ftp://x"); err == nil {
		t.Error("ftp service URL accepted")
	}
	if m, err := parseServiceURLs("order=http://127.0.0.1:1,user=http://h:2"); err != nil || len(m) != 2 {
		t.Errorf("parseServiceURLs = %v, %v", m, err)
	}
	if m, err := parseServiceURLs("order=http://h:1|http://h:2,user=http://h:3"); err != nil || len(m["order"]) != 2 || m["order"][1].Host != "h:2" {
		t.Errorf("parseServiceURLs with two order instances = %v, %v", m, err)
	}
	if _, err := parseServiceURLs("order=http://h:1|"); err == nil {
		t.Error("empty instance URL accepted")
	}
}

// Kafka settings from the environment are checked before anything opens.
func TestKafkaSettings(t *testing.T) {
	for _, env := range []map[string]string{
		{"EVENTMART_REPLICATION_FACTOR": "three"},
		{"EVENTMART_REPLICATION_FACTOR": "0"},
		{"EVENTMART_MIN_INSYNC_REPLICAS": "-1"},
		{"EVENTMART_SESSION_TIMEOUT": "soon"},
		{"EVENTMART_BUS": "kafka://127.0.0.1:1", "EVENTMART_REPLICATION_FACTOR": "1", "EVENTMART_MIN_INSYNC_REPLICAS": "2"},
	} {
		if _, err := runCLI(t, env, "topics"); !errors.As(err, new(usageError)) {
			t.Errorf("%v: err = %v, want a usage error", env, err)
		}
	}
	var cfg Config
	if _, err := parseFlags(&Env{Getenv: func(k string) string {
		return map[string]string{"EVENTMART_REPLICATION_FACTOR": "3", "EVENTMART_INSTANCE_ID": "order-1"}[k]
	}, Stderr: io.Discard}, "serve", []string{"--min-insync-replicas", "2", "order"}, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.ReplicationFactor != 3 || cfg.MinInsyncReplicas != 2 || cfg.InstanceID != "order-1" {
		t.Errorf("config %+v", cfg)
	}
}
