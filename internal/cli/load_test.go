package cli

import (
	"errors"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/internal/loadgen"
	"github.com/eventmart/eventmart/internal/settings"
)

func loadEnv(t *testing.T, vars map[string]string) *Env {
	t.Helper()
	v, err := settings.Parse(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	return &Env{Settings: v}
}

// --metrics auto finds the target and every instance of
// EVENTMART_SERVICE_URLS (what the gateway proxies to), named after their
// service; --cpu-pids takes NAME=PID or a bare PID.
func TestLoadFindsTheProcessesToMeasure(t *testing.T) {
	env := loadEnv(t, map[string]string{"EVENTMART_SERVICE_URLS": "order=http://h:8105|http://h:8125,user=http://h:8101"})
	got, err := measuredProcesses(env, "http://h:8080", "auto", "kafka=12,"+strings.TrimSpace("34"))
	if err != nil {
		t.Fatal(err)
	}
	want := []loadgen.Process{
		{Name: "gateway", MetricsURL: "http://h:8080/metrics", Discovered: true},
		{Name: "user", MetricsURL: "http://h:8101/metrics", Discovered: true},
		{Name: "order-1", MetricsURL: "http://h:8105/metrics", Discovered: true},
		{Name: "order-2", MetricsURL: "http://h:8125/metrics", Discovered: true},
		{Name: "kafka", PID: 12},
		{Name: loadgen.ProcessName(34), PID: 34},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("measuredProcesses =\n%+v\nwant\n%+v", got, want)
	}
	embedded := loadEnv(t, nil)
	got, err = measuredProcesses(embedded, "http://127.0.0.1:8080", "auto,extra=http://h:9/prom", "")
	if err != nil || len(got) != 2 || got[0].Name != "eventmart" || got[1] != (loadgen.Process{Name: "extra", MetricsURL: "http://h:9/prom"}) {
		t.Fatalf("embedded: %+v, %v; want the one eventmart process and the named extra", got, err)
	}
	if got, err := measuredProcesses(embedded, "http://h:1", "none", ""); err != nil || len(got) != 0 {
		t.Fatalf("--metrics none: %+v, %v", got, err)
	}
	for _, bad := range [][2]string{{"ftp://h:1", ""}, {"none", "kafka=x"}, {"none", "-3"}} {
		if _, err := measuredProcesses(embedded, "http://h:1", bad[0], bad[1]); !errors.As(err, new(usageError)) {
			t.Errorf("--metrics %q --cpu-pids %q: %v, want a usage error", bad[0], bad[1], err)
		}
	}
}

// Kafka and PostgreSQL are found in EVENTMART_BUS and EVENTMART_DB (as
// cluster.sh env exports them), or named by flag.
func TestLoadFindsKafkaAndPostgres(t *testing.T) {
	env := loadEnv(t, map[string]string{"EVENTMART_BUS": "kafka://a:9092,b:9092", "EVENTMART_DB": "postgres://postgres@h:5432/shop"})
	if brokers, found, err := measuredKafka(env, "auto"); err != nil || !found || !reflect.DeepEqual(brokers, []string{"a:9092", "b:9092"}) {
		t.Errorf("kafka auto = %v, %v, %v", brokers, found, err)
	}
	if brokers, found, _ := measuredKafka(env, "c:1"); found || !reflect.DeepEqual(brokers, []string{"c:1"}) {
		t.Errorf("--kafka c:1 = %v, found %v", brokers, found)
	}
	if brokers, _, _ := measuredKafka(loadEnv(t, nil), "auto"); brokers != nil {
		t.Errorf("kafka auto on the embedded log = %v", brokers)
	}
	if dsn, found, err := measuredPostgres(env, "auto"); err != nil || !found || dsn != "postgres://postgres@h:5432/shop" {
		t.Errorf("postgres auto = %q, %v, %v", dsn, found, err)
	}
	if dsn, _, _ := measuredPostgres(env, "none"); dsn != "" {
		t.Errorf("--postgres none = %q", dsn)
	}
	if _, _, err := measuredPostgres(env, "mysql://h"); !errors.As(err, new(usageError)) {
		t.Errorf("--postgres mysql://h: %v, want a usage error", err)
	}
}

// The script that runs the standard set explains itself and refuses
// what it cannot run before starting anything.
func TestBenchOrdersScript(t *testing.T) {
	script := "../../deploy/scripts/bench-orders.sh"
	if _, err := os.Stat(script); err != nil {
		t.Fatal(err)
	}
	out, err := runScript(t, script, "--help")
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	for _, w := range []string{"--runs", "--orders", "--modes", "--concurrency", "--rates", "--rate-seconds", "--warmup", "--load", "--out", "embedded", "distributed", "n/a", "peak RSS"} {
		if !strings.Contains(out, w) {
			t.Errorf("--help does not mention %s:\n%s", w, out)
		}
	}
	for args, want := range map[string]string{
		"":                          "name at least one eventmart binary",
		"--modes cloud /bin/true":   "unknown mode cloud",
		"--concurrency 0 /bin/true": "0 is not a positive number",
		"--rates cloud=5 /bin/true": "cloud=5 is not MODE=ORDERS_PER_SECOND",
		"--warmup lots /bin/true":   "lots is not a number of orders",
		"/nonexistent/eventmart":    "is not an executable",
	} {
		out, err := runScript(t, script, strings.Fields(args)...)
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("bench-orders.sh %s: %v\n%s\nwant a failure saying %q", args, err, out, want)
		}
	}
}

// runScript runs a shell script and returns its combined output.
func runScript(t *testing.T, script string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("bash", append([]string{script}, args...)...).CombinedOutput()
	return string(out), err
}
