package console

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventmart/eventmart"
)

// Bounds of the charts read from Prometheus, so that a long range or many
// label values cannot make one request heavy.
const (
	// PromTimeout bounds the four range queries of one request together.
	PromTimeout = 10 * time.Second
	// PromMaxPoints is the most points per series: the step grows with
	// the range (never below PromMinStep).
	PromMaxPoints = 240
	PromMinStep   = 5 * time.Second
	// PromMaxSeries is the most series per chart; the rest are dropped
	// (in name order) and the answer says so.
	PromMaxSeries = 20
	// promMaxBody bounds one answer of Prometheus.
	promMaxBody = 8 << 20
)

// promQuery is one chart's PromQL over the metrics Eventmart exports
// (docs/monitoring.md), with the label that names its series ("" for one
// series). $window stands for the rate window.
type promQuery struct {
	field, label, expr string
}

var promQueries = []promQuery{
	{"eventsPerSecond", "topic", `sum by (topic) (rate(eventmart_events_published_total{outcome="ok"}[$window]))`},
	{"handlerP99Ms", "group", `1000 * histogram_quantile(0.99, sum by (group, le) (rate(eventmart_handler_duration_seconds_bucket[$window])))`},
	{"lag", "group", `sum by (group) (max by (group, topic, partition) (eventmart_consumer_lag))`},
	{"deadLetters", "", `sum(eventmart_consumer_dead_letters_total)`},
}

// promStep is the query step for a range: PromMaxPoints over the range,
// in whole seconds, at least PromMinStep.
func promStep(span time.Duration) time.Duration {
	return max((span / PromMaxPoints).Truncate(time.Second), PromMinStep)
}

// promSamples answers the charts over the last span from the Prometheus at
// c.Prometheus: the same samples as the process's own history, one per
// step, and whether series were dropped over PromMaxSeries. An error is
// EUNAVAILABLE and names Prometheus.
func (c *Console) promSamples(ctx context.Context, span time.Duration) ([]Sample, time.Duration, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, PromTimeout)
	defer cancel()
	step := promStep(span)
	end := c.Now().Truncate(step)
	start := end.Add(-span)
	window := max(2*step, time.Minute) // a rate needs two scrapes in its window
	byTime := map[int64]*Sample{}
	at := func(ts float64) *Sample {
		ms := int64(math.Round(ts * 1000))
		s := byTime[ms]
		if s == nil {
			s = &Sample{At: time.UnixMilli(ms).UTC(), EventsPerSecond: map[string]float64{}, HandlerP99Ms: map[string]float64{}, Lag: map[string]int64{}}
			byTime[ms] = s
		}
		return s
	}
	truncated := false
	for _, q := range promQueries {
		series, err := c.queryRange(ctx, strings.ReplaceAll(q.expr, "$window", promDuration(window)), start, end, step)
		if err != nil {
			return nil, 0, false, eventmart.Errorf(eventmart.EUNAVAILABLE, "Prometheus at %s: %v", c.Prometheus, err)
		}
		slices.SortFunc(series, func(a, b promSeries) int { return cmp.Compare(a.Metric[q.label], b.Metric[q.label]) })
		if len(series) > PromMaxSeries {
			series, truncated = series[:PromMaxSeries], true
		}
		for _, sr := range series {
			name := sr.Metric[q.label]
			for _, p := range sr.Values {
				v, ok := p.value()
				if !ok {
					continue // NaN: no handler ran in that window
				}
				s := at(p.time())
				switch q.field {
				case "eventsPerSecond":
					s.EventsPerSecond[name] = v
				case "handlerP99Ms":
					s.HandlerP99Ms[name] = v
				case "lag":
					s.Lag[name] = int64(math.Round(v))
				case "deadLetters":
					s.DeadLetters = int64(math.Round(v))
				}
			}
		}
	}
	out := make([]Sample, 0, len(byTime))
	for _, s := range byTime {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b Sample) int { return a.At.Compare(b.At) })
	return out, step, truncated, nil
}

// promSeries is one series of a range query's matrix.
type promSeries struct {
	Metric map[string]string `json:"metric"`
	Values []promPoint       `json:"values"`
}

// promPoint is [unix seconds, "value"].
type promPoint [2]any

func (p promPoint) time() float64 {
	f, _ := p[0].(float64)
	return f
}

func (p promPoint) value() (float64, bool) {
	s, _ := p[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}

// queryRange calls Prometheus's GET /api/v1/query_range.
func (c *Console) queryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) ([]promSeries, error) {
	q := url.Values{
		"query": {query},
		"start": {strconv.FormatInt(start.Unix(), 10)},
		"end":   {strconv.FormatInt(end.Unix(), 10)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.Prometheus, "/")+"/api/v1/query_range?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("query_range: %w", err)
	}
	resp, err := c.promClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query_range: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promSeries `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, promMaxBody)).Decode(&body); err != nil {
		return nil, fmt.Errorf("query_range: %s: %w", resp.Status, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query_range: %s: %s", resp.Status, body.Error)
	}
	if body.Data.ResultType != "matrix" {
		return nil, fmt.Errorf("query_range: a %q result, want a matrix", body.Data.ResultType)
	}
	return body.Data.Result, nil
}

// promDuration writes d as PromQL does: whole seconds.
func promDuration(d time.Duration) string {
	return strconv.Itoa(int(d.Seconds())) + "s"
}
