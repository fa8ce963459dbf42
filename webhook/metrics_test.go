package webhook_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/internal/obs/obstest"
)

// TestMetricsCountOutcomesWithBoundedLabels delivers one event to an
// endpoint that fails twice then answers, and to one that answers 410, and
// reads /metrics: outcomes, latencies by result, the disabled endpoint,
// the delivery waiting in its queue — and no label naming an endpoint.
func TestMetricsCountOutcomesWithBoundedLabels(t *testing.T) {
	t.Parallel()
	h := start(t, loopback)
	flaky := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	gone := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusGone) })
	a, b := create(h, flaky.URL), create(h, gone.URL)
	h.Publish("order-service", origin, orderCreated("o-metrics"))

	var m obstest.Samples
	// The outcome is counted as the attempt ends, before the delivery's row
	// is marked in its transaction: wait for the pending gauge to agree too.
	h.Eventually("three attempts to one endpoint and a 410 from the other in /metrics", func() bool {
		var err error
		if m, err = obstest.Scrape(h.Server.URL + "/metrics"); err != nil {
			t.Fatal(err)
		}
		pending, _ := m.Sum("eventmart_webhook_pending_deliveries", "endpoint_state", "enabled")
		return m.Value("eventmart_webhook_deliveries_total", "outcome", "delivered") == 1 &&
			m.Value("eventmart_webhook_deliveries_total", "outcome", "gone") == 1 && pending == 0
	})
	for outcome, want := range map[string]float64{"delivered": 1, "retrying": 2, "failed": 0, "gone": 1} {
		if got := m.Value("eventmart_webhook_deliveries_total", "outcome", outcome); got != want {
			t.Errorf("deliveries %s: %v, want %v", outcome, got, want)
		}
	}
	for result, want := range map[string]float64{"2xx": 1, "5xx": 2, "4xx": 1} {
		if got := m.Value("eventmart_webhook_attempt_duration_seconds", "result", result); got != want {
			t.Errorf("attempts timed with result %s: %v, want %v", result, got, want)
		}
	}
	checks := []struct {
		name, label, value string
		want               float64
	}{
		{"eventmart_webhook_endpoints_disabled_total", "reason", "gone", 1},
		{"eventmart_webhook_endpoints_disabled_total", "reason", "failing", 0},
		{"eventmart_webhook_endpoints", "state", "enabled", 1},
		{"eventmart_webhook_endpoints", "state", "disabled", 1},
		// The 410's delivery waits for its endpoint to be enabled again.
		{"eventmart_webhook_pending_deliveries", "endpoint_state", "disabled", 1},
		{"eventmart_webhook_pending_deliveries", "endpoint_state", "enabled", 0},
	}
	for _, c := range checks {
		if got, found := m.Sum(c.name, c.label, c.value); !found || got != c.want {
			t.Errorf("%s{%s=%q} = %v (found %v), want %v", c.name, c.label, c.value, got, found, c.want)
		}
	}
	// Bounded cardinality: no series names an endpoint.
	for name, fam := range m {
		if !strings.HasPrefix(name, "eventmart_webhook_") {
			continue
		}
		for _, s := range fam.Metric {
			for _, l := range s.Label {
				if v := l.GetValue(); v == a.ID || v == b.ID || strings.Contains(v, "127.0.0.1") {
					t.Errorf("%s has a label %s=%q naming an endpoint", name, l.GetName(), v)
				}
			}
		}
	}
}
