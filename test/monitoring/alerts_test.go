package monitoring_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/internal/cli"

	"github.com/eventmart/eventmart/test/clustertest"
)

// TestBrokerAlertFiresAndResolves runs `deploy/scripts/cluster.sh start` on
// free ports (3 brokers with their JMX exporter agents, PostgreSQL, one
// process per service, the gateway, and Debian's Prometheus with
// deploy/prometheus's configuration and rules), then:
//   - every metric the dashboards name is in Prometheus once orders flowed;
//   - stopping broker 3 makes KafkaUnderReplicatedPartitions (and
//     KafkaBrokerDown for broker 3) fire, as Prometheus's HTTP API reports;
//   - starting it again resolves them.
//
// It runs with EVENTMART_MONITORING=cluster (make test-monitoring, part of
// make test); it needs what the chaos test needs, plus Debian's prometheus
// package (skipped without it, except under CI where it fails).
func TestBrokerAlertFiresAndResolves(t *testing.T) {
	if os.Getenv("EVENTMART_MONITORING") != "cluster" {
		t.Skip("set EVENTMART_MONITORING=cluster (make test-monitoring) to run Prometheus against a cluster")
	}
	if _, err := exec.LookPath("prometheus"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("prometheus not found: apt-get install prometheus (required under CI)")
		}
		t.Skip("prometheus not found: apt-get install prometheus")
	}
	repo, runDir := clustertest.RunDir(t, "monitoring-")
	script := filepath.Join(repo, "deploy/scripts/cluster.sh")
	env := clusterEnv(t, runDir)
	sh := func(args ...string) (string, error) {
		cmd := exec.Command(script, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	start := time.Now()
	if out, err := sh("start"); err != nil {
		sh("stop")
		t.Fatalf("cluster start: %v\n%s", err, out)
	}
	t.Logf("cluster and Prometheus up in %s (run dir %s)", time.Since(start).Round(time.Second), runDir)
	defer func() {
		if out, err := sh("stop"); err != nil {
			t.Errorf("cluster stop: %v\n%s", err, out)
		}
		if !t.Failed() {
			os.RemoveAll(runDir)
		} else {
			t.Logf("logs kept in %s/cluster", runDir)
		}
	}()
	cfg := clustertest.ReadEnv(t, filepath.Join(runDir, "cluster/cluster.env"))
	prom := &promAPI{t: t, base: cfg["EVENTMART_PROMETHEUS"]}

	// Every target answers: 3 brokers, 9 services, the gateway.
	clustertest.WaitFor(t, 2*time.Minute, "every target up", func() (bool, string) {
		targets, err := prom.targets()
		if err != nil {
			return false, err.Error()
		}
		var down []string
		for _, tg := range targets {
			if tg.Health != "up" {
				down = append(down, tg.ScrapeURL+" "+tg.Health+" "+tg.LastError)
			}
		}
		return len(targets) == len(cli.ServiceNames())+4 && len(down) == 0, fmt.Sprintf("%d targets, not up: %v", len(targets), down)
	})
	logScrapeSizes(t, prom)

	// Orders flow, so counters, histograms and the rules' records have series.
	load := exec.Command(filepath.Join(runDir, "cluster/bin/eventmart"), "load", "--target", cfg["EVENTMART_GATEWAY"],
		"--orders", "10", "--rate", "5", "--concurrency", "4")
	load.Env = append(os.Environ(), "EVENTMART_ADMIN_EMAIL="+cfg["EVENTMART_ADMIN_EMAIL"], "EVENTMART_ADMIN_PASSWORD="+cfg["EVENTMART_ADMIN_PASSWORD"])
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("eventmart load: %v\n%s", err, out)
	}
	used := dashboardMetrics(t)
	clustertest.WaitFor(t, 2*time.Minute, "every metric the dashboards name in Prometheus", func() (bool, string) {
		names, err := prom.names()
		if err != nil {
			return false, err.Error()
		}
		var missing []string
		for m := range used {
			if !slices.Contains(names, m) {
				missing = append(missing, m)
			}
		}
		slices.Sort(missing)
		return len(missing) == 0, fmt.Sprintf("missing %v", missing)
	})
	t.Logf("all %d metrics the dashboards name are scraped", len(used))

	// No broker alert before the fault: the check below is not vacuous.
	clustertest.WaitFor(t, 2*time.Minute, "no under-replicated partitions before the fault", func() (bool, string) {
		a, err := prom.alerts("KafkaUnderReplicatedPartitions")
		return err == nil && len(a) == 0, fmt.Sprintf("%v %v", a, err)
	})

	stopped := time.Now()
	if out, err := sh("broker", "stop", "3"); err != nil {
		t.Fatalf("broker stop 3: %v\n%s", err, out)
	}
	t.Logf("broker 3 stopped in %s", time.Since(stopped).Round(100*time.Millisecond))
	var pending time.Duration
	clustertest.WaitFor(t, 4*time.Minute, "KafkaUnderReplicatedPartitions firing", func() (bool, string) {
		a, err := prom.alerts("KafkaUnderReplicatedPartitions")
		if err != nil {
			return false, err.Error()
		}
		if len(a) == 1 && a[0].State == "pending" && pending == 0 {
			pending = time.Since(stopped)
		}
		return len(a) == 1 && a[0].State == "firing", fmt.Sprint(a)
	})
	fired := time.Since(stopped)
	t.Logf("KafkaUnderReplicatedPartitions pending after %s, firing after %s", pending.Round(time.Second), fired.Round(time.Second))
	if pending == 0 {
		t.Error("the alert was never seen pending: it must wait its `for` duration before firing")
	}
	clustertest.WaitFor(t, time.Minute, "KafkaBrokerDown firing for broker 3", func() (bool, string) {
		a, err := prom.alerts("KafkaBrokerDown")
		return err == nil && len(a) == 1 && a[0].State == "firing" && a[0].Labels["broker"] == "3", fmt.Sprint(a, err)
	})

	restarted := time.Now()
	if out, err := sh("broker", "start", "3"); err != nil {
		t.Fatalf("broker start 3: %v\n%s", err, out)
	}
	clustertest.WaitFor(t, 4*time.Minute, "KafkaUnderReplicatedPartitions and KafkaBrokerDown resolved", func() (bool, string) {
		urp, err1 := prom.alerts("KafkaUnderReplicatedPartitions")
		down, err2 := prom.alerts("KafkaBrokerDown")
		return err1 == nil && err2 == nil && len(urp)+len(down) == 0, fmt.Sprint(urp, down, err1, err2)
	})
	t.Logf("resolved %s after broker 3 was started again", time.Since(restarted).Round(time.Second))
	fmt.Printf("monitoring: under-replicated alert firing %s after a broker stopped (pending after %s), resolved %s after it was started\n",
		fired.Round(time.Second), pending.Round(time.Second), time.Since(restarted).Round(time.Second))
}

