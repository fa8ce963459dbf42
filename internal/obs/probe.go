package obs

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventmart/eventmart/bus"
)

// Probes read state at scrape time: consumer lag from the bus, the outbox
// backlogs, retry and dead-letter queue depths from the services'
// databases, and the health of the bus (and of the Kafka cluster). A
// scrape runs them at most once per MinInterval (later scrapes in that
// window get the same values), each within Timeout, so their cost is
// bounded however often or concurrently /metrics is scraped.
type Probes struct {
	Bus         ProbedBus // a ClusterReporter adds the cluster's gauges
	Groups      []GroupProbe
	Outboxes    []OutboxProbe
	Log         *slog.Logger
	MinInterval time.Duration // default 2s
	Timeout     time.Duration // default 5s

	mu   sync.Mutex
	last time.Time
	out  []prometheus.Metric
}

// GroupProbe is one local consumer group.
type GroupProbe struct {
	Group  string
	Topics []string
	Depths func(ctx context.Context) (retrying, dead int64, err error)
}

// OutboxProbe is one local service's outbox.
type OutboxProbe struct {
	Service string
	Backlog func(ctx context.Context) (n int64, oldest time.Duration, err error)
}

// ProbedBus is what the probes ask of the event bus: its topics (does it
// answer at all) and a consumer group's lag.
type ProbedBus interface {
	Topics(ctx context.Context) ([]bus.TopicConfig, error)
	Lag(ctx context.Context, group string, topics []string) ([]bus.PartitionLag, error)
}

// ClusterReporter is the optional capability of a bus that runs on a
// cluster of brokers and reports its health (the Kafka driver does, the
// embedded one does not).
type ClusterReporter interface {
	Health(ctx context.Context) (bus.ClusterHealth, error)
}

var (
	descBusUp     = prometheus.NewDesc(Namespace+"_bus_up", "1 if the event bus (the Kafka cluster, or the embedded log) answered the last probe, else 0.", nil, nil)
	descLag       = prometheus.NewDesc(Namespace+"_consumer_lag", "Records a consumer group has yet to consume, by group, topic and partition.", []string{"group", "topic", "partition"}, nil)
	descBacklog   = prometheus.NewDesc(Namespace+"_outbox_backlog", "Events in a service's outbox not yet published.", []string{"service"}, nil)
	descOldest    = prometheus.NewDesc(Namespace+"_outbox_oldest_age_seconds", "Age of the oldest unpublished event in a service's outbox (0 when empty).", []string{"service"}, nil)
	descRetrying  = prometheus.NewDesc(Namespace+"_retry_queue_events", "Events of a consumer group waiting in its delayed-retry queue.", []string{"group"}, nil)
	descDead      = prometheus.NewDesc(Namespace+"_dead_letter_queue_events", "Dead letters of a consumer group awaiting redrive or discard (status dead).", []string{"group"}, nil)
	descProbeErrs = prometheus.NewDesc(Namespace+"_probe_errors", "Probes that failed in the last scrape, by probe (lag, outbox, queues, cluster).", []string{"probe"}, nil)
	descBrokers   = prometheus.NewDesc(Namespace+"_kafka_brokers", "Brokers the Kafka cluster's metadata lists.", nil, nil)
	descUnderRepl = prometheus.NewDesc(Namespace+"_kafka_under_replicated_partitions", "Partitions with fewer in-sync replicas than replicas.", nil, nil)
	descOffline   = prometheus.NewDesc(Namespace+"_kafka_offline_partitions", "Partitions without a leader.", nil, nil)
)

// Describe implements prometheus.Collector.
func (p *Probes) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBusUp, descLag, descBacklog, descOldest, descRetrying, descDead, descProbeErrs, descBrokers, descUnderRepl, descOffline} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (p *Probes) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	defer p.mu.Unlock()
	interval := p.MinInterval
	if interval <= 0 {
		interval = 2 * time.Second
	}
	if p.out == nil || time.Since(p.last) >= interval {
		p.out = p.probe()
		p.last = time.Now()
	}
	for _, m := range p.out {
		ch <- m
	}
}

func (p *Probes) probe() []prometheus.Metric {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []prometheus.Metric
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		out = append(out, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...))
	}
	errs := map[string]int{"lag": 0, "outbox": 0, "queues": 0, "cluster": 0}
	fail := func(probe string, err error, args ...any) {
		errs[probe]++
		if p.Log != nil {
			p.Log.Warn("metrics probe failed", append([]any{"probe", probe, "error", err}, args...)...)
		}
	}
	up := 1.0
	if p.Bus != nil {
		if _, err := p.Bus.Topics(ctx); err != nil {
			up = 0
			fail("cluster", err)
		}
	}
	gauge(descBusUp, up)
	if c, ok := p.Bus.(ClusterReporter); ok && up == 1 {
		if h, err := c.Health(ctx); err != nil {
			fail("cluster", err)
		} else {
			gauge(descBrokers, float64(h.Brokers))
			gauge(descUnderRepl, float64(h.UnderReplicatedPartitions))
			gauge(descOffline, float64(h.OfflinePartitions))
		}
	}
	for _, g := range p.Groups {
		if p.Bus != nil && up == 1 && len(g.Topics) > 0 {
			lags, err := p.Bus.Lag(ctx, g.Group, g.Topics)
			if err != nil {
				fail("lag", err, "group", g.Group)
			}
			for _, l := range lags {
				gauge(descLag, float64(l.Lag), g.Group, l.Topic, strconv.Itoa(int(l.Partition)))
			}
		}
		if g.Depths != nil {
			r, d, err := g.Depths(ctx)
			if err != nil {
				fail("queues", err, "group", g.Group)
				continue
			}
			gauge(descRetrying, float64(r), g.Group)
			gauge(descDead, float64(d), g.Group)
		}
	}
	for _, o := range p.Outboxes {
		n, age, err := o.Backlog(ctx)
		if err != nil {
			fail("outbox", err, "service", o.Service)
			continue
		}
		gauge(descBacklog, float64(n), o.Service)
		gauge(descOldest, age.Seconds(), o.Service)
	}
	for probe, n := range errs {
		gauge(descProbeErrs, float64(n), probe)
	}
	return out
}
