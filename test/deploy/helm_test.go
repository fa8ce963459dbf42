package deploy_test

// The Helm chart deploy/helm/eventmart, without a Kubernetes cluster:
// helm lint and helm template pass (Helm itself, built from its module
// helm.sh/helm/v4 at helmVersion: go.mod stays free of it); every rendered
// manifest decodes strictly (unknown and duplicate fields refused) into the
// Kubernetes API types; the pods set only declared Eventmart settings; and
// the objects fit together (services reachable at EVENTMART_SERVICE_URLS,
// probes on the health endpoints, static membership from the pod name,
// secrets, budgets, autoscalers).

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

const (
	chart       = "../../deploy/helm/eventmart"
	helmValues  = "testdata/helm-values.yaml"
	helmVersion = "v4.3.2"
)

var (
	helmOnce sync.Once
	helmBin  string
	helmErr  error
)

// helm runs the helm command line. It is built from its module at
// helmVersion by the Go module proxy once per machine, into
// $EVENTMART_CACHE/helm-VERSION (default ~/.cache/eventmart, where
// deploy/scripts keep the servers' downloads).
func helm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	helmOnce.Do(func() { helmBin, helmErr = installHelm() })
	if helmErr != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("helm %s cannot be built (the Go module proxy is needed): %v", helmVersion, helmErr)
		}
		t.Fatalf("building helm %s: %v", helmVersion, helmErr)
	}
	cmd := exec.Command(helmBin, args...)
	// Helm's own state (repositories, cache) out of the user's home.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, errors.Join(err, errors.New(stderr.String()))
	}
	return out, nil
}

func installHelm() (string, error) {
	cache := os.Getenv("EVENTMART_CACHE")
	if cache == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(dir, "eventmart")
	}
	dir := filepath.Join(cache, "helm-"+helmVersion)
	bin := filepath.Join(dir, "helm")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	// go install puts the binary in place once it is linked: a build cut
	// short leaves none behind.
	cmd := exec.Command("go", "install", "helm.sh/helm/v4/cmd/helm@"+helmVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", errors.Join(err, errors.New(string(out)))
	}
	return bin, nil
}

// render runs helm template with the test values and the extra flags.
func render(t *testing.T, flags ...string) ([]byte, error) {
	t.Helper()
	return helm(t, append([]string{"template", "shop", chart, "--namespace", "shop", "-f", helmValues}, flags...)...)
}

// The Kubernetes API types the chart may render; anything else is refused.
var codecs = func() serializer.CodecFactory {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme, autoscalingv2.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err) // static registration of the API packages
		}
	}
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict)
}()

// decode splits a helm template output into its documents and decodes
// each strictly into its API type.
func decode(manifests []byte) ([]runtime.Object, error) {
	var objs []runtime.Object
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(manifests)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, _, err := codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			return nil, errors.Join(err, errors.New(string(doc)))
		}
		objs = append(objs, obj)
	}
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for line := range strings.Lines(string(doc)) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
		}
	}
	return b.Bytes()
}

// rendered is the chart rendered with the test values, decoded.
type rendered struct {
	statefulSets map[string]*appsv1.StatefulSet // by name
	deployments  map[string]*appsv1.Deployment
	services     map[string]*corev1.Service
	secrets      map[string]*corev1.Secret
	pdbs         []*policyv1.PodDisruptionBudget
	hpas         map[string]*autoscalingv2.HorizontalPodAutoscaler // by target name
}

