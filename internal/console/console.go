// Package console is the event-flow console: admin endpoints the gateway
// serves from the event bus itself (a live stream of events, topics with
// per-group lag, the topology of services and topics with rates) and the
// web front end at /console, embedded into the binary.
//
// Every data endpoint requires an admin token. The front end is public
// static files; it logs in with POST /api/v1/auth/token and keeps the token
// in sessionStorage. The live stream is server-sent events read with fetch()
// and a ReadableStream, so the token travels in the Authorization header
// like on every other call (EventSource cannot send headers; no token ever
// goes into a URL).
package console

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/prometheus/client_golang/prometheus"
)

// Consumer is what a service's consumer group subscribes to, as the process
// running the service reports it (GET /api/v1/admin/consumers/{service}).
type Consumer struct {
	Service    string   `json:"service"`
	Group      string   `json:"group"`
	EventTypes []string `json:"eventTypes"` // sorted
	Topics     []string `json:"topics"`     // sorted
}

// BusReader is what the console asks of the event bus: it reads partitions
// and offsets, lists topics and a group's lag; it never publishes,
// consumes or changes a topic.
type BusReader interface {
	bus.Reader
	Topics(ctx context.Context) ([]bus.TopicConfig, error)
	Lag(ctx context.Context, group string, topics []string) ([]bus.PartitionLag, error)
}

// Console serves the console's endpoints from a bus.
type Console struct {
	Bus BusReader
	// Consumers returns the consumer groups of every service this
	// deployment runs (here or in other processes), with the errors of the
	// services it could not ask. ctx carries the admin's identity.
	Consumers func(ctx context.Context) ([]Consumer, error)
	Log       *slog.Logger
	Now       func() time.Time // default time.Now

	// PollInterval is how often an idle stream looks for new records;
	// default 250ms.
	PollInterval time.Duration
	// StreamBuffer is how many events a stream holds for a slow client
	// before it drops (and reports) the newest; default 256.
	StreamBuffer int
	// Metrics is this process's metrics registry, which the chart samples
	// read handler durations and dead letters from; nil: none.
	Metrics prometheus.Gatherer
	// SampleEvery is how often RunSampler takes a chart sample (default
	// DefaultSampleEvery); SampleHistory how many it keeps (default
	// DefaultSampleHistory).
	SampleEvery   time.Duration
	SampleHistory int
	samples       sampler
	// Prometheus, if set, is the base URL of a Prometheus that scrapes
	// this deployment: the charts are then read from it (its range
	// queries, up to 24h) instead of the sample history.
	Prometheus string
	promClient *http.Client

	once sync.Once
	done chan struct{}
}

func (c *Console) init() {
	c.once.Do(func() {
		c.done = make(chan struct{})
		if c.Now == nil {
			c.Now = time.Now
		}
		if c.PollInterval <= 0 {
			c.PollInterval = 250 * time.Millisecond
		}
		if c.StreamBuffer <= 0 {
			c.StreamBuffer = 256
		}
		if c.SampleEvery <= 0 {
			c.SampleEvery = DefaultSampleEvery
		}
		if c.SampleHistory <= 0 {
			c.SampleHistory = DefaultSampleHistory
		}
		if c.Log == nil {
			c.Log = slog.Default()
		}
		c.promClient = &http.Client{Timeout: PromTimeout}
	})
}

// EndStreams ends every open stream (and any opened later): call it when
// the HTTP server shuts down, whose graceful shutdown would otherwise wait
// for streams that never end by themselves.
func (c *Console) EndStreams() {
	c.init()
	select {
	case <-c.done:
	default:
		close(c.done)
	}
}

// admin wraps a handler that only admins may call.
func admin(fn http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, err := auth.RequireAdmin(r.Context()); err != nil {
			httpx.Error(w, r, err)
			return
		}
		fn(w, r)
	}
}

// businessTopics are the topics the console watches: every topic of the
// ADR's table that carries business events.
func businessTopics() []string {
	var out []string
	for _, t := range event.BusinessTopics() {
		out = append(out, string(t))
	}
	return out
}

// watchedTopics are the topics the stream and the topology read: the
// business topics and audit-events (logins, denials, admin actions), so
// that the audit service's subscriptions have a topic to come from.
func watchedTopics() []string {
	return append(businessTopics(), string(event.TopicAudit))
}
