package region

import (
	"context"
	"fmt"
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
		fs.EachRecord(func(r *kgo.Record) {
			if o := obs[r.Topic]; o != nil {
				o.Observe(max(now.Sub(r.Timestamp).Seconds(), 0))
			}
		})
	}
}