func renderChart(t *testing.T, flags ...string) rendered {
	t.Helper()
	out, err := render(t, flags...)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	objs, err := decode(out)
	if err != nil {
		t.Fatalf("the rendered manifests do not decode strictly: %v", err)
	}
	r := rendered{map[string]*appsv1.StatefulSet{}, map[string]*appsv1.Deployment{}, map[string]*corev1.Service{},
		map[string]*corev1.Secret{}, nil, map[string]*autoscalingv2.HorizontalPodAutoscaler{}}
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.StatefulSet:
			r.statefulSets[o.Name] = o
		case *appsv1.Deployment:
			r.deployments[o.Name] = o
		case *corev1.Service:
			r.services[o.Name] = o
		case *corev1.Secret:
			r.secrets[o.Name] = o
		case *policyv1.PodDisruptionBudget:
			r.pdbs = append(r.pdbs, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			r.hpas[o.Spec.ScaleTargetRef.Name] = o
		default:
			t.Errorf("unexpected object %T", o)
		}
	}
	return r
}

// pods is every pod template: the StatefulSets' and the Deployments'.
func (r rendered) pods() map[string]*corev1.PodTemplateSpec {
	pods := map[string]*corev1.PodTemplateSpec{}
	for n, s := range r.statefulSets {
		pods[n] = &s.Spec.Template
	}
	for n, d := range r.deployments {
		pods[n] = &d.Spec.Template
	}
	return pods
}

