package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Process is a process whose CPU a run measures: an Eventmart process,
// read from its own /metrics, or any other process by PID (a broker,
// PostgreSQL), read from /proc with all its descendants.
type Process struct {
	// Name labels the process in the report: "gateway", "order-1",
	// "kafka".
	Name string
	// MetricsURL is the process's /metrics endpoint (its
	// process_cpu_seconds_total), or "" for a PID.
	MetricsURL string
	// PID is the process read from /proc (Linux), 0 for a MetricsURL.
	PID int
	// Discovered says the process was found rather than named: one that
	// does not answer is left out of the run's figures with a note
	// instead of failing the run.
	Discovered bool
}

// ProcessCPU is the CPU one process spent over a run's measurement.
type ProcessCPU struct {
	Name   string        `json:"name"`
	Source string        `json:"source"` // the /metrics URL, "pid N" or "self"
	CPU    time.Duration `json:"-"`
	// JIT is the part of CPU a JVM (read by PID) spent compiling its own
	// code (jitCPU): large in a broker's first minutes, nil elsewhere.
	JIT time.Duration `json:"-"`
	// CPUSeconds and MsPerOrder are CPU in the units of the report,
	// JITMsPerOrder JIT's (absent when 0).
	CPUSeconds    float64 `json:"cpuSeconds"`
	MsPerOrder    float64 `json:"cpuMsPerOrder"`
	JITMsPerOrder float64 `json:"jitCpuMsPerOrder,omitempty"`
}

// metricsSample is what a run reads from one /metrics endpoint.
type metricsSample struct {
	cpu       time.Duration // process_cpu_seconds_total
	published float64       // eventmart_events_published_total{outcome="ok"}
	events    float64       // events published and consumed, every outcome: the process's work
	pending   float64       // work known to wait: consumer lag and outbox backlog
	start     float64       // process_start_time_seconds (Unix seconds), 0 when absent
	writes    tally         // eventmart_db_commits_total by database ("order-service" -> "order")
}

// scrapeTimeout bounds one GET of /metrics.
const scrapeTimeout = 5 * time.Second

