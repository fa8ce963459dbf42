package monitoring_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventmart/eventmart/internal/cli"
	"github.com/eventmart/eventmart/internal/obs/obstest"
	"github.com/eventmart/eventmart/test/clustertest"
)

// TestChartsFromPrometheus runs a real Eventmart (`eventmart run`, embedded
// bus, in this process) with EVENTMART_PROMETHEUS_URL pointing at Debian's
// Prometheus, which scrapes it every second; orders flow (`eventmart
// load`). Then GET /api/v1/admin/samples answers from Prometheus, and its
// series are those Eventmart exported: the topics it published to, the
// groups whose lag it reports, the groups whose handlers ran, its dead
// letters. A 24h range is answered within the point bound; with Prometheus
// stopped the endpoint answers 503 naming it.
//
// It needs Debian's prometheus package (skipped without it, except under
// CI where it fails), not the cluster.
func TestChartsFromPrometheus(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("prometheus not found: apt-get install prometheus (required under CI)")
		}
		t.Skip("prometheus not found: apt-get install prometheus")
	}
	dir := t.TempDir()
	p := clustertest.FreeRange(t, 2)
	emAddr, promAddr := fmt.Sprintf("127.0.0.1:%d", p), fmt.Sprintf("127.0.0.1:%d", p+1)
	target, promURL := "http://"+emAddr, "http://"+promAddr

	// Prometheus, scraping Eventmart's /metrics every second.
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: eventmart\n    static_configs:\n      - targets: [%q]\n", emAddr)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var promLog bytes.Buffer
	prom := exec.Command(promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"), "--web.listen-address="+promAddr)
	prom.Stdout, prom.Stderr = &promLog, &promLog
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	promDone := make(chan error, 1)
	go func() { promDone <- prom.Wait() }()
	stopProm := sync.OnceFunc(func() {
		prom.Process.Kill()
		<-promDone
	})
	defer stopProm()

	// Eventmart, in this process.
	env := map[string]string{
		"EVENTMART_DATA": filepath.Join(dir, "data"), "EVENTMART_ADDR": emAddr,
		"EVENTMART_PROMETHEUS_URL": promURL,
		"EVENTMART_ADMIN_EMAIL":    "admin@example.com", "EVENTMART_ADMIN_PASSWORD": "a long admin password",
		"EVENTMART_LOG_LEVEL": "warn",
	}
	getenv := func(k string) string { return env[k] }
	var emLog syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	emDone := make(chan error, 1)
	go func() { emDone <- cli.Run(ctx, []string{"run"}, getenv, io.Discard, &emLog) }()
	defer func() {
		cancel()
		if err := <-emDone; err != nil {
			t.Errorf("eventmart run: %v", err)
		}
		if t.Failed() {
			t.Logf("eventmart log:\n%s\nprometheus log:\n%s", emLog.String(), promLog.String())
		}
	}()
	clustertest.WaitFor(t, time.Minute, "Eventmart and Prometheus up", func() (bool, string) {
		r1, err1 := http.Get(target + "/metrics")
		r2, err2 := http.Get(promURL + "/-/ready")
		if err1 != nil || err2 != nil {
			return false, fmt.Sprint(err1, err2)
		}
		r1.Body.Close()
		r2.Body.Close()
		return r1.StatusCode == 200 && r2.StatusCode == 200, r1.Status + " " + r2.Status
	})

	// Orders flow only once Prometheus has scraped Eventmart, and for longer
	// than a few scrapes, so that the counters grow under its eyes.
	pa := &promAPI{t: t, base: promURL}
	clustertest.WaitFor(t, time.Minute, "Eventmart scraped", func() (bool, string) {
		tg, err := pa.targets()
		return err == nil && len(tg) == 1 && tg[0].Health == "up", fmt.Sprint(tg, err)
	})
	var out bytes.Buffer
	if err := cli.Run(context.Background(), []string{"load", "--target", target, "--orders", "24", "--rate", "4", "--concurrency", "4"}, getenv, &out, &out); err != nil {
		t.Fatalf("eventmart load: %v\n%s", err, out.String())
	}
	token := adminToken(t, target, env["EVENTMART_ADMIN_EMAIL"], env["EVENTMART_ADMIN_PASSWORD"])

	// Prometheus has seen the orders: the endpoint shows order-events' rate.
	var got samplesAnswer
	clustertest.WaitFor(t, time.Minute, "order-events in the charts from Prometheus", func() (bool, string) {
		status, body := getSamples(t, target, token, "15m", &got)
		if status != http.StatusOK {
			return false, fmt.Sprintf("%d %s", status, body)
		}
		return got.Source == "prometheus" && got.peak("eventsPerSecond", "order-events") > 0 && len(got.names("handlerP99Ms")) > 0,
			fmt.Sprintf("source %q, topics %v, groups %v", got.Source, got.names("eventsPerSecond"), got.names("handlerP99Ms"))
	})
	if got.Prometheus != promURL || got.Every != "5s" || got.Range != "15m" {
		t.Errorf("answer from %q every %q over %q, want %s, 5s, 15m", got.Prometheus, got.Every, got.Range, promURL)
	}

	// What Eventmart exported, and Prometheus saw, now.
	exported, err := obstest.Scrape(target + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	published := labelValues(exported, "eventmart_events_published_total", "topic", false, "outcome", "ok")
	lagGroups := labelValues(exported, "eventmart_consumer_lag", "group", false)
	handlerGroups := labelValues(exported, "eventmart_handler_duration_seconds", "group", true)
	clustertest.WaitFor(t, 30*time.Second, "the last point to hold every group's lag", func() (bool, string) {
		getSamples(t, target, token, "15m", &got)
		last := got.last()
		return len(last.Lag) == len(lagGroups), fmt.Sprintf("%v, exported %v", last.Lag, lagGroups)
	})
	if topics := got.names("eventsPerSecond"); !slices.Equal(topics, published) {
		t.Errorf("events per second of topics %v, Eventmart exported %v", topics, published)
	}
	for _, g := range got.names("handlerP99Ms") {
		if !slices.Contains(handlerGroups, g) {
			t.Errorf("p99 of group %q, which has no handler histogram (those are %v)", g, handlerGroups)
		}
		if p := got.peak("handlerP99Ms", g); p <= 0 || p > 60_000 {
			t.Errorf("p99 of %s peaks at %vms", g, p)
		}
	}
	if !slices.Contains(got.names("handlerP99Ms"), "order-service") {
		t.Errorf("no p99 for the order-service group: %v", got.names("handlerP99Ms"))
	}
	if lag := slices.Sorted(mapKeys(got.last().Lag)); !slices.Equal(lag, lagGroups) {
		t.Errorf("lag of groups %v, Eventmart exported %v", lag, lagGroups)
	}
	deadExported, _ := exported.Sum("eventmart_consumer_dead_letters_total")
	if dead, want := got.last().DeadLetters, int64(deadExported); dead != want {
		t.Errorf("dead letters %d, Eventmart exported %d", dead, want)
	}

	// The longest range stays within the bound on points.
	if status, body := getSamples(t, target, token, "24h", &got); status != http.StatusOK || got.Every != "6m" || len(got.Samples) > 241 {
		t.Errorf("24h: %d %s, every %q, %d samples", status, body, got.Every, len(got.Samples))
	}

	// Prometheus down: a clear error, not an empty chart.
	stopProm()
	status, body := getSamples(t, target, token, "15m", nil)
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "Prometheus at "+promURL) {
		t.Errorf("with Prometheus down: %d %s, want 503 naming it", status, body)
	}
}

