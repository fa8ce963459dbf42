package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/internal/settings"
	"github.com/eventmart/eventmart/internal/testenv"
)

func runCLI(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	out, _, err := runCLIStderr(t, env, args...)
	return out, err
}

// runCLIStderr runs the command and returns its stdout and stderr.
func runCLIStderr(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := Run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

// topicsApplyThenList checks the done-when of the foundation issue on one
// bus: apply creates ADR-0006's table (and its extension, analytics-events),
// a second apply changes nothing, and the listing shows the partitions and
// retention.
func topicsApplyThenList(t *testing.T, args ...string) {
	if _, err := runCLI(t, nil, append([]string{"topics", "apply"}, args...)...); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, nil, append([]string{"topics", "apply"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	want := 9 // ADR-0006's topics
	if slices.Contains(args, "--bus") {
		want++ // and the region's role topic on Kafka
	}
	if strings.Count(out, "unchanged") != want {
		t.Errorf("second apply changed something:\n%s", out)
	}
	out, stderr, err := runCLIStderr(t, nil, append([]string{"topics"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stderr, "bus: ") {
		t.Errorf("the listing does not say which bus it read; stderr:\n%s", stderr)
	}
	for _, row := range [][]string{
		{"user-events", "12", "30d", "2592000000"}, {"catalog-events", "8", "90d", "7776000000"},
		{"inventory-events", "16", "7d", "604800000"}, {"order-events", "20", "1y", "31536000000"},
		{"payment-events", "12", "7y", "220752000000"}, {"shipping-events", "8", "1y", "31536000000"},
		{"notification-events", "4", "30d", "2592000000"}, {"audit-events", "4", "7y", "220752000000"},
		{"analytics-events", "4", "90d", "7776000000"},
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
	topicsApplyThenList(t, "--data", t.TempDir(), "--log-partitions", "20")
}

// TestEmbeddedLogPartitions: the embedded log creates each topic with
// EVENTMART_LOG_PARTITIONS partitions (default 1), and a log created with
// more keeps them: neither apply nor the listing calls that drift.
func TestEmbeddedLogPartitions(t *testing.T) {
	fresh := t.TempDir()
	if _, err := runCLI(t, nil, "topics", "apply", "--data", fresh); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, nil, "topics", "--data", fresh)
	if err != nil {
		t.Fatal(err)
	}
	if !containsFields(out, []string{"order-events", "1", "1y", "31536000000", "ok"}) {
		t.Errorf("a fresh embedded log's order-events is not 1 partition, ok:\n%s", out)
	}
	three := map[string]string{"EVENTMART_LOG_PARTITIONS": "3"}
	dir := t.TempDir()
	if _, err := runCLI(t, three, "topics", "apply", "--data", dir); err != nil {
		t.Fatal(err)
	}
	if out, err = runCLI(t, three, "topics", "--data", dir); err != nil {
		t.Fatal(err)
	}
	if !containsFields(out, []string{"order-events", "3", "1y", "31536000000", "ok"}) {
		t.Errorf("EVENTMART_LOG_PARTITIONS=3: order-events is not 3 partitions, ok:\n%s", out)
	}

	old := t.TempDir()
	if _, err := runCLI(t, nil, "topics", "apply", "--data", old, "--log-partitions", "20"); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, nil, "topics", "apply", "--data", old)
	if err != nil {
		t.Fatalf("apply with fewer partitions than the log has: %v\n%s", err, out)
	}
	if strings.Count(out, "unchanged") != 9 {
		t.Errorf("apply on a log with more partitions changed something:\n%s", out)
	}
	if out, err = runCLI(t, nil, "topics", "--data", old); err != nil {
		t.Fatal(err)
	}
	for _, row := range [][]string{{"order-events", "20"}, {"notification-events", "4"}} {
		if !containsFields(out, append(row, "1y", "31536000000", "ok")) && !containsFields(out, append(row, "30d", "2592000000", "ok")) {
			t.Errorf("listing of a log created with 20 partitions lacks %v … ok:\n%s", row, out)
		}
	}
}

func TestTopicsOnKafka(t *testing.T) {
	brokers := testenv.Kafka(t)
	topicsApplyThenList(t, "--bus", "kafka://"+strings.Join(brokers, ","))
}

// TestUsageErrors also checks that a usage error opens nothing: run in the
// package's directory, no ./data may appear.
func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"teleport"}, {"topics", "remove"}, {"dlq"}, {"dlq", "list"}, {"audit"}, {"audit", "check"}, {"replay", "catalog"}, {"serve"}, {"serve", "warehouse"}, {"topics", "--bus", "amqp://x"}, {"run", "extra"},
	} {
		_, err := runCLI(t, nil, args...)
		if !errors.As(err, new(usageError)) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
	if _, err := os.Stat("data"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a usage error created ./data (%v)", err)
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
	env, err := newEnv(func(k string) string {
		return map[string]string{"EVENTMART_REPLICATION_FACTOR": "3", "EVENTMART_INSTANCE_ID": "order-1"}[k]
	}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseFlags(env, "serve", []string{"--min-insync-replicas", "2", "order"}, &cfg, runtimeFlags); err != nil {
		t.Fatal(err)
	}
	if cfg.ReplicationFactor != 3 || cfg.MinInsyncReplicas != 2 || cfg.InstanceID != "order-1" {
		t.Errorf("config %+v", cfg)
	}
}

// Read-only commands on a data directory that does not exist fail with an
// error saying what is missing and how to fix it, and create nothing.
func TestReadOnlyCommandsCreateNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nothing-here")
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"topics", "--data", dir}, []string{"no event log at " + filepath.Join(dir, "eventlog.db"), "eventmart run --data " + dir, "--bus"}},
		{[]string{"schema", "check", "--data", dir}, []string{"no schema registry at " + filepath.Join(dir, "schema-registry.json"), "eventmart schema register", "--registry"}},
	} {
		_, stderr, err := runCLIStderr(t, nil, c.args...)
		if err == nil {
			t.Errorf("%v: no error", c.args)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q lacks %q", c.args, err, w)
			}
		}
		if c.args[0] == "topics" && !strings.Contains(stderr, "bus: embedded log "+filepath.Join(dir, "eventlog.db")) {
			t.Errorf("%v: stderr does not name the bus:\n%s", c.args, stderr)
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%v created %s (%v)", c.args, dir, err)
		}
	}
}

