// Package obs is Eventmart's observability: Prometheus metrics (one
// registry per running app, served at GET /metrics), OpenTelemetry tracing
// of HTTP requests, publishes and event handlers, and the slog handler that
// puts trace ids on log lines. Metric names and labels are documented in
// docs/monitoring.md; deploy/prometheus and deploy/grafana use them.
package obs

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
)

// Namespace prefixes every Eventmart metric.
const Namespace = "eventmart"

// Buckets of the latency histograms, in seconds.
var (
	HandlerBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	// EventHandlerBuckets are coarser: handler_duration_seconds has a series
	// per group and event type (over a hundred), and with HandlerBuckets'
	// fourteen they were 1,800 of a scrape's 4,400 lines. A factor of about
	// five between bounds still tells a 1ms handler from a slow one.
	EventHandlerBuckets = []float64{.001, .005, .025, .1, .5, 2.5}
	HTTPBuckets         = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	SagaBuckets         = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800}
)

// Consumed outcomes (label outcome of eventmart_events_consumed_total).
const (
	OutcomeProcessed    = "processed"     // the handler applied it
	OutcomeDuplicate    = "duplicate"     // processed before (redelivery, replay)
	OutcomeIgnored      = "ignored"       // no handler of this group wants its type (or inbox.Wanter turned it down)
	OutcomeParked       = "parked"        // failed; moved to the delayed-retry queue
	OutcomeDeadLettered = "dead_lettered" // given up on: in the dead-letter queue
)

var consumedOutcomes = []string{OutcomeProcessed, OutcomeDuplicate, OutcomeIgnored, OutcomeParked, OutcomeDeadLettered}

// Metrics are the metrics of one running app, on their own registry (no
// global state: apps in one test binary do not share counters).
type Metrics struct {
	Registry *prometheus.Registry

	published     *prometheus.CounterVec
	publishTime   *prometheus.HistogramVec
	consumed      *prometheus.CounterVec
	handlerTime   *prometheus.HistogramVec
	batchTime     *prometheus.HistogramVec
	pruned        *prometheus.CounterVec
	retries       *prometheus.CounterVec
	parked        *prometheus.CounterVec
	deadLetters   *prometheus.CounterVec
	httpRequests  *prometheus.CounterVec
	httpDuration  *prometheus.HistogramVec
	httpInFlight  prometheus.Gauge
	publishByType map[string]*publishCounters // by event type; read-only after New
	httpChildren  sync.Map                    // httpKey -> *httpChildren
}

// New returns the metrics of an app registered on reg (a new registry if
// nil), with Go runtime and process collectors.
func New(reg *prometheus.Registry) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{Registry: reg}
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m.published = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "events_published_total",
		Help: "Events published to the bus by the outbox relays, by topic, event type and outcome (ok, error)."},
		[]string{"topic", "event_type", "outcome"})
	m.publishTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "publish_duration_seconds",
		Help: "Time of one outbox relay publish call until the bus acknowledged it, by outcome.", Buckets: HandlerBuckets},
		[]string{"outcome"})
	m.consumed = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "events_consumed_total",
		Help: "Events consumed by consumer groups, by group, topic, event type and outcome (processed, duplicate, ignored, parked, dead_lettered); counted when the batch commits."},
		[]string{"group", "topic", "event_type", "outcome"})
	m.handlerTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "handler_duration_seconds",
		Help: "Time an event handler took for one event (within its batch transaction), by group and event type.", Buckets: EventHandlerBuckets},
		[]string{"group", "event_type"})
	m.batchTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "handler_batch_duration_seconds",
		Help: "Time a consumer group took to apply one batch transaction (one or more partitions' batches), by group.", Buckets: HandlerBuckets},
		[]string{"group"})
	m.pruned = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "processed_events_pruned_total",
		Help: "Processed-event records deleted after the inbox retention (EVENTMART_INBOX_RETENTION), by group."},
		[]string{"group"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "consumer_retries_total",
		Help: "Failed handler attempts that will be retried (in place or from the delayed-retry queue), by group and event type."},
		[]string{"group", "event_type"})
	m.parked = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "consumer_parked_total",
		Help: "Events moved to the delayed-retry queue, by group and event type."},
		[]string{"group", "event_type"})
	m.deadLetters = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "consumer_dead_letters_total",
		Help: "Events moved to the dead-letter queue, by group and event type."},
		[]string{"group", "event_type"})
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "http_requests_total",
		Help: "HTTP requests served, by route pattern, method and status code."},
		[]string{"route", "method", "code"})
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "http_request_duration_seconds",
		Help: "HTTP request latency, by route pattern and method.", Buckets: HTTPBuckets},
		[]string{"route", "method"})
	m.httpInFlight = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "http_requests_in_flight",
		Help: "HTTP requests being served."})
	for _, c := range []prometheus.Collector{m.published, m.publishTime, m.consumed, m.handlerTime, m.batchTime, m.pruned, m.retries, m.parked,
		m.deadLetters, m.httpRequests, m.httpDuration, m.httpInFlight} {
		f(c)
	}
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.publishByType = map[string]*publishCounters{}
	for _, spec := range event.Catalog() {
		t, topic := string(spec.Type), string(spec.Topic)
		m.publishByType[t] = &publishCounters{ok: m.published.WithLabelValues(topic, t, "ok"), err: m.published.WithLabelValues(topic, t, "error")}
	}
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