// ---- Prometheus's HTTP API -------------------------------------------------

type promAPI struct {
	t    *testing.T
	base string
}

// get decodes the data of a successful API answer into out.
func (p *promAPI) get(path string, out any) error {
	resp, err := http.Get(p.base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("GET %s: %s: %w", path, resp.Status, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

type promTarget struct {
	ScrapeURL string            `json:"scrapeUrl"`
	Health    string            `json:"health"`
	LastError string            `json:"lastError"`
	Labels    map[string]string `json:"labels"`
}

func (p *promAPI) targets() ([]promTarget, error) {
	var d struct {
		ActiveTargets []promTarget `json:"activeTargets"`
	}
	err := p.get("/api/v1/targets?state=active", &d)
	return d.ActiveTargets, err
}

type promAlert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"` // pending or firing
	Value  string            `json:"value"`
}

func (a promAlert) String() string {
	return fmt.Sprintf("%s %s=%s", a.Labels["alertname"], a.State, a.Value)
}

// alerts are the active (pending or firing) alerts of that name.
func (p *promAPI) alerts(name string) ([]promAlert, error) {
	var d struct {
		Alerts []promAlert `json:"alerts"`
	}
	if err := p.get("/api/v1/alerts", &d); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(d.Alerts, func(a promAlert) bool { return a.Labels["alertname"] != name }), nil
}

// names are the metric names Prometheus holds.
func (p *promAPI) names() ([]string, error) {
	var names []string
	err := p.get("/api/v1/label/__name__/values", &names)
	return names, err
}

// logScrapeSizes reports what one scrape of each job costs (samples, bytes).
func logScrapeSizes(t *testing.T, p *promAPI) {
	targets, err := p.targets()
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		if tg.Labels["job"] != "kafka" {
			continue
		}
		resp, err := http.Get(tg.ScrapeURL)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		samples := 0
		for _, l := range strings.Split(string(b), "\n") {
			if l != "" && !strings.HasPrefix(l, "#") {
				samples++
			}
		}
		t.Logf("broker %s: one scrape of %s is %d bytes, %d samples", tg.Labels["broker"], tg.ScrapeURL, len(b), samples)
	}
	var v struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := p.get("/api/v1/query?query="+url.QueryEscape(`sum by (job) (scrape_samples_scraped)`), &v); err != nil {
		t.Fatal(err)
	}
	for _, r := range v.Result {
		t.Logf("job %s: %v samples per scrape round", r.Metric["job"], r.Value[1])
	}
}

// ---- the cluster -------------------------------------------------------------

// clusterEnv gives the cluster free ports, its own run directory and a
// Prometheus that scrapes and evaluates every 5 s (the rules' `for`
// durations stay as they are). The ports lie below Linux's ephemeral range
// (32768–60999), so that no outgoing connection takes one.
func clusterEnv(t *testing.T, runDir string) []string {
	p := clustertest.FreeRange(t, 32) // up to 20 services, 3 brokers, 3 controllers, 3 metrics, PostgreSQL, the gateway, Prometheus
	return append(os.Environ(),
		"EVENTMART_RUN="+runDir,
		fmt.Sprintf("CLUSTER_SERVICE_PORT=%d", p),
		fmt.Sprintf("CLUSTER_BROKER_PORTS=%d %d %d", p+20, p+21, p+22),
		fmt.Sprintf("CLUSTER_CONTROLLER_PORTS=%d %d %d", p+23, p+24, p+25),
		fmt.Sprintf("CLUSTER_METRICS_PORTS=%d %d %d", p+26, p+27, p+28),
		fmt.Sprintf("PG_PORT=%d", p+29),
		fmt.Sprintf("CLUSTER_GATEWAY=127.0.0.1:%d", p+30),
		fmt.Sprintf("CLUSTER_PROMETHEUS=127.0.0.1:%d", p+31),
		"CLUSTER_INSTANCES=1",
		"CLUSTER_SCRAPE_INTERVAL=5s",
	)
}