func env(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

func TestHelmLint(t *testing.T) {
	out, err := helm(t, "lint", "--strict", chart, "-f", helmValues)
	if err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
}

// The decoder refuses what the API server would: a misspelt field, a
// duplicate one, a kind it does not know.
func TestHelmDecodeIsStrict(t *testing.T) {
	good := "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports: [{port: 80}]\n"
	if _, err := decode([]byte(good)); err != nil {
		t.Fatalf("a valid Service: %v", err)
	}
	for name, doc := range map[string]string{
		"unknown field":   strings.Replace(good, "port: 80", "port: 80, targetPorts: 8080", 1),
		"duplicate field": good + "metadata: {name: b}\n",
		"unknown kind":    "apiVersion: v1\nkind: Servise\nmetadata: {name: a}\n",
	} {
		if _, err := decode([]byte("---\n" + good + "---\n" + doc)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestHelmTemplate(t *testing.T) {
	r := renderChart(t)
	full := "shop-eventmart"
	if len(r.statefulSets) != len(services) || len(r.deployments) != 1 {
		t.Fatalf("%d StatefulSets and %d Deployments, want %d and 1", len(r.statefulSets), len(r.deployments), len(services))
	}
	secret := r.secrets[full+"-secrets"]
	if secret == nil {
		t.Fatalf("no Secret %s-secrets: %v", full, r.secrets)
	}
	pods := r.pods()
	for _, name := range append(slices.Clone(services), "gateway") {
		pod := pods[full+"-"+name]
		if pod == nil {
			t.Errorf("%s: no workload", name)
			continue
		}
		if len(pod.Spec.Containers) != 1 {
			t.Fatalf("%s: %d containers", name, len(pod.Spec.Containers))
		}
		c := pod.Spec.Containers[0]
		if c.Image != "registry.example.com/eventmart:1.2.3" || len(c.Command) != 0 || !slices.Equal(c.Args, []string{"serve", name}) {
			t.Errorf("%s: image %q command %v args %v, want the image's eventmart serve %s", name, c.Image, c.Command, c.Args, name)
		}
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" ||
			c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
			t.Errorf("%s: readiness %+v liveness %+v, want /readyz and /healthz", name, c.ReadinessProbe, c.LivenessProbe)
		} else if c.ReadinessProbe.HTTPGet.Port.String() != "http" || len(c.Ports) != 1 || c.Ports[0].Name != "http" ||
			c.Ports[0].ContainerPort != 8080 || env(c, "EVENTMART_ADDR") == nil || env(c, "EVENTMART_ADDR").Value != "0.0.0.0:8080" {
			t.Errorf("%s: probes on port %v, ports %+v, EVENTMART_ADDR %+v: want the port 8080 the process listens on", name, c.ReadinessProbe.HTTPGet.Port, c.Ports, env(c, "EVENTMART_ADDR"))
		}
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds <= 0 {
			t.Errorf("%s: no preStop sleep: requests routed to a stopping pod would be refused", name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: resources %+v without cpu and memory requests and a memory limit", name, c.Resources)
		}
		if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			pod.Spec.SecurityContext == nil || pod.Spec.SecurityContext.RunAsNonRoot == nil || !*pod.Spec.SecurityContext.RunAsNonRoot {
			t.Errorf("%s: not non-root with a read-only root filesystem", name)
		}
		// The secrets come from the Secret, by keys it has.
		for _, e := range c.Env {
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				continue
			}
			ref := e.ValueFrom.SecretKeyRef
			if _, ok := secret.StringData[ref.Key]; ref.Name != secret.Name || !ok {
				t.Errorf("%s: %s from secret %s key %s, which the chart's Secret does not hold", name, e.Name, ref.Name, ref.Key)
			}
		}
		if e := env(c, "EVENTMART_JWT_SECRET"); e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			t.Errorf("%s: EVENTMART_JWT_SECRET %+v not from the Secret", name, e)
		}
		if name == "gateway" {
			continue
		}

		// Services: static members named after their pod, their database from the Secret.
		set := r.statefulSets[full+"-"+name]
		if e := env(c, "EVENTMART_INSTANCE_ID"); e == nil || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
			t.Errorf("%s: EVENTMART_INSTANCE_ID %+v, want the pod name", name, e)
		}
		if set.Spec.ServiceName == "" || r.services[set.Spec.ServiceName] == nil {
			t.Errorf("%s: serviceName %q is no Service of the chart", name, set.Spec.ServiceName)
		}
		wantKey := "database-url"
		if name == "order" {
			wantKey = "database-url-order" // helm-values.yaml gives order a database of its own
		}
		if e := env(c, "EVENTMART_DB"); e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Key != wantKey {
			t.Errorf("%s: EVENTMART_DB %+v, want from the Secret's %s", name, e, wantKey)
		}
		// The HPA replaces replicas where it is on (all but order in helm-values.yaml).
		hpa := r.hpas[set.Name]
		switch {
		case name == "order" && (hpa != nil || set.Spec.Replicas == nil || *set.Spec.Replicas != 3):
			t.Errorf("order: replicas %v, autoscaler %v: want 3 and none", set.Spec.Replicas, hpa != nil)
		case name != "order" && (hpa == nil || set.Spec.Replicas != nil):
			t.Errorf("%s: replicas %v, autoscaler %v: want the autoscaler's", name, set.Spec.Replicas, hpa != nil)
		case hpa != nil:
			m := hpa.Spec.Metrics
			if hpa.Spec.ScaleTargetRef.Kind != "StatefulSet" || len(m) != 1 || m[0].External == nil ||
				m[0].External.Metric.Name != "eventmart_consumer_lag_seconds" || m[0].External.Metric.Selector == nil ||
				m[0].External.Metric.Selector.MatchLabels["group"] != name+"-service" {
				t.Errorf("%s: autoscaler %+v, want the lag in seconds of group %s-service", name, hpa.Spec, name)
			}
		}
	}
	order := pods[full+"-order"].Spec.Containers[0]
	if e := env(order, "EVENTMART_SAGA_TIMEOUT"); e == nil {
		t.Error("order: no EVENTMART_SAGA_TIMEOUT")
	}
	user := pods[full+"-user"].Spec.Containers[0]
	if env(user, "EVENTMART_ADMIN_EMAIL") == nil || env(user, "EVENTMART_ADMIN_PASSWORD") == nil {
		t.Error("user: the admin account is not configured (the user service ensures it)")
	}
	if s := r.services[full+"-gateway"]; s == nil || s.Spec.Type != corev1.ServiceTypeLoadBalancer {
		t.Errorf("gateway Service %+v, want type LoadBalancer from the values", s)
	}
}

// EVENTMART_SERVICE_URLS names every service at a ClusterIP Service of the
// chart that selects the service's pods, on their port.
func TestHelmServiceURLs(t *testing.T) {
	r := renderChart(t)
	for name, pod := range r.pods() {
		e := env(pod.Spec.Containers[0], "EVENTMART_SERVICE_URLS")
		if e == nil {
			t.Errorf("%s: no EVENTMART_SERVICE_URLS", name)
			continue
		}
		urls := map[string]string{}
		for _, kv := range strings.Split(e.Value, ",") {
			k, v, _ := strings.Cut(kv, "=")
			urls[k] = v
		}
		if got := slices.Sorted(func(yield func(string) bool) {
			for k := range urls {
				if !yield(k) {
					return
				}
			}
		}); !slices.Equal(got, slices.Sorted(slices.Values(services))) {
			t.Errorf("%s: EVENTMART_SERVICE_URLS names %v", name, got)
		}
		for svc, u := range urls {
			host, port, ok := strings.Cut(strings.TrimPrefix(u, "http://"), ":")
			s := r.services[host]
			if !ok || s == nil || s.Spec.Type != corev1.ServiceTypeClusterIP || len(s.Spec.Ports) != 1 || port != "8080" ||
				s.Spec.Ports[0].Port != 8080 || s.Spec.Ports[0].TargetPort.String() != "http" {
				t.Errorf("%s: %s at %s, not a ClusterIP Service of the chart on 8080", name, svc, u)
				continue
			}
			target := r.pods()["shop-eventmart-"+svc]
			if target == nil || !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(target.Labels)) {
				t.Errorf("Service %s does not select the pods of %s", host, svc)
			}
			for other, p := range r.pods() {
				if other != "shop-eventmart-"+svc && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(p.Labels)) {
					t.Errorf("Service %s selects the pods of %s too", host, other)
				}
			}
		}
	}
}

