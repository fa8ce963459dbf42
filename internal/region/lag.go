package region

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Lag is replication lag as a standby region sees it: the age of every
// replicated record when it can be read here (now minus its timestamp,
// which MirrorMaker keeps from the source), per topic. Its p99 bounds the
// RPO: a record acknowledged in the primary more than that long before the
// primary is lost is here.
type Lag struct {
	Age *prometheus.HistogramVec

	mu     sync.Mutex
	recent map[string]*window // by topic: the console's figures (Summary)
}

// recentAges is how many of a topic's last ages Summary's quantiles are
// taken over: the console shows the current lag, where the histogram
// (Prometheus) holds every age since the start.
const recentAges = 512

// window is a topic's last recentAges ages, a ring.
type window struct {
	ages    [recentAges]float64
	n, next int
	count   int64     // records measured since the start
	last    float64   // the newest record's age
	lastAt  time.Time // when it was read
}

// TopicLag is a topic's replication lag as Summary reports it.
type TopicLag struct {
	Topic string `json:"topic"`
	// Count is how many records were measured since the process started;
	// P50Seconds and P99Seconds are over the last (at most 512) of them.
	Count      int64   `json:"count"`
	P50Seconds float64 `json:"p50Seconds"`
	P99Seconds float64 `json:"p99Seconds"`
	// LastSeconds is the age of the newest record read, at LastAt.
	LastSeconds float64   `json:"lastSeconds"`
	LastAt      time.Time `json:"lastAt"`
}

// NewLag registers eventmart_region_replication_age_seconds on reg.
func NewLag(reg prometheus.Registerer) (*Lag, error) {
	l := &Lag{Age: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "eventmart_region_replication_age_seconds",
		Help:    "Age of replicated records when they became readable in this standby region (now minus the record's timestamp from the primary), per topic.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2, 3, 5, 10, 30, 60, 300},
	}, []string{"topic"})}
	if err := reg.Register(l.Age); err != nil {
		return nil, fmt.Errorf("region: lag metrics: %w", err)
	}
	return l, nil
}

// Run reads topics on the cluster at brokers from their ends (no consumer
// group: nothing is committed) and observes each record's age until ctx
// ends.
func (l *Lag) Run(ctx context.Context, brokers []string, topics []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID("eventmart-region-lag"),
		kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return fmt.Errorf("region: lag: %w", err)
	}
	defer cl.Close()
	obs := map[string]prometheus.Observer{}
	for _, t := range topics {
		obs[t] = l.Age.WithLabelValues(t)
	}
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		now := time.Now()
		l.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			if o := obs[r.Topic]; o != nil {
				age := max(now.Sub(r.Timestamp).Seconds(), 0)
				o.Observe(age)
				l.note(r.Topic, age, now)
			}
		})
		l.mu.Unlock()
	}
}

// note keeps age in topic's window; l.mu is held.
func (l *Lag) note(topic string, age float64, at time.Time) {
	if l.recent == nil {
		l.recent = map[string]*window{}
	}
	w := l.recent[topic]
	if w == nil {
		w = &window{}
		l.recent[topic] = w
	}
	w.ages[w.next] = age
	w.next = (w.next + 1) % recentAges
	w.n = min(w.n+1, recentAges)
	w.count++
	w.last, w.lastAt = age, at
}

// Summary returns the lag of every topic a record was measured on, by
// topic name: p50 and p99 of the last ages (nearest rank), the newest age.
func (l *Lag) Summary() []TopicLag {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]TopicLag, 0, len(l.recent))
	for topic, w := range l.recent {
		ages := slices.Clone(w.ages[:w.n])
		slices.Sort(ages)
		out = append(out, TopicLag{Topic: topic, Count: w.count, P50Seconds: rank(ages, 0.50), P99Seconds: rank(ages, 0.99),
			LastSeconds: w.last, LastAt: w.lastAt.UTC()})
	}
	slices.SortFunc(out, func(a, b TopicLag) int { return strings.Compare(a.Topic, b.Topic) })
	return out
}

// rank is the q quantile of sorted by nearest rank.
func rank(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}