// Client commands say which Eventmart they talk to.
func TestClientCommandsNameTheirTarget(t *testing.T) {
	_, stderr, err := runCLIStderr(t, map[string]string{"EVENTMART_TARGET": "http://127.0.0.1:1", "EVENTMART_ADMIN_EMAIL": "a@example.com", "EVENTMART_ADMIN_PASSWORD": "pw"}, "audit", "verify")
	if err == nil || !strings.Contains(stderr, "target: http://127.0.0.1:1") {
		t.Errorf("err %v, stderr:\n%s", err, stderr)
	}
	// Nothing listens there: the error names the target and how to set it.
	for _, want := range []string{"no Eventmart answers at http://127.0.0.1:1", "--target", "EVENTMART_TARGET"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err %v lacks %q", err, want)
		}
	}
}

// eventmart config lists every setting with its value and source; secrets
// are masked, and a malformed setting is an error naming it and its value.
func TestConfig(t *testing.T) {
	secret := "a jwt secret of thirty-two bytes!"
	out, err := runCLI(t, map[string]string{"EVENTMART_JWT_SECRET": secret, "EVENTMART_SAGA_TIMEOUT": "5s", "EVENTMART_BUS": "kafka://h:1"},
		"config", "--bus", "embedded", "--admin-password", "hunter2")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, secret) || strings.Contains(out, "hunter2") {
		t.Errorf("config shows a secret:\n%s", out)
	}
	for _, row := range [][]string{
		{"EVENTMART_JWT_SECRET", "****", "environment", "runtime"},
		{"EVENTMART_ADMIN_PASSWORD", "****", "flag", "--admin-password", "user,", "cli"},
		{"EVENTMART_SAGA_TIMEOUT", "5s", "environment", "order"},
		{"EVENTMART_BUS", "embedded", "flag", "--bus", "runtime"},
		{"EVENTMART_TOKEN_TTL", "15m", "default", "runtime"},
		{"EVENTMART_SMTP_PASSWORD", "-", "default", "notification"},
	} {
		if !containsFields(out, row) {
			t.Errorf("config lacks the row %v:\n%s", row, out)
		}
	}
	for _, s := range settings.All {
		if !strings.Contains(out, s.Name+" ") {
			t.Errorf("config lacks %s", s.Name)
		}
	}
	_, err = runCLI(t, map[string]string{"EVENTMART_CART_SWEEP_INTERVAL": "often"}, "config")
	if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), `EVENTMART_CART_SWEEP_INTERVAL="often"`) {
		t.Errorf("malformed setting: %v", err)
	}
}