// Every workload has a budget that selects its pods and lets at most one go.
func TestHelmDisruptionBudgets(t *testing.T) {
	r := renderChart(t)
	for name, pod := range r.pods() {
		n := 0
		for _, b := range r.pdbs {
			sel, err := pdbSelector(b)
			if err != nil {
				t.Fatalf("%s: %v", b.Name, err)
			}
			if sel.Matches(labels.Set(pod.Labels)) {
				n++
				if b.Spec.MaxUnavailable == nil || b.Spec.MaxUnavailable.IntValue() != 1 {
					t.Errorf("%s: maxUnavailable %v, want 1", b.Name, b.Spec.MaxUnavailable)
				}
			}
		}
		if n != 1 {
			t.Errorf("%s: %d disruption budgets, want 1", name, n)
		}
	}
}

func pdbSelector(b *policyv1.PodDisruptionBudget) (labels.Selector, error) {
	if b.Spec.Selector == nil || len(b.Spec.Selector.MatchExpressions) > 0 {
		return nil, errors.New("want a matchLabels selector")
	}
	return labels.SelectorFromSet(b.Spec.Selector.MatchLabels), nil
}

// Every environment variable the pods get is a declared Eventmart setting,
// and the consumer-group session stays well below the saga timeout.
func TestHelmSetsOnlyEventmartSettings(t *testing.T) {
	known := readSettings(t)
	for _, flags := range [][]string{nil, {"--set", "secrets.existingSecret=shop-secrets"}} {
		r := renderChart(t, flags...)
		n := 0
		for name, pod := range r.pods() {
			for _, c := range append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...) {
				if len(c.EnvFrom) > 0 {
					t.Errorf("%s: envFrom sets variables this test cannot see", name)
				}
				for _, e := range c.Env {
					n++
					if !known[e.Name] {
						t.Errorf("%s sets %s, which is not a declared setting (internal/settings)", name, e.Name)
					}
				}
				session, saga := env(c, "EVENTMART_SESSION_TIMEOUT"), env(c, "EVENTMART_SAGA_TIMEOUT")
				if session == nil {
					t.Errorf("%s: no EVENTMART_SESSION_TIMEOUT", name)
					continue
				}
				s, err := time.ParseDuration(session.Value)
				if err != nil {
					t.Errorf("%s: EVENTMART_SESSION_TIMEOUT: %v", name, err)
				}
				if saga != nil {
					if g, err := time.ParseDuration(saga.Value); err != nil || 2*s > g {
						t.Errorf("%s: session timeout %s, saga timeout %s: want at most half", name, session.Value, saga.Value)
					}
				}
			}
		}
		if n == 0 {
			t.Error("no environment variable set")
		}
	}
}

