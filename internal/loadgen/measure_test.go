package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/eventmart/eventmart/catalog"
	"github.com/eventmart/eventmart/internal/app"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/inventory"
	"github.com/eventmart/eventmart/order"
	"github.com/eventmart/eventmart/payment"
	"github.com/eventmart/eventmart/shipping"
	"github.com/eventmart/eventmart/user"
)

func TestParseMetrics(t *testing.T) {
	text := `# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.34
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1.76501e+09
# TYPE eventmart_events_published_total counter
eventmart_events_published_total{event_type="OrderCreated",outcome="ok",topic="order-events"} 7
eventmart_events_published_total{event_type="OrderCreated",outcome="error",topic="order-events"} 2
eventmart_events_published_total{event_type="PaymentAuthorized",outcome="ok",topic="payment-events"} 3
# TYPE eventmart_events_consumed_total counter
eventmart_events_consumed_total{event_type="OrderCreated",group="payment-service",outcome="ok",topic="order-events"} 5
# TYPE eventmart_consumer_lag gauge
eventmart_consumer_lag{group="payment-service",partition="0",topic="order-events"} 4
eventmart_consumer_lag{group="payment-service",partition="1",topic="order-events"} 0
# TYPE eventmart_outbox_backlog gauge
eventmart_outbox_backlog{service="order"} 2
# TYPE eventmart_db_commits_total counter
eventmart_db_commits_total{service="order-service"} 40
eventmart_db_commits_total{service="payment-service"} 9
`
	s, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if s.cpu != 12340*time.Millisecond || s.published != 10 || s.events != 17 || s.start != 1.76501e9 || s.pending != 6 {
		t.Fatalf("parseMetrics = %+v; want cpu 12.34s, published 10 (ok only), events 17, start 1.76501e9, pending 6", s)
	}
	if s.writes["order"] != 40 || s.writes["payment"] != 9 || len(s.writes) != 2 {
		t.Fatalf("write commits %v; want order 40, payment 9 (by database: the service label without -service)", s.writes)
	}
	if _, err := parseMetrics(strings.NewReader("go_goroutines 12\n")); err == nil {
		t.Fatal("metrics without process_cpu_seconds_total were accepted")
	}
}

func TestMetricsURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:8080":          "http://127.0.0.1:8080/metrics",
		"http://127.0.0.1:8080/":         "http://127.0.0.1:8080/metrics",
		"http://127.0.0.1:9404/metrics":  "http://127.0.0.1:9404/metrics",
		"https://h.example/prom/metrics": "https://h.example/prom/metrics",
	} {
		if got := MetricsURL(in); got != want {
			t.Errorf("MetricsURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// fakeProcess serves a /metrics whose CPU and event counters the test
// moves, from a real Prometheus registry.
type fakeProcess struct {
	cpuMillis, published atomic.Int64
	srv                  *httptest.Server
}

func newFakeProcess(t *testing.T) *fakeProcess {
	p := &fakeProcess{}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "process_cpu_seconds_total", Help: "cpu"},
		func() float64 { return float64(p.cpuMillis.Load()) / 1000 }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "eventmart_events_published_total", Help: "published",
		ConstLabels: prometheus.Labels{"outcome": "ok"}}, func() float64 { return float64(p.published.Load()) }))
	p.srv = httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(p.srv.Close)
	return p
}