// On Kafka, services refuse to start with a saga timeout below twice the
// consumer-group session timeout (the defaults, 30s and 10s, pass); the
// message names both settings and what to set.
func TestServeRefusesASagaTimeoutBelowTwiceTheSessionTimeout(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"EVENTMART_BUS": "kafka://127.0.0.1:1", "EVENTMART_SESSION_TIMEOUT": "45s"}, // Kafka clients' usual default
			[]string{"EVENTMART_SAGA_TIMEOUT=30s", "EVENTMART_SESSION_TIMEOUT=45s", "EVENTMART_SESSION_TIMEOUT to at most 15s", "EVENTMART_SAGA_TIMEOUT to at least 1m30s"}},
		{map[string]string{"EVENTMART_BUS": "kafka://127.0.0.1:1", "EVENTMART_SESSION_TIMEOUT": "20s", "EVENTMART_SAGA_TIMEOUT": "39s"},
			[]string{"EVENTMART_SAGA_TIMEOUT=39s", "EVENTMART_SESSION_TIMEOUT=20s)", "at least 40s"}},
	} {
		_, err := runCLI(t, tc.env, "serve", "order")
		var usage usageError
		if !errors.As(err, &usage) {
			t.Fatalf("%v: err %v, want a usage error", tc.env, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: %q lacks %q", tc.env, err, w)
			}
		}
	}
	for _, ok := range []map[string]string{
		{"EVENTMART_BUS": "kafka://127.0.0.1:1"},                                     // the defaults
		{"EVENTMART_BUS": "kafka://127.0.0.1:1", "EVENTMART_SESSION_TIMEOUT": "15s"}, // the cluster script's
		{"EVENTMART_BUS": "kafka://127.0.0.1:1", "EVENTMART_SAGA_TIMEOUT": "90s"},
		{"EVENTMART_SAGA_TIMEOUT": "1s"}, // the embedded bus has no sessions
	} {
		env, err := newEnv(func(k string) string { return ok[k] }, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkGroupTimeouts(env, config(env.Settings)); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
}

// Each command's -h names its own usage and flags; eventmart alone is a
// usage error (exit 2) that prints the commands.
func TestHelpTexts(t *testing.T) {
	help := func(args ...string) string {
		t.Helper()
		_, stderr, err := runCLIStderr(t, nil, args...)
		if !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%v: err %v, want flag.ErrHelp", args, err)
		}
		return stderr
	}
	if h := help("topics", "-h"); !strings.Contains(h, "Usage: eventmart topics [apply]") || !strings.Contains(h, "without an argument, list") || strings.Contains(h, "instance-id") {
		t.Errorf("topics -h:\n%s", h)
	}
	if help("run", "-h") == help("serve", "-h") {
		t.Error("run -h and serve -h are the same")
	}
	if h := help("dlq", "-h"); !strings.Contains(h, "list|show|redrive|discard") {
		t.Errorf("dlq -h does not list its subcommands:\n%s", h)
	}
	if h := help("replay", "-h"); strings.Contains(h, "(default -1)") || !strings.Contains(h, "unset: from the log start") {
		t.Errorf("replay -h:\n%s", h)
	}
	var stderr bytes.Buffer
	if code := Main(nil, func(string) string { return "" }, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), "Commands:") {
		t.Errorf("eventmart with no arguments: exit %d, stderr:\n%s", code, stderr.String())
	}
	out, err := runCLI(t, nil, "schema", "list")
	if err != nil || !strings.Contains(out, "eventmart.OrderCreated.v1") {
		t.Errorf("schema list: %v\n%s", err, out)
	}
}
