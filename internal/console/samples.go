package console

import (
	"context"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/httpx"
)

// Sample is one point of the console's charts, taken every SampleEvery:
// what happened since the previous sample.
type Sample struct {
	At time.Time `json:"at"`
	// EventsPerSecond is, by topic, the records appended since the
	// previous sample per second (end offsets' growth).
	EventsPerSecond map[string]float64 `json:"eventsPerSecond"`
	// HandlerP99Ms is, by consumer group, the 99th percentile of its event
	// handlers' durations since the previous sample, in milliseconds (the
	// upper bound of the histogram bucket it falls in); groups of this
	// process only, and only those that handled events.
	HandlerP99Ms map[string]float64 `json:"handlerP99Ms"`
	// Lag is, by consumer group, the records of its topics it has not
	// processed yet.
	Lag map[string]int64 `json:"lag"`
	// DeadLetters is the events this process's consumer groups
	// dead-lettered since it started.
	DeadLetters int64 `json:"deadLetters"`
}

// Default sampling: a sample every 10s, the last hour kept.
const (
	DefaultSampleEvery   = 10 * time.Second
	DefaultSampleHistory = 360
)

// sampler holds the bounded sample history and what the next sample
// compares with.
type sampler struct {
	mu      sync.Mutex
	samples []Sample // oldest first, at most history
	ends    map[string]int64
	buckets map[string][]bucket // by group: cumulative counts
	at      time.Time
}

type bucket struct {
	le    float64
	count uint64
}

// RunSampler takes a sample every SampleEvery until ctx ends, keeping the
// newest SampleHistory.
func (c *Console) RunSampler(ctx context.Context) {
	c.init()
	t := time.NewTicker(c.SampleEvery)
	defer t.Stop()
	c.TakeSample(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.TakeSample(ctx)
		}
	}
}

// TakeSample takes one sample now. The first one has no rates (nothing to
// compare with) and is kept only as the base of the next.
func (c *Console) TakeSample(ctx context.Context) {
	c.init()
	now := c.Now()
	ends := c.topicEnds(ctx)
	s := Sample{At: now.UTC(), EventsPerSecond: map[string]float64{}, HandlerP99Ms: map[string]float64{}, Lag: map[string]int64{}}
	for _, g := range event.ConsumerGroups {
		topics := map[string]bool{}
		for _, typ := range g.Types {
			topics[string(event.TopicOf(typ))] = true
		}
		lags, err := c.Bus.Lag(ctx, g.Group, slices.Sorted(func(yield func(string) bool) {
			for t := range topics {
				if !yield(t) {
					return
				}
			}
		}))
		if err != nil {
			continue
		}
		var sum int64
		for _, l := range lags {
			sum += l.Lag
		}
		s.Lag[g.Group] = sum
	}
	buckets, dead := c.gatherHandlers()
	s.DeadLetters = dead

	sp := &c.samples
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if !sp.at.IsZero() {
		secs := now.Sub(sp.at).Seconds()
		for t, end := range ends {
			if prev, ok := sp.ends[t]; ok && secs > 0 {
				s.EventsPerSecond[t] = float64(max(end-prev, 0)) / secs
			}
		}
		for g, bs := range buckets {
			if p, ok := p99(sp.buckets[g], bs); ok {
				s.HandlerP99Ms[g] = p * 1000
			}
		}
		sp.samples = append(sp.samples, s)
		if over := len(sp.samples) - c.SampleHistory; over > 0 {
			sp.samples = slices.Delete(sp.samples, 0, over)
		}
	}
	sp.ends, sp.buckets, sp.at = ends, buckets, now
}

// topicEnds returns the sum of each watched topic's end offsets: listed for
// all topics at once (one request per broker, not two per topic), or, when
// that fails, topic by topic, so that a missing topic leaves out only
// itself. A topic the bus cannot list (it is down) has no entry.
func (c *Console) topicEnds(ctx context.Context) map[string]int64 {
	topics := watchedTopics()
	listed, err := bus.Ends(ctx, c.Bus, topics)
	if err != nil {
		listed = map[string]map[int32]int64{}
		for _, t := range topics {
			if one, err := bus.Ends(ctx, c.Bus, []string{t}); err == nil {
				listed[t] = one[t]
			}
		}
	}
	ends := make(map[string]int64, len(listed))
	for t, parts := range listed {
		for _, end := range parts {
			ends[t] += end
		}
	}
	return ends
}