// Each process's CPU is the difference between its readings before and
// after, reported apart, per finished order, and summed with the load
// generator's own; records come from the processes' published counters.
func TestMeterAccountsPerProcess(t *testing.T) {
	a, b := newFakeProcess(t), newFakeProcess(t)
	a.cpuMillis.Store(5000)
	b.cpuMillis.Store(100)
	a.published.Store(40)
	procs := []Process{{Name: "order", MetricsURL: a.srv.URL + "/metrics"}, {Name: "payment", MetricsURL: b.srv.URL + "/metrics"}}
	m, notes, err := newMeter(context.Background(), Config{Processes: procs})
	if err != nil || len(notes) > 0 {
		t.Fatalf("newMeter: %v, notes %q", err, notes)
	}
	a.cpuMillis.Add(2000) // 2 s over 100 orders: 20 ms/order
	b.cpuMillis.Add(500)  // 5 ms/order
	a.published.Add(1800)
	got, err := m.stop(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got.perOrder(100)
	byName := map[string]ProcessCPU{}
	for _, p := range got.Processes {
		byName[p.Name] = p
	}
	if byName["order"].MsPerOrder != 20 || byName["payment"].MsPerOrder != 5 {
		t.Fatalf("per process: %+v; want order 20, payment 5 ms/order", got.Processes)
	}
	if runtime.GOOS == "linux" {
		if _, ok := byName["load generator"]; !ok {
			t.Errorf("the load generator's own CPU is not reported: %+v", got.Processes)
		}
	}
	if want := byName["order"].CPU + byName["payment"].CPU + byName["load generator"].CPU; got.InAll() != want {
		t.Errorf("in all = %s, want the sum %s", got.InAll(), want)
	}
	if got.Records != 1800 || got.RecordsFrom != "metrics" || got.Commits != -1 {
		t.Errorf("records %d from %q, commits %d; want 1800 from metrics, commits not measured", got.Records, got.RecordsFrom, got.Commits)
	}
	text := got.String()
	if !strings.Contains(text, "order 20.00, payment 5.00") || !strings.Contains(text, "records/order: 18.00") || strings.Contains(text, "commits") {
		t.Errorf("report:\n%s", text)
	}
}

// A named process that does not answer fails the run; a discovered one is
// left out with a note.
func TestMeterSources(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	named := []Process{{Name: "order", MetricsURL: dead.URL + "/metrics"}}
	if _, _, err := newMeter(context.Background(), Config{Processes: named}); err == nil {
		t.Fatal("a named process that does not answer did not fail the run")
	}
	live := newFakeProcess(t)
	found := []Process{{Name: "order", MetricsURL: dead.URL + "/metrics", Discovered: true}, {Name: "payment", MetricsURL: live.srv.URL}}
	m, notes, err := newMeter(context.Background(), Config{Processes: found})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.procs) != 1 || m.procs[0].Name != "payment" || len(notes) != 1 || !strings.HasPrefix(notes[0], "order left out") {
		t.Fatalf("procs %+v, notes %q; want payment alone and a note on order", m.procs, notes)
	}
	if _, _, err := newMeter(context.Background(), Config{Postgres: "postgres://127.0.0.1:1/x?connect_timeout=1"}); err == nil {
		t.Fatal("an unreachable --postgres did not fail the run")
	}
	m, notes, err = newMeter(context.Background(), Config{Postgres: "postgres://127.0.0.1:1/x?connect_timeout=1", PostgresDiscovered: true})
	if err != nil || m != nil || len(notes) != 1 {
		t.Fatalf("an unreachable discovered PostgreSQL: meter %v, notes %q, %v; want no meter and a note", m, notes, err)
	}
}

// A PID that is an Eventmart process read from its /metrics (the same
// start time) is counted once.
func TestDuplicatePIDDropped(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux only")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	parent := os.Getppid() // started before this process: a different start time
	procs := []Process{{Name: "eventmart", MetricsURL: srv.URL + "/metrics"}, {Name: "me", PID: os.Getpid()}, {Name: "parent", PID: parent}}
	got, dropped, self := dropDuplicates(context.Background(), http.DefaultClient, procs)
	if len(got) != 2 || got[0].Name != "eventmart" || got[1].Name != "parent" || len(dropped) != 1 || !self {
		t.Fatalf("kept %+v, dropped %q, in process %v; want eventmart and parent kept, this process dropped and said to be in process", got, dropped, self)
	}
}

// The quiet after the last order: with /metrics, no event published or
// consumed over two windows and nothing pending; without, CPU under the
// threshold.
func TestQuiet(t *testing.T) {
	m := &meter{procs: []Process{{Name: "a", MetricsURL: "x"}}}
	still := 0
	r := func(events float64, cpu time.Duration) reading {
		return reading{cpu: []time.Duration{cpu}, events: events}
	}
	if m.quiet(r(10, 0), r(12, 0), &still) || m.quiet(r(12, 0), r(12, time.Second), &still) || !m.quiet(r(12, time.Second), r(12, 2*time.Second), &still) {
		t.Fatal("with events: want quiet after two windows without an event, whatever the CPU")
	}
	still = 0
	lagging := r(12, 0)
	lagging.pending = 3
	if m.quiet(r(12, 0), lagging, &still) || m.quiet(lagging, lagging, &still) || m.quiet(lagging, lagging, &still) {
		t.Fatal("quiet while a consumer lags")
	}
	pids := &meter{procs: []Process{{Name: "kafka", PID: 1}, {Name: "postgres", PID: 2}}}
	still = 0
	if below := quietBelow(2); pids.quiet(r(-1, 0), r(-1, below), &still) || !pids.quiet(r(-1, 0), r(-1, below-time.Millisecond), &still) {
		t.Fatalf("without metrics: want quiet under %s of CPU per window", quietBelow(2))
	}
}

