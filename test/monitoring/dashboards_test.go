// Package monitoring_test checks the monitoring that ships in deploy/: the
// Grafana dashboards (valid JSON, every query parses with Prometheus's own
// PromQL parser, Eventmart's dashboard links to the brokers'), and — with
// EVENTMART_MONITORING=cluster (make test-monitoring) — Debian's Prometheus
// with the project's configuration against a real 3-broker cluster and
// Eventmart (deploy/scripts/cluster.sh on free ports): every metric the
// dashboards name is scraped, and the under-replicated alert fires when a
// broker stops and resolves when it is back.
package monitoring_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// dashboards are the Grafana dashboards in deploy/grafana, by uid.
var dashboards = map[string]string{
	"eventmart":       "../../deploy/grafana/eventmart.json",
	"eventmart-kafka": "../../deploy/grafana/kafka.json",
}

type dashboard struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Links  []link  `json:"links"`
	Panels []panel `json:"panels"`
}

type link struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

type panel struct {
	Type    string   `json:"type"`
	Title   string   `json:"title"`
	Panels  []panel  `json:"panels"` // a collapsed row holds its panels
	Targets []target `json:"targets"`
}

type target struct {
	Expr string `json:"expr"`
}

// query is one panel query, with where it is for messages.
type query struct{ where, expr string }

func readDashboard(t *testing.T, path string) dashboard {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: not valid JSON: %v", path, err)
	}
	if dec.More() {
		t.Fatalf("%s: more than one JSON value", path)
	}
	return d
}

func queries(d dashboard) []query {
	var out []query
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out = append(out, query{where: d.UID + ": " + p.Title, expr: tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// grafanaInterval matches Grafana's range variables, which are not PromQL;
// label variables ($broker) stand inside quoted strings and parse as they are.
var grafanaInterval = regexp.MustCompile(`\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}`)

// parse parses a panel query as Prometheus does once Grafana has put a
// duration in place of its interval variables.
func parse(expr string) (parser.Expr, error) {
	return parser.ParseExpr(grafanaInterval.ReplaceAllString(expr, "5m"))
}

// metricNames are the metric names a query selects (recording rules included).
func metricNames(e parser.Expr) []string {
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
					names = append(names, m.Value)
				}
			}
		}
		return nil
	})
	return names
}

// dashboardMetrics reads every dashboard, fails the test on a query that
// does not parse, and returns the metric names each query selects.
func dashboardMetrics(t *testing.T) map[string][]query {
	t.Helper()
	used := map[string][]query{}
	for uid, path := range dashboards {
		d := readDashboard(t, path)
		if d.UID != uid {
			t.Errorf("%s: uid %q, want %q (the dashboards link to each other by uid)", path, d.UID, uid)
		}
		qs := queries(d)
		if len(qs) < 10 {
			t.Errorf("%s: only %d panel queries", path, len(qs))
		}
		for _, q := range qs {
			e, err := parse(q.expr)
			if err != nil {
				t.Errorf("%s: %q does not parse: %v", q.where, q.expr, err)
				continue
			}
			names := metricNames(e)
			if len(names) == 0 {
				t.Errorf("%s: %q selects no metric by name", q.where, q.expr)
			}
			for _, n := range names {
				used[n] = append(used[n], q)
			}
		}
	}
	return used
}

func TestDashboardQueriesParse(t *testing.T) {
	used := dashboardMetrics(t)
	for _, m := range []string{"kafka_server_replicamanager_underreplicatedpartitions", "kafka_controller_kafkacontroller_activecontrollercount", "eventmart_consumer_lag"} {
		if len(used[m]) == 0 {
			t.Errorf("no dashboard shows %s", m)
		}
	}
}

// The parser refuses what Prometheus refuses: the check is not vacuous.
func TestParseRefusesBrokenQueries(t *testing.T) {
	for _, bad := range []string{
		`sum by (topic (rate(x[5m]))`,
		`rate(x[$__rate_interval)`,
		`x{a="b"`,
		`rate(x)`, // a range function on an instant vector
	} {
		if _, err := parse(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	e, err := parse(`sum by (broker) (rate(kafka_server_brokertopicmetrics_bytesin_total{topic="",broker=~"$broker"}[$__rate_interval])) / on () group_left up`)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := metricNames(e), []string{"kafka_server_brokertopicmetrics_bytesin_total", "up"}; !slices.Equal(got, want) {
		t.Errorf("metric names %v, want %v", got, want)
	}
}

func TestEventmartDashboardLinksToBrokers(t *testing.T) {
	links := map[string][]link{}
	for uid, path := range dashboards {
		links[uid] = readDashboard(t, path).Links
	}
	linksTo := func(from, to string) bool {
		return slices.ContainsFunc(links[from], func(l link) bool {
			return l.Type == "link" && (l.URL == "/d/"+to || strings.HasPrefix(l.URL, "/d/"+to+"/"))
		})
	}
	if !linksTo("eventmart", "eventmart-kafka") {
		t.Errorf("eventmart.json has no link to the brokers' dashboard (/d/eventmart-kafka): %+v", links["eventmart"])
	}
	if !linksTo("eventmart-kafka", "eventmart") {
		t.Errorf("kafka.json has no link back to Eventmart's dashboard (/d/eventmart): %+v", links["eventmart-kafka"])
	}
}

// The broker metrics the dashboards and alerts use are the ones the rules
// file maps: a renamed rule would leave panels empty.
func TestRulesFileMapsDashboardMetrics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "kafka", "jmx-exporter.yml"))
	if err != nil {
		t.Fatal(err)
	}
	rules := string(b)
	for m := range dashboardMetrics(t) {
		if !strings.HasPrefix(m, "kafka_") {
			continue
		}
		// Rule names are templates (kafka_server_replicamanager_$1): the
		// metric must match one of them.
		found := false
		for _, line := range strings.Split(rules, "\n") {
			name, ok := strings.CutPrefix(strings.TrimSpace(line), "name: ")
			if !ok {
				continue
			}
			re := "^" + regexp.MustCompile(`\\\$\d`).ReplaceAllString(regexp.QuoteMeta(name), `[a-z0-9_]+`) + "(_total)?$"
			if regexp.MustCompile(re).MatchString(m) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("%s: no rule in deploy/kafka/jmx-exporter.yml names it", m)
		}
	}
}
