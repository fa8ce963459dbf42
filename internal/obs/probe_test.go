package obs_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventmart/eventmart/bus/embedded"
	"github.com/eventmart/eventmart/bus/kafka"
	"github.com/eventmart/eventmart/internal/obs"
	"github.com/eventmart/eventmart/internal/testenv"
)

// gauges gathers p's metrics by name (unlabelled ones only).
func gauges(t *testing.T, p *obs.Probes) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(p)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 0 {
				out[mf.GetName()] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// A bus with the ClusterReporter capability (Kafka) adds the cluster's
// gauges; one without (the embedded log) reports only that it is up.
func TestProbesReportTheClusterOnlyOfABusThatHasOne(t *testing.T) {
	eb, err := embedded.Open(filepath.Join(t.TempDir(), "log.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer eb.Close()
	g := gauges(t, &obs.Probes{Bus: eb})
	if g["eventmart_bus_up"] != 1 {
		t.Errorf("embedded: bus_up = %v, want 1", g["eventmart_bus_up"])
	}
	if _, ok := g["eventmart_kafka_brokers"]; ok {
		t.Error("embedded: reports Kafka brokers")
	}

	brokers := testenv.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kb, err := kafka.Open(ctx, brokers)
	if err != nil {
		t.Fatal(err)
	}
	defer kb.Close()
	g = gauges(t, &obs.Probes{Bus: kb})
	if g["eventmart_bus_up"] != 1 || g["eventmart_kafka_brokers"] < 1 {
		t.Errorf("kafka: bus_up = %v, kafka_brokers = %v; want 1 and at least 1", g["eventmart_bus_up"], g["eventmart_kafka_brokers"])
	}
	if _, ok := g["eventmart_kafka_offline_partitions"]; !ok {
		t.Error("kafka: no offline partitions gauge")
	}
}