// With an existing Secret the chart creates none and the pods read it.
func TestHelmExistingSecret(t *testing.T) {
	r := renderChart(t, "--set", "secrets.existingSecret=shop-secrets", "--set", "secrets.jwtSecret=")
	if len(r.secrets) != 0 {
		t.Errorf("Secrets %v rendered beside the existing one", r.secrets)
	}
	for name, pod := range r.pods() {
		for _, e := range pod.Spec.Containers[0].Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name != "shop-secrets" {
				t.Errorf("%s: %s from %s, want shop-secrets", name, e.Name, e.ValueFrom.SecretKeyRef.Name)
			}
		}
	}
}

// The chart refuses values that would deploy something broken, saying why.
func TestHelmRefuses(t *testing.T) {
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--set", "secrets.jwtSecret="}, "secrets.jwtSecret"},
		{[]string{"--set", "secrets.jwtSecret=short"}, "at least 32 bytes"},
		{[]string{"--set", "secrets.databaseURL="}, "secrets.databaseURL"},
		{[]string{"--set", "secrets.adminPassword="}, "secrets.adminPassword"},
		{[]string{"--set", "secrets.cardKeys="}, "secrets.cardKeys"},
		{[]string{"--set", "secrets.databaseURLs.shop=postgres://x"}, "shop is not a service"},
		{[]string{"--set", "sessionTimeoutSeconds=20", "--set", "sagaTimeoutSeconds=30"}, "at most half of sagaTimeoutSeconds"},
		{[]string{"--set", "kafka.bootstrap="}, "kafka.bootstrap"},
	} {
		out, err := render(t, tc.flags...)
		if err == nil {
			t.Errorf("%v: rendered (%d bytes)", tc.flags, len(out))
		} else if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error about %q", tc.flags, err, tc.want)
		}
	}
}

// The chart's defaults, with only the secrets given, render and decode.
func TestHelmDefaults(t *testing.T) {
	out, err := helm(t, "template", "eventmart", chart, "--set", "secrets.existingSecret=eventmart-secrets")
	if err != nil {
		t.Fatalf("helm template with the defaults: %v", err)
	}
	objs, err := decode(out)
	if err != nil {
		t.Fatal(err)
	}
	hpas := 0
	for _, o := range objs {
		if _, ok := o.(*autoscalingv2.HorizontalPodAutoscaler); ok {
			hpas++
		}
		if s, ok := o.(*appsv1.StatefulSet); ok && (s.Spec.Replicas == nil || *s.Spec.Replicas != 2 || !strings.HasPrefix(s.Name, "eventmart-")) {
			t.Errorf("%s: replicas %v, want 2", s.Name, s.Spec.Replicas)
		}
	}
	if hpas != 0 {
		t.Errorf("%d autoscalers by default; they need a metrics adapter", hpas)
	}
}

// The kubelet's sleep action exists from Kubernetes 1.30; before, the chart
// leaves the preStop hook out, and it refuses a cluster older than 1.25.
func TestHelmKubeVersions(t *testing.T) {
	r := renderChart(t, "--kube-version", "1.29.0")
	for name, pod := range r.pods() {
		if pod.Spec.Containers[0].Lifecycle != nil {
			t.Errorf("%s: lifecycle %+v on Kubernetes 1.29", name, pod.Spec.Containers[0].Lifecycle)
		}
	}
	if _, err := render(t, "--kube-version", "1.24.0"); err == nil {
		t.Error("rendered for Kubernetes 1.24")
	}
}