// `eventmart load --json` against a real embedded Eventmart reports the
// CPU of its process (read from its /metrics), the records its outbox
// relays published, and, on PostgreSQL, the commits of its databases.
func TestRunMeasuresARealApp(t *testing.T) {
	settings := map[string]string{"EVENTMART_ADMIN_EMAIL": "admin@example.com", "EVENTMART_ADMIN_PASSWORD": "admin passphrase"}
	defs := []service.Def{user.Def(), catalog.Def(), inventory.Def(), order.Def(), payment.Def(), shipping.Def()}
	opts := []apptest.Option{apptest.Settings(settings)}
	if os.Getenv("EVENTMART_TEST_POSTGRES") != "" {
		opts = append(opts, apptest.OnPostgres(t, defs))
	}
	dsn := ""
	opts = append(opts, func(c *app.Config) { dsn = c.DB })
	h := apptest.Start(t, defs, opts...)
	cfg := Config{Target: h.Server.URL, Orders: 20, Concurrency: 4, Customers: 2, Products: 2,
		AdminEmail: settings["EVENTMART_ADMIN_EMAIL"], AdminPassword: settings["EVENTMART_ADMIN_PASSWORD"],
		Processes: []Process{{Name: "eventmart", MetricsURL: MetricsURL(h.Server.URL)}}, Postgres: dsn}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Shipped   int
		Processes []struct {
			Name          string
			CPUMsPerOrder float64
		}
		CPUMsPerOrder   *float64
		RecordsPerOrder *float64
		CommitsPerOrder *float64
		MeasuredSeconds *float64

		RecordsPerOrderByTopic        map[string]float64
		CommitsPerOrderByService      map[string]float64
		WriteCommitsPerOrderByService map[string]float64
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.Shipped != cfg.Orders || len(out.Processes) == 0 || out.Processes[0].Name != "eventmart" || out.Processes[0].CPUMsPerOrder <= 0 {
		t.Fatalf("load --json: %s; want every order shipped and the eventmart process's CPU > 0", b)
	}
	// The app runs in this process: the load generator's CPU is the
	// app's, not added a second time.
	if len(out.Processes) != 1 || out.CPUMsPerOrder == nil || *out.CPUMsPerOrder != out.Processes[0].CPUMsPerOrder || out.MeasuredSeconds == nil || *out.MeasuredSeconds <= 0 {
		t.Fatalf("load --json: %s; want the one process, in all, and the span measured", b)
	}
	// Every order publishes at least OrderCreated, its payment's, its
	// stock's and its shipment's events.
	if out.RecordsPerOrder == nil || *out.RecordsPerOrder < 4 {
		t.Fatalf("load --json: %s; want records per order counted (≥ 4)", b)
	}
	if dsn == "" {
		if out.CommitsPerOrder != nil {
			t.Fatalf("load --json: %s; want no commits on SQLite", b)
		}
	} else if out.CommitsPerOrder == nil || *out.CommitsPerOrder < 1 {
		t.Fatalf("load --json: %s; want PostgreSQL commits per order (≥ 1)", b)
	} else {
		// Split per service, of which the order service's write
		// transactions (at least the order's insert) are a part.
		var sum float64
		for _, v := range out.CommitsPerOrderByService {
			sum += v
		}
		o, w := out.CommitsPerOrderByService["order"], out.WriteCommitsPerOrderByService["order"]
		if math.Abs(sum-*out.CommitsPerOrder) > 1e-9 || w < 1 || w > o {
			t.Fatalf("load --json: %s; want the commits per service summing to the commits, order's write transactions ≥ 1 and ≤ its commits", b)
		}
	}
	fmt.Fprintln(os.Stderr, res) // the text report, for the log
}
