// Package deploy_test checks the deployment artifacts that cannot run here
// (no Docker on this machine or in CI): deploy/compose/compose.yaml loads
// and validates with compose-go (the library `docker compose` uses), runs
// each service in its own container of the image deploy/Dockerfile builds,
// sets only environment variables Eventmart reads, mounts files that exist,
// and Prometheus's targets there name its containers. helm_test.go checks
// the Helm chart deploy/helm/eventmart the same way, with Helm and the
// Kubernetes API types.
package deploy_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	eventmart "github.com/eventmart/eventmart/internal/cli"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/eventmart/eventmart/internal/settings"
	"gopkg.in/yaml.v3"
)

const (
	repo        = "../.."
	composeFile = "../../deploy/compose/compose.yaml"
)

// services are the domain services, from the one list (internal/cli).
var services = eventmart.ServiceNames()

// secrets are the variables compose.yaml requires (${VAR:?}).
var secrets = []string{"POSTGRES_PASSWORD=pg-secret", "EVENTMART_JWT_SECRET=jwt-secret", "EVENTMART_ADMIN_PASSWORD=admin-secret", "GRAFANA_ADMIN_PASSWORD=grafana-secret",
	"EVENTMART_CARD_KEYS=k1:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}

func load(t *testing.T, env []string) (*types.Project, error) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Dir(composeFile))
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{composeFile}, cli.WithWorkingDirectory(dir), cli.WithEnv(env),
		cli.WithEnv([]string{"HOME=/home/test"}))
	if err != nil {
		t.Fatal(err)
	}
	return cli.ProjectFromOptions(context.Background(), opts)
}

func TestComposeLoads(t *testing.T) {
	p, err := load(t, secrets)
	if err != nil {
		t.Fatalf("compose.yaml does not load: %v", err)
	}
	if p.Name != "eventmart" {
		t.Errorf("project name %q", p.Name)
	}
	want := append([]string{"kafka-1", "kafka-2", "kafka-3", "postgres", "topics", "gateway", "prometheus", "grafana"}, services...)
	if got := slices.Sorted(func(yield func(string) bool) {
		for n := range p.Services {
			if !yield(n) {
				return
			}
		}
	}); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("services %v, want %v", got, slices.Sorted(slices.Values(want)))
	}

	// Each Eventmart role in its own container of the project's image.
	for _, name := range append(slices.Clone(services), "gateway") {
		s := p.Services[name]
		if got := []string(s.Command); !slices.Equal(got, []string{"serve", name}) {
			t.Errorf("%s: command %v, want [serve %s]", name, got, name)
		}
		if s.Build == nil || filepath.Base(s.Build.Dockerfile) != "Dockerfile" || s.Image != "eventmart:local" {
			t.Errorf("%s: image %q build %+v: want eventmart:local built from deploy/Dockerfile", name, s.Image, s.Build)
		}
		if got := s.Environment["EVENTMART_DB"]; got == nil || !strings.Contains(*got, ":pg-secret@postgres:5432/") {
			t.Errorf("%s: EVENTMART_DB %v does not use the PostgreSQL container and its password", name, got)
		}
		if _, ok := s.DependsOn["postgres"]; !ok && name != "gateway" {
			t.Errorf("%s: does not wait for PostgreSQL", name)
		}
	}
	// Static group membership with a distinct id per container, and a
	// session timeout well below the saga timeout's 30s default (issue 20).
	ids := map[string]string{}
	for _, name := range services {
		env := p.Services[name].Environment
		id := env["EVENTMART_INSTANCE_ID"]
		if id == nil || *id == "" {
			t.Errorf("%s: no EVENTMART_INSTANCE_ID (dynamic membership waits out a dead member's session)", name)
			continue
		}
		if other, dup := ids[*id]; dup {
			t.Errorf("%s and %s share the instance id %s", name, other, *id)
		}
		ids[*id] = name
		if st := env["EVENTMART_SESSION_TIMEOUT"]; st == nil || *st != "15s" {
			t.Errorf("%s: EVENTMART_SESSION_TIMEOUT %v, want 15s", name, st)
		}
	}
	// The user service ensures the admin account: it needs the credentials.
	if pw := p.Services["user"].Environment["EVENTMART_ADMIN_PASSWORD"]; pw == nil || *pw != "admin-secret" {
		t.Errorf("user: EVENTMART_ADMIN_PASSWORD %v, want the admin secret", pw)
	}
	if got := []string(p.Services["topics"].Command); !slices.Equal(got, []string{"topics", "apply"}) {
		t.Errorf("topics: command %v", got)
	}
	if ports := p.Services["gateway"].Ports; len(ports) != 1 || ports[0].Target != 8080 {
		t.Errorf("gateway ports %+v, want 8080 published", ports)
	}
	// Only the gateway, Prometheus and Grafana are published, on loopback.
	for name, s := range p.Services {
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %+v beyond loopback", name, port)
			}
		}
		if len(s.Ports) > 0 && !slices.Contains([]string{"gateway", "prometheus", "grafana"}, name) {
			t.Errorf("%s publishes ports %+v", name, s.Ports)
		}
	}
	// Every broker runs the metrics agent with the repository's rules.
	for _, name := range []string{"kafka-1", "kafka-2", "kafka-3"} {
		s := p.Services[name]
		opts := s.Environment["KAFKA_OPTS"]
		if opts == nil || !strings.Contains(*opts, "-javaagent:/opt/jmx/jmx_prometheus_javaagent.jar=9404:/opt/jmx/jmx-exporter.yml") {
			t.Errorf("%s: KAFKA_OPTS %v without the JMX exporter agent", name, opts)
		}
	}
}