// scrape reads process_cpu_seconds_total, the events the process
// published and its start time from the Prometheus text exposition at
// url. A missing process_cpu_seconds_total is an error: the endpoint is
// not a process's own (or the platform exports no process metrics).
func scrape(ctx context.Context, hc *http.Client, url string) (metricsSample, error) {
	ctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return metricsSample{}, fmt.Errorf("loadgen: metrics %s: %w", url, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return metricsSample{}, fmt.Errorf("loadgen: metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return metricsSample{}, fmt.Errorf("loadgen: metrics: GET %s: %s", url, resp.Status)
	}
	s, err := parseMetrics(resp.Body)
	if err != nil {
		return metricsSample{}, fmt.Errorf("loadgen: metrics %s: %w", url, err)
	}
	return s, nil
}

// parseMetrics reads a metricsSample from the Prometheus text format.
func parseMetrics(r io.Reader) (metricsSample, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return metricsSample{}, err
	}
	cpu := fams["process_cpu_seconds_total"]
	if cpu == nil || len(cpu.Metric) == 0 {
		return metricsSample{}, errors.New("no process_cpu_seconds_total")
	}
	var s metricsSample
	for _, m := range cpu.Metric {
		s.cpu += seconds(m.GetCounter().GetValue() + m.GetUntyped().GetValue() + m.GetGauge().GetValue())
	}
	if st := fams["process_start_time_seconds"]; st != nil && len(st.Metric) > 0 {
		m := st.Metric[0]
		s.start = m.GetGauge().GetValue() + m.GetUntyped().GetValue()
	}
	if pub := fams["eventmart_events_published_total"]; pub != nil {
		for _, m := range pub.Metric {
			v := m.GetCounter().GetValue()
			s.events += v
			for _, l := range m.Label {
				if l.GetName() == "outcome" && l.GetValue() == "ok" {
					s.published += v
				}
			}
		}
	}
	if con := fams["eventmart_events_consumed_total"]; con != nil {
		for _, m := range con.Metric {
			s.events += m.GetCounter().GetValue()
		}
	}
	if c := fams["eventmart_db_commits_total"]; c != nil {
		s.writes = tally{}
		for _, m := range c.Metric {
			for _, l := range m.Label {
				if l.GetName() == "service" {
					s.writes[strings.TrimSuffix(l.GetValue(), "-service")] += int64(m.GetCounter().GetValue())
				}
			}
		}
	}
	for _, name := range []string{"eventmart_consumer_lag", "eventmart_outbox_backlog"} {
		if g := fams[name]; g != nil {
			for _, m := range g.Metric {
				s.pending += m.GetGauge().GetValue()
			}
		}
	}
	return s, nil
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// meter reads the CPU of a run's processes, the records Kafka holds and
// the commits PostgreSQL counted, before and after the orders.
type meter struct {
	procs    []Process
	hc       *http.Client
	kafka    *kafkaCounter // nil: not measured
	postgres *pgCounter    // nil: not measured

	start     []time.Duration // per proc
	startJIT  []time.Duration // per proc
	self      time.Duration   // this process; -1 when /proc is unreadable
	published float64         // summed over the /metrics processes
	writes    tally           // write commits per service, from /metrics
	records   tally
	commits   tally
}

// reading is one look at everything a meter watches.
type reading struct {
	cpu       []time.Duration
	jit       []time.Duration // of cpu, a JVM's JIT compiler threads (jitCPU)
	published float64
	events    float64 // -1 when no process has metrics
	pending   float64
	writes    tally
}

// read reads every process's CPU once.
func (m *meter) read(ctx context.Context) (reading, error) {
	r := reading{cpu: make([]time.Duration, len(m.procs)), jit: make([]time.Duration, len(m.procs)), events: -1, writes: tally{}}
	procs, err := m.procsTable()
	if err != nil {
		return r, err
	}
	for i, p := range m.procs {
		if p.MetricsURL != "" {
			s, err := scrape(ctx, m.hc, p.MetricsURL)
			if err != nil {
				return r, fmt.Errorf("%s: %w", p.Name, err)
			}
			r.cpu[i] = s.cpu
			r.published += s.published
			for k, v := range s.writes {
				r.writes[k] += v
			}
			r.events = max(r.events, 0) + s.events
			r.pending += s.pending
			continue
		}
		cpu, err := treeCPU(procs, p.PID)
		if err != nil {
			return r, fmt.Errorf("%s: %w", p.Name, err)
		}
		r.cpu[i], r.jit[i] = cpu, jitCPU(p.PID)
	}
	return r, nil
}

// procsTable reads /proc once when a PID is watched.
func (m *meter) procsTable() (map[int]procStat, error) {
	for _, p := range m.procs {
		if p.MetricsURL == "" {
			return readProcs()
		}
	}
	return nil, nil
}

func (r reading) total() time.Duration {
	var t time.Duration
	for _, c := range r.cpu {
		t += c
	}
	return t
}

// startMeter takes the readings the run's figures start from.
// With inProcess, the load generator runs inside a watched process and
// its own CPU is not read apart.
func startMeter(ctx context.Context, procs []Process, kafka *kafkaCounter, postgres *pgCounter, inProcess bool) (*meter, error) {
	m := &meter{procs: procs, hc: &http.Client{}, kafka: kafka, postgres: postgres, self: -1}
	r, err := m.read(ctx)
	if err != nil {
		return nil, err
	}
	m.start, m.startJIT, m.published, m.writes = r.cpu, r.jit, r.published, r.writes
	if self, err := processCPU([]int{os.Getpid()}); err == nil && !inProcess {
		m.self = self
	}
	if kafka != nil {
		if m.records, err = kafka.records(ctx); err != nil {
			return nil, err
		}
	}
	if postgres != nil {
		if m.commits, err = postgres.commits(ctx); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// settleTimeout bounds how long stop waits for the watched processes to
// finish the work the run caused (events after an order's final status:
// audit, notifications, offset commits), which may lag well behind the
// orders in distributed mode.
const settleTimeout = 60 * time.Second

// quietWindow is the interval over which the watched processes must be
// quiet.
const quietWindow = 500 * time.Millisecond

// quietBelow is the CPU over quietWindow below which n watched processes
// count as quiet: 2% of a core, plus 1% for each process beyond the first
// (idle processes still tick: timers, heartbeats, polls).
func quietBelow(n int) time.Duration {
	return quietWindow/50 + time.Duration(max(n-1, 0))*quietWindow/100
}

// quiet says whether the watched processes were quiet from prev to cur:
// when Eventmart processes are read from /metrics, none published or
// consumed an event over two windows in a row and none reports consumer
// lag or an outbox backlog (a long batch moves no counter while it runs;
// idle CPU, which the scrapes add to, says less); otherwise their CPU
// stayed below quietBelow.
func (m *meter) quiet(prev, cur reading, still *int) bool {
	if cur.events >= 0 {
		if cur.events == prev.events && cur.pending == 0 {
			*still++
		} else {
			*still = 0
		}
		return *still >= 2
	}
	return cur.total()-prev.total() < quietBelow(len(m.procs))
}

// Measured is what a meter measured over a run.
type Measured struct {
	Processes []ProcessCPU
	// Records is the records written to Kafka (-1: not measured);
	// RecordsFrom says where they were counted.
	Records     int64
	RecordsFrom string
	Commits     int64 // PostgreSQL commits (-1: not measured)
	// ByTopic is Records per topic (from Kafka; else nil), ByService
	// Commits per service's database (nil when not measured), of which
	// Writes were write transactions (eventmart_db_commits_total; the
	// others are reads outside a transaction).
	ByTopic, ByService, Writes map[string]int64
	Span                       time.Duration
	orders                     int // finished orders, the figures' denominator
}

// stop waits until the watched processes are quiet (see quiet; at most
// settleTimeout) and returns what they spent since
// startMeter; this process's own CPU is read at once (the orders are
// done, what follows is the meter's own polling).
func (m *meter) stop(ctx context.Context, began time.Time) (*Measured, error) {
	out := &Measured{Records: -1, Commits: -1}
	var self time.Duration = -1
	if m.self >= 0 {
		if cur, err := processCPU([]int{os.Getpid()}); err == nil {
			self = cur - m.self
		}
	}
	prev, err := m.read(ctx)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(settleTimeout)
	still := 0
	for time.Now().Before(deadline) {
		select {
		case <-time.After(quietWindow): // sampling: the quiet is measured over the window
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		cur, err := m.read(ctx)
		if err != nil {
			return nil, err
		}
		quiet := m.quiet(prev, cur, &still)
		prev = cur
		if quiet {
			break
		}
	}
	out.Span = time.Since(began)
	for i, p := range m.procs {
		src := p.MetricsURL
		if src == "" {
			src = "pid " + strconv.Itoa(p.PID)
		}
		out.Processes = append(out.Processes, ProcessCPU{Name: p.Name, Source: src, CPU: prev.cpu[i] - m.start[i], JIT: prev.jit[i] - m.startJIT[i]})
	}
	if self >= 0 {
		out.Processes = append(out.Processes, ProcessCPU{Name: "load generator", Source: "self", CPU: self})
	}
	switch {
	case m.kafka != nil:
		defer m.kafka.close()
		n, err := m.kafka.records(ctx)
		if err != nil {
			return nil, err
		}
		out.ByTopic = n.since(m.records)
		out.Records, out.RecordsFrom = tally(out.ByTopic).sum(), "kafka"
	case hasMetrics(m.procs):
		out.Records, out.RecordsFrom = int64(prev.published-m.published), "metrics"
	}
	if m.postgres != nil {
		n, err := m.postgres.settledCommits(ctx)
		if err != nil {
			return nil, err
		}
		out.ByService = n.since(m.commits)
		out.Writes = prev.writes.since(m.writes)
		out.Commits = tally(out.ByService).sum()
	}
	return out, nil
}

func hasMetrics(procs []Process) bool {
	for _, p := range procs {
		if p.MetricsURL != "" {
			return true
		}
	}
	return false
}

// MetricsURL returns the /metrics endpoint of an Eventmart process whose
// base URL is base; a URL with a path other than "/" is taken as it is.
func MetricsURL(base string) string {
	b := strings.TrimRight(base, "/")
	if i := strings.Index(b, "://"); i >= 0 && strings.Contains(b[i+3:], "/") {
		return base
	}
	return b + "/metrics"
}

// dropDuplicatePIDs removes the PIDs that are Eventmart processes already
// read from their /metrics (the same start time to the clock tick), so
// that `--cpu-pids <eventmart's pid>` beside discovery does not count a
// process twice. It returns what it dropped, for the report.
func dropDuplicatePIDs(ctx context.Context, hc *http.Client, procs []Process) ([]Process, []string) {
	procs, dropped, _ := dropDuplicates(ctx, hc, procs)
	return procs, dropped
}

// dropDuplicates is dropDuplicatePIDs that also says whether this process
// is one of the Eventmart processes (the load generator run in the same
// process as the app, as in tests): its own CPU is then not added again.
func dropDuplicates(ctx context.Context, hc *http.Client, procs []Process) ([]Process, []string, bool) {
	starts := map[float64]string{}
	for _, p := range procs {
		if p.MetricsURL == "" {
			continue
		}
		if s, err := scrape(ctx, hc, p.MetricsURL); err == nil && s.start > 0 {
			starts[roundTick(s.start)] = p.Name
		}
	}
	if len(starts) == 0 {
		return procs, nil, false
	}
	self := false
	if st, err := pidStartTime(os.Getpid()); err == nil {
		_, self = starts[roundTick(st)]
	}
	var out []Process
	var dropped []string
	for _, p := range procs {
		if p.MetricsURL == "" {
			if st, err := pidStartTime(p.PID); err == nil {
				if name, ok := starts[roundTick(st)]; ok {
					dropped = append(dropped, fmt.Sprintf("pid %d is %s, read from its /metrics", p.PID, name))
					continue
				}
			}
		}
		out = append(out, p)
	}
	return out, dropped, self
}

// roundTick rounds Unix seconds to the clock tick.
func roundTick(s float64) float64 { return float64(int64(s*100+0.5)) / 100 }
