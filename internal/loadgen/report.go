package loadgen

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// newMeter checks the sources of cfg's measurement and takes their first
// readings; nil when cfg names none. A source that does not answer fails
// the run, unless it was discovered (Process.Discovered,
// Config.KafkaDiscovered, Config.PostgresDiscovered): then it is left out
// and a note says why.
func newMeter(ctx context.Context, cfg Config) (*meter, []string, error) {
	var notes []string
	hc := &http.Client{}
	var procs []Process
	for _, p := range cfg.Processes {
		var err error
		if p.MetricsURL != "" {
			_, err = scrape(ctx, hc, p.MetricsURL)
		} else {
			_, err = processCPU([]int{p.PID})
		}
		switch {
		case err == nil:
			procs = append(procs, p)
		case p.Discovered:
			notes = append(notes, fmt.Sprintf("%s left out: %v", p.Name, err))
		default:
			return nil, nil, fmt.Errorf("loadgen: %s: %w", p.Name, err)
		}
	}
	procs, dropped, inProcess := dropDuplicates(ctx, hc, procs)
	notes = append(notes, dropped...)
	var kafka *kafkaCounter
	if len(cfg.Kafka) > 0 {
		k, err := newKafkaCounter(cfg.Kafka)
		if err == nil {
			if _, err = k.records(ctx); err != nil {
				k.close()
			}
		}
		switch {
		case err == nil:
			kafka = k
		case cfg.KafkaDiscovered:
			notes = append(notes, fmt.Sprintf("kafka records left out: %v", err))
		default:
			return nil, nil, err
		}
	}
	var pg *pgCounter
	if cfg.Postgres != "" {
		c, err := newPGCounter(ctx, cfg.Postgres)
		switch {
		case err == nil:
			pg = c
		case cfg.PostgresDiscovered:
			notes = append(notes, fmt.Sprintf("postgres commits left out: %v", err))
		default:
			return nil, nil, err
		}
	}
	if len(procs) == 0 && kafka == nil && pg == nil {
		return nil, notes, nil
	}
	m, err := startMeter(ctx, procs, kafka, pg, inProcess)
	if err != nil {
		if kafka != nil {
			kafka.close()
		}
		return nil, nil, err
	}
	return m, notes, nil
}

// perOrder fills in the per-order figures for n finished orders.
func (m *Measured) perOrder(n int) {
	m.orders = n
	for i := range m.Processes {
		p := &m.Processes[i]
		p.CPUSeconds = p.CPU.Seconds()
		p.MsPerOrder = msPer(p.CPU, n)
		p.JITMsPerOrder = msPer(p.JIT, n)
	}
}

func msPer(d time.Duration, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(d) / float64(time.Millisecond) / float64(n)
}

// InAll is the CPU of every measured process together.
func (m *Measured) InAll() time.Duration {
	var t time.Duration
	for _, p := range m.Processes {
		t += p.CPU
	}
	return t
}

// String is the measurement in the text report: the CPU per order in all
// and of each process (busiest first), records and commits per order.
func (m *Measured) String() string {
	n := max(m.orders, 1)
	var b strings.Builder
	if len(m.Processes) > 0 {
		procs := slices.Clone(m.Processes)
		slices.SortStableFunc(procs, func(a, b ProcessCPU) int { return cmp.Compare(b.CPU, a.CPU) })
		parts := make([]string, len(procs))
		for i, p := range procs {
			parts[i] = fmt.Sprintf("%s %.2f", p.Name, msPer(p.CPU, n))
			if p.JIT > 0 {
				parts[i] += fmt.Sprintf(" (of which JIT compiling %.2f)", msPer(p.JIT, n))
			}
		}
		fmt.Fprintf(&b, "cpu ms/order: %.2f in all (%d processes): %s", msPer(m.InAll(), n), len(procs), strings.Join(parts, ", "))
	}
	if m.Records >= 0 {
		from := "written to kafka"
		if m.RecordsFrom == "metrics" {
			from = "published (eventmart_events_published_total)"
		}
		fmt.Fprintf(&b, "\nrecords/order: %.2f %s (%d in all)%s", float64(m.Records)/float64(n), from, m.Records, byName(m.ByTopic, n))
	}
	if m.Commits >= 0 {
		fmt.Fprintf(&b, "\ncommits/order: %.2f in postgres (%d in all)%s", float64(m.Commits)/float64(n), m.Commits, byName(m.ByService, n))
		if w := tally(m.Writes).sum(); w > 0 {
			fmt.Fprintf(&b, "\nof which write transactions/order: %.2f%s", float64(w)/float64(n), byName(m.Writes, n))
		}
	}
	fmt.Fprintf(&b, "\nmeasured from the first order to quiet after the last: %s", m.Span.Round(time.Millisecond))
	return strings.TrimPrefix(b.String(), "\n")
}