// The secrets are required: without them compose refuses to start.
func TestComposeRequiresSecrets(t *testing.T) {
	for i := range secrets {
		env := slices.Delete(slices.Clone(secrets), i, i+1)
		if _, err := load(t, env); err == nil {
			t.Errorf("compose.yaml loads without %s", strings.Split(secrets[i], "=")[0])
		}
	}
}

// Every EVENTMART_* variable the containers get is a declared setting.
func TestComposeSetsOnlyEventmartSettings(t *testing.T) {
	p, err := load(t, secrets)
	if err != nil {
		t.Fatal(err)
	}
	known := readSettings(t)
	if len(known) < 10 {
		t.Fatalf("found only %d EVENTMART_* names in the code: %v", len(known), known)
	}
	n := 0
	for name, s := range p.Services {
		for k := range s.Environment {
			if !strings.HasPrefix(k, "EVENTMART_") {
				continue
			}
			n++
			if !known[k] {
				t.Errorf("%s sets %s, which is not a declared setting (internal/settings)", name, k)
			}
		}
	}
	if n == 0 {
		t.Error("no EVENTMART_* variable set")
	}
}

// readSettings returns the names of the declared settings
// (internal/settings): the only variables Eventmart reads.
func readSettings(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{}
	for _, s := range settings.All {
		known[s.Name] = true
	}
	return known
}

// Bind mounts name files of the repository that exist; the agent jar is
// the version deploy/scripts/kafka.sh installs.
func TestComposeMountsExist(t *testing.T) {
	p, err := load(t, secrets)
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join(repo, "deploy/scripts/kafka.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^JMX_EXPORTER_VERSION=(\S+)$`).FindSubmatch(script)
	if m == nil {
		t.Fatal("kafka.sh: no JMX_EXPORTER_VERSION")
	}
	jar := "jmx_prometheus_javaagent-" + string(m[1]) + ".jar"
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if strings.HasSuffix(v.Source, ".jar") {
				if filepath.Base(v.Source) != jar {
					t.Errorf("%s mounts %s, kafka.sh installs %s", name, v.Source, jar)
				}
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s mounts %s: %v", name, v.Source, err)
			}
		}
	}
}

// Prometheus in compose scrapes every Eventmart container and every broker
// by its compose name.
func TestComposePrometheusTargets(t *testing.T) {
	p, err := load(t, secrets)
	if err != nil {
		t.Fatal(err)
	}
	scraped := map[string]string{} // compose service -> job
	for job, want := range map[string]int{"eventmart": len(services) + 1, "kafka": 3} {
		b, err := os.ReadFile(filepath.Join(repo, "deploy/compose/targets", job+".yml"))
		if err != nil {
			t.Fatal(err)
		}
		var groups []struct {
			Targets []string          `yaml:"targets"`
			Labels  map[string]string `yaml:"labels"`
		}
		if err := yaml.Unmarshal(b, &groups); err != nil {
			t.Fatalf("targets/%s.yml: %v", job, err)
		}
		n := 0
		for _, g := range groups {
			for _, tg := range g.Targets {
				host, _, _ := strings.Cut(tg, ":")
				if _, ok := p.Services[host]; !ok {
					t.Errorf("targets/%s.yml: %s is no service of compose.yaml", job, tg)
				}
				scraped[host] = job
				n++
			}
		}
		if n != want {
			t.Errorf("targets/%s.yml: %d targets, want %d", job, n, want)
		}
	}
	for _, s := range append(slices.Clone(services), "gateway", "kafka-1", "kafka-2", "kafka-3") {
		if scraped[s] == "" {
			t.Errorf("Prometheus does not scrape %s", s)
		}
	}
}
