// Package obstest reads Prometheus text exposition for tests: scrape a
// /metrics endpoint and sum the samples that match labels.
package obstest

import (
	"fmt"
	"io"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Samples are parsed metric families by name.
type Samples map[string]*dto.MetricFamily

// Parse reads the text format.
func Parse(r io.Reader) (Samples, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("obstest: %w", err)
	}
	return fams, nil
}

// Scrape GETs url (a /metrics endpoint) and parses it.
func Scrape(url string) (Samples, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, fmt.Errorf("obstest: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("obstest: GET %s: %s", url, resp.Status)
	}
	return Parse(resp.Body)
}

// Sum adds the values of name's samples whose labels include every one of
// labels ("k", "v", "k2", "v2"…): counters, gauges, untyped, and the
// sample counts of histograms and summaries. found is false when no sample
// matched.
func (s Samples) Sum(name string, labels ...string) (sum float64, found bool) {
	fam := s[name]
	if fam == nil {
		return 0, false
	}
outer:
	for _, m := range fam.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			if label(m, labels[i]) != labels[i+1] {
				continue outer
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		case m.Summary != nil:
			sum += float64(m.Summary.GetSampleCount())
		}
	}
	return sum, found
}

// Value is Sum without found: 0 when nothing matched.
func (s Samples) Value(name string, labels ...string) float64 {
	v, _ := s.Sum(name, labels...)
	return v
}

// LabelValues returns every value label takes among name's samples.
func (s Samples) LabelValues(name, lbl string) []string {
	var out []string
	if fam := s[name]; fam != nil {
		for _, m := range fam.Metric {
			out = append(out, label(m, lbl))
		}
	}
	return out
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
