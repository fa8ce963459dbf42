package apptests

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/analytics"
	"github.com/eventmart/eventmart/internal/service"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventmart/eventmart/bus/kafka"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/export"
	"github.com/eventmart/eventmart/internal/obs"
	"github.com/eventmart/eventmart/internal/region"
	"github.com/eventmart/eventmart/webhook"
)

// descNames is a prometheus.Registerer that only notes the metric names
// of what is registered on it.
type descNames map[string]bool

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (d descNames) add(c prometheus.Collector) {
	ch := make(chan *prometheus.Desc, 100)
	go func() { c.Describe(ch); close(ch) }()
	for desc := range ch {
		if m := fqName.FindStringSubmatch(desc.String()); m != nil {
			for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
				d[m[1]+suffix] = true
			}
		}
	}
}

func (d descNames) Register(c prometheus.Collector) error { d.add(c); return nil }
func (d descNames) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		d.add(c)
	}
}
func (d descNames) Unregister(prometheus.Collector) bool { return true }

// TestDashboardAndRulesUseExportedMetrics: every metric the alert rules,
// their tests and the Grafana dashboard name is one the code exports (in
// Kafka mode for the Kafka ones).
func TestDashboardAndRulesUseExportedMetrics(t *testing.T) {
	h := apptest.Start(t, append(all(), webhook.Def()))
	s := newShop(t, h)
	s.waitStatus(s.order("4242424242424242"), "SHIPPED")
	exported := descNames{}
	fams, err := h.App.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
			exported[f.GetName()+suffix] = true
		}
	}
	exported.add(&obs.Probes{})                        // the Kafka cluster gauges too
	if _, err := region.NewLag(exported); err != nil { // a standby's replication lag
		t.Fatal(err)
	}
	// The scheduled export's, registered when EVENTMART_EXPORT_DIR is set.
	if _, err := export.NewNightly(nil, "", 0, nil, exported); err != nil {
		t.Fatal(err)
	}
	// The analytics service's (its vectors have no series before it counts something).
	if _, err := analytics.New(service.Deps{Metrics: exported}); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"), kgo.WithHooks(kafka.ClientMetrics(exported, "test")))
	if err != nil {
		t.Fatal(err)
	}
	cl.Close()

	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	name := regexp.MustCompile(`\b(?:eventmart|go|process)_[a-z0-9_]*[a-z0-9]\b`)
	for _, f := range []string{"deploy/prometheus/alerts.yml", "deploy/prometheus/alerts_test.yml", "deploy/grafana/eventmart.json", "docs/monitoring.md",
		"deploy/prometheus/region_alerts.yml", "deploy/prometheus/region_alerts_test.yml"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		used := slices.Compact(slices.Sorted(slices.Values(name.FindAllString(string(b), -1))))
		least := 5 // a file naming fewer has most likely lost its metrics to a rename
		if strings.Contains(f, "region_") {
			least = 3 // the replication lag and the standby gauge
		}
		if len(used) < least {
			t.Errorf("%s names only %v", f, used)
		}
		for _, m := range used {
			if !exported[m] {
				t.Errorf("%s uses %s, which Eventmart does not export", f, m)
			}
		}
	}
}