// MarshalJSON is the result as `eventmart load --json` prints it: counts,
// throughput, latency percentiles in milliseconds, and what was measured
// (null where nothing was).
func (r *Result) MarshalJSON() ([]byte, error) {
	type latency struct {
		P50 float64 `json:"p50"`
		P95 float64 `json:"p95"`
		P99 float64 `json:"p99"`
		Max float64 `json:"max"`
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	out := struct {
		Orders          int            `json:"orders"`
		Accepted        int            `json:"accepted"`
		Shipped         int            `json:"shipped"`
		Cancelled       int            `json:"cancelled"`
		Failed          int            `json:"failed"`
		Unexpected      int            `json:"unexpected"`
		FailedBecause   map[string]int `json:"failedBecause"`
		DurationSeconds float64        `json:"durationSeconds"`
		OrdersPerSecond float64        `json:"ordersPerSecond"`
		LatencyMs       latency        `json:"latencyMs"`
		Processes       []ProcessCPU   `json:"processes"`
		CPUMsPerOrder   *float64       `json:"cpuMsPerOrder"` // in all
		Records         *int64         `json:"records"`
		RecordsFrom     string         `json:"recordsFrom,omitempty"`
		RecordsPerOrder *float64       `json:"recordsPerOrder"`
		// Per topic (Kafka) and per service's database (PostgreSQL).
		RecordsPerOrderByTopic   map[string]float64 `json:"recordsPerOrderByTopic,omitempty"`
		Commits                  *int64             `json:"commits"`
		CommitsPerOrder          *float64           `json:"commitsPerOrder"`
		CommitsPerOrderByService map[string]float64 `json:"commitsPerOrderByService,omitempty"`
		// Of those, write transactions (the others: reads).
		WriteCommitsPerOrderByService map[string]float64 `json:"writeCommitsPerOrderByService,omitempty"`
		MeasuredSeconds               *float64           `json:"measuredSeconds"`
		Notes                         []string           `json:"notes"`
	}{
		Orders: r.Orders, Accepted: r.Accepted, Shipped: r.Shipped, Cancelled: r.Cancelled, Failed: r.Failed, Unexpected: r.Unexpected,
		FailedBecause: r.FailedBecause, DurationSeconds: r.Duration.Seconds(), OrdersPerSecond: r.Throughput(),
		LatencyMs: latency{ms(r.Percentile(50)), ms(r.Percentile(95)), ms(r.Percentile(99)), ms(r.Percentile(100))},
		Processes: []ProcessCPU{}, Notes: r.Notes,
	}
	if out.FailedBecause == nil {
		out.FailedBecause = map[string]int{}
	}
	if out.Notes == nil {
		out.Notes = []string{}
	}
	if m := r.Measured; m != nil {
		n := max(m.orders, 1)
		span := m.Span.Seconds()
		out.MeasuredSeconds = &span
		if len(m.Processes) > 0 {
			out.Processes = m.Processes
			all := msPer(m.InAll(), n)
			out.CPUMsPerOrder = &all
		}
		if m.Records >= 0 {
			per := float64(m.Records) / float64(n)
			out.Records, out.RecordsFrom, out.RecordsPerOrder = &m.Records, m.RecordsFrom, &per
			out.RecordsPerOrderByTopic = perOrderBy(m.ByTopic, n)
		}
		if m.Commits >= 0 {
			per := float64(m.Commits) / float64(n)
			out.Commits, out.CommitsPerOrder = &m.Commits, &per
			out.CommitsPerOrderByService = perOrderBy(m.ByService, n)
			out.WriteCommitsPerOrderByService = perOrderBy(m.Writes, n)
		}
	}
	return json.Marshal(out)
}

// perOrderBy is counts per name divided by n orders; nil for none.
func perOrderBy(counts map[string]int64, n int) map[string]float64 {
	if len(counts) == 0 {
		return nil
	}
	out := make(map[string]float64, len(counts))
	for k, v := range counts {
		out[k] = float64(v) / float64(n)
	}
	return out
}

// byName is counts per name per order in the text report, largest first:
// " (a 4.00, b 1.50)"; "" for none.
func byName(counts map[string]int64, n int) string {
	if len(counts) == 0 {
		return ""
	}
	names := slices.Collect(maps.Keys(counts))
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(counts[b], counts[a]), cmp.Compare(a, b))
	})
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s %.2f", k, float64(counts[k])/float64(n))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