// gatherHandlers reads this process's handler-duration histograms, summed
// by group, and its dead-letter count.
func (c *Console) gatherHandlers() (map[string][]bucket, int64) {
	out := map[string][]bucket{}
	var dead int64
	if c.Metrics == nil {
		return out, 0
	}
	mfs, err := c.Metrics.Gather()
	if err != nil {
		return out, 0
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "eventmart_consumer_dead_letters_total":
			for _, m := range mf.GetMetric() {
				dead += int64(m.GetCounter().GetValue())
			}
		case "eventmart_handler_duration_seconds":
			for _, m := range mf.GetMetric() {
				group := ""
				for _, l := range m.GetLabel() {
					if l.GetName() == "group" {
						group = l.GetValue()
					}
				}
				bs := out[group]
				for i, b := range m.GetHistogram().GetBucket() {
					if i >= len(bs) {
						bs = append(bs, bucket{le: b.GetUpperBound()})
					}
					bs[i].count += b.GetCumulativeCount()
				}
				total := m.GetHistogram().GetSampleCount()
				if n := len(m.GetHistogram().GetBucket()); len(bs) == n {
					bs = append(bs, bucket{le: math.Inf(1)})
				}
				bs[len(bs)-1].count += total
				out[group] = bs
			}
		}
	}
	return out, dead
}

// p99 is the upper bound of the bucket holding the 99th percentile of the
// observations between the cumulative histograms prev and cur.
func p99(prev, cur []bucket) (float64, bool) {
	if len(cur) == 0 {
		return 0, false
	}
	delta := func(i int) uint64 {
		if i < len(prev) {
			return cur[i].count - prev[i].count
		}
		return cur[i].count
	}
	total := delta(len(cur) - 1)
	if total == 0 {
		return 0, false
	}
	for i := range cur {
		if float64(delta(i)) >= 0.99*float64(total) {
			if math.IsInf(cur[i].le, 1) && i > 0 {
				return cur[i-1].le, true // beyond the last bound: say the last bound
			}
			return cur[i].le, true
		}
	}
	return cur[len(cur)-1].le, true
}

// Samples serves GET /api/v1/admin/samples?range=15m: the samples of the
// last range (default 15m, at most 24h), oldest first.
// {"source", "range", "every", "samples": [Sample…]}: source "process" is
// the history kept (at most SampleHistory samples); source "prometheus"
// (when c.Prometheus is set) is one sample per "every" from Prometheus,
// with "prometheus" its URL and "truncated" true when a chart had more
// than PromMaxSeries series. Prometheus down or failing: 503 naming it.
func (c *Console) Samples(w http.ResponseWriter, r *http.Request) {
	c.init()
	for name := range r.URL.Query() {
		if name != "range" {
			httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "unknown query parameter %q (allowed: range)", name))
			return
		}
	}
	span := 15 * time.Minute
	if s := r.URL.Query().Get("range"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > 24*time.Hour {
			httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "range: want a duration up to 24h, such as 15m"))
			return
		}
		span = d
	}
	if c.Prometheus != "" {
		out, step, truncated, err := c.promSamples(r.Context(), span)
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		httpx.JSON(w, http.StatusOK, map[string]any{"source": "prometheus", "prometheus": c.Prometheus, "range": durationText(span),
			"every": durationText(step), "truncated": truncated, "samples": out})
		return
	}
	since := c.Now().Add(-span)
	sp := &c.samples
	sp.mu.Lock()
	out := []Sample{}
	for _, s := range sp.samples {
		if !s.At.Before(since) {
			out = append(out, s)
		}
	}
	sp.mu.Unlock()
	httpx.JSON(w, http.StatusOK, map[string]any{"source": "process", "range": durationText(span), "every": durationText(c.SampleEvery), "samples": out})
}