type publishCounters struct{ ok, err prometheus.Counter }

// publishedOf returns the counters of msg's event type (its header, looked
// up without allocating).
func (m *Metrics) publishedOf(msg *bus.Message) *publishCounters {
	for _, h := range msg.Headers {
		if h.Key == eventmsg.HeaderEventType {
			if c := m.publishByType[string(h.Value)]; c != nil {
				return c
			}
			break
		}
	}
	return &publishCounters{ok: m.published.WithLabelValues(msg.Topic, "unknown", "ok"), err: m.published.WithLabelValues(msg.Topic, "unknown", "error")}
}

// ConsumerMetrics are the precreated metrics of one consumer group: no
// label lookups on the hot path.
type ConsumerMetrics struct {
	byType  map[string]*EventMetrics
	byTopic map[string]*EventMetrics // events of an unknown type, per topic
	batch   prometheus.Observer
	// Pruned counts the group's processed-event records deleted after the
	// inbox retention.
	Pruned prometheus.Counter
}

// EventMetrics are the metrics of one event type in one consumer group.
type EventMetrics struct {
	consumed     [5]prometheus.Counter // by consumedOutcomes index
	Duration     prometheus.Observer   // handler latency
	Retries      prometheus.Counter
	Parked       prometheus.Counter
	DeadLettered prometheus.Counter
}

// Consumed counts one event with outcome (one of the Outcome constants).
func (e *EventMetrics) Consumed(outcome string) {
	for i, o := range consumedOutcomes {
		if o == outcome {
			e.consumed[i].Inc()
			return
		}
	}
}

// Consumer returns the metrics of consumer group on topics, with children
// precreated for every catalog event type of those topics.
func (m *Metrics) Consumer(group string, topics []string) *ConsumerMetrics {
	c := &ConsumerMetrics{byType: map[string]*EventMetrics{}, byTopic: map[string]*EventMetrics{}, batch: m.batchTime.WithLabelValues(group),
		Pruned: m.pruned.WithLabelValues(group)}
	mk := func(topic, t string) *EventMetrics {
		e := &EventMetrics{
			Duration:     m.handlerTime.WithLabelValues(group, t),
			Retries:      m.retries.WithLabelValues(group, t),
			Parked:       m.parked.WithLabelValues(group, t),
			DeadLettered: m.deadLetters.WithLabelValues(group, t),
		}
		for i, o := range consumedOutcomes {
			e.consumed[i] = m.consumed.WithLabelValues(group, topic, t, o)
		}
		return e
	}
	want := map[string]bool{}
	for _, t := range topics {
		want[t] = true
		c.byTopic[t] = mk(t, "unknown")
	}
	for _, spec := range event.Catalog() {
		if want[string(spec.Topic)] {
			c.byType[string(spec.Type)] = mk(string(spec.Topic), string(spec.Type))
		}
	}
	return c
}

// Event returns the metrics of an event of type t (a header value, maybe
// garbage) read from topic: those of type "unknown" for a type outside the
// catalog, nil for a topic the group does not consume, or when c is nil.
func (c *ConsumerMetrics) Event(topic, t string) *EventMetrics {
	if c == nil {
		return nil
	}
	if e := c.byType[t]; e != nil {
		return e
	}
	return c.byTopic[topic]
}

// Of is Event for a record, by its eventType header, without allocating.
func (c *ConsumerMetrics) Of(m *bus.Message) *EventMetrics {
	if c == nil {
		return nil
	}
	for _, h := range m.Headers {
		if h.Key == eventmsg.HeaderEventType {
			if e := c.byType[string(h.Value)]; e != nil {
				return e
			}
			break
		}
	}
	return c.byTopic[m.Topic]
}

// Batch observes the duration of one batch transaction.
func (c *ConsumerMetrics) Batch(d time.Duration) {
	if c != nil {
		c.batch.Observe(d.Seconds())
	}
}
