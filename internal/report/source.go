package report

import (
	"context"
	"fmt"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/internal/export"
)

// FromExport computes the daily report of [from, to) from the files of the
// export in dir: those of the report's topics whose hour overlaps the
// period, each checked against the manifest's SHA-256 first.
func FromExport(ctx context.Context, dir string, from, to time.Time) (*Daily, error) {
	m, err := export.ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	b := NewBuilder(from, to)
	for _, f := range m.Files {
		if !isReportTopic(f.Topic) || !f.Hour.Before(to) || !f.Hour.Add(time.Hour).After(from) {
			continue
		}
		if err := export.Verify(dir, f); err != nil {
			return nil, err
		}
		if err := export.ReadFile(ctx, dir, m.Format, f, func(recs []*export.Record) error { return addAll(b, recs) }); err != nil {
			return nil, err
		}
	}
	return b.Report(), nil
}

// FromLog computes the daily report of [from, to) from the log r: the
// records the bus still keeps (see export.Scan).
func FromLog(ctx context.Context, r bus.Reader, from, to time.Time) (*Daily, error) {
	b := NewBuilder(from, to)
	err := export.Scan(ctx, r, export.Selection{Topics: Topics, From: &from, To: &to}, func(recs []*export.Record) error { return addAll(b, recs) })
	if err != nil {
		return nil, err
	}
	return b.Report(), nil
}

func addAll(b *Builder, recs []*export.Record) error {
	for _, r := range recs {
		if err := b.Add(r.Envelope); err != nil {
			return fmt.Errorf("%s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
	}
	return nil
}

func isReportTopic(t string) bool {
	for _, x := range Topics {
		if x == t {
			return true
		}
	}
	return false
}