type samplesAnswer struct {
	Source     string `json:"source"`
	Prometheus string `json:"prometheus"`
	Range      string `json:"range"`
	Every      string `json:"every"`
	Samples    []struct {
		EventsPerSecond map[string]float64 `json:"eventsPerSecond"`
		HandlerP99Ms    map[string]float64 `json:"handlerP99Ms"`
		Lag             map[string]int64   `json:"lag"`
		DeadLetters     int64              `json:"deadLetters"`
	} `json:"samples"`
}

func (a samplesAnswer) series(field string) []map[string]float64 {
	var out []map[string]float64
	for _, s := range a.Samples {
		switch field {
		case "eventsPerSecond":
			out = append(out, s.EventsPerSecond)
		case "handlerP99Ms":
			out = append(out, s.HandlerP99Ms)
		}
	}
	return out
}

// names are the series of a chart, sorted.
func (a samplesAnswer) names(field string) []string {
	seen := map[string]bool{}
	for _, m := range a.series(field) {
		for k := range m {
			seen[k] = true
		}
	}
	return slices.Sorted(mapKeys(seen))
}

func (a samplesAnswer) peak(field, name string) float64 {
	var p float64
	for _, m := range a.series(field) {
		p = max(p, m[name])
	}
	return p
}

func (a samplesAnswer) last() (s struct {
	Lag         map[string]int64
	DeadLetters int64
}) {
	if n := len(a.Samples); n > 0 {
		s.Lag, s.DeadLetters = a.Samples[n-1].Lag, a.Samples[n-1].DeadLetters
	}
	return s
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func getSamples(t *testing.T, target, token, span string, out *samplesAnswer) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", target+"/api/v1/admin/samples?range="+span, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == http.StatusOK {
		*out = samplesAnswer{}
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
	}
	return resp.StatusCode, string(b)
}

func adminToken(t *testing.T, target, email, password string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"email": email, "password": password})
	resp, err := http.Post(target+"/api/v1/auth/token", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.Token == "" {
		t.Fatalf("admin token: %s %v", resp.Status, err)
	}
	return tok.Token
}

// labelValues are the sorted values of label among the metric's series
// that carry the label with, if want is set, want[0]=want[1]; with nonZero
// only those whose value (a histogram's count) is not zero.
func labelValues(s obstest.Samples, metric, label string, nonZero bool, want ...string) []string {
	seen := map[string]bool{}
	fam := s[metric]
	if fam == nil {
		return nil
	}
outer:
	for _, m := range fam.GetMetric() {
		v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		if nonZero && v == 0 {
			continue
		}
		ls := map[string]string{}
		for _, l := range m.GetLabel() {
			ls[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if ls[want[i]] != want[i+1] {
				continue outer
			}
		}
		if v, ok := ls[label]; ok {
			seen[v] = true
		}
	}
	return slices.Sorted(mapKeys(seen))
}

// syncBuffer is a bytes.Buffer that Eventmart's goroutines write to while
// the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
