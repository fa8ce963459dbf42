package analytics

import (
	"context"
	"fmt"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/internal/stream"
	"github.com/eventmart/eventmart/internal/stream/cep"
)

// Backtest says what to run rules over.
type Backtest struct {
	Rules []cep.Rule
	Grace time.Duration // the service's EVENTMART_ANALYTICS_GRACE
	// From is the first record time read on every partition; FromOffset,
	// when From is zero, the first offset (0: the start of the log, or the
	// oldest record retention kept).
	From       time.Time
	FromOffset int64
	// Until is the time every partition is declared idle up to once read
	// to its end, as the live service does with its clock: timeouts due by
	// then fire. Zero: the last record's time (only what the records
	// themselves prove).
	Until time.Time
	// Topics to read; nil: Topics().
	Topics []string
}

// BacktestResult is what a backtest read and detected.
type BacktestResult struct {
	Records    int64
	Late       int64 // records dropped as late (the live service would have too)
	Detections []Detection
}

// readBatch is how many records of a partition a backtest reads at a time.
const readBatch = 1000

// Run runs the rules over the log with the service's engine (NewEngine,
// Record) and returns the detections in the order the engine made them.
// Run from the start of the log, it gives the detections the live
// service made (the same ids); from a later point, the matches whose
// evidence starts there.
func (bt Backtest) Run(ctx context.Context, r bus.Reader) (BacktestResult, error) {
	topics := bt.Topics
	if topics == nil {
		topics = Topics()
	}
	parts, err := Partitions(ctx, r, topics)
	if err != nil {
		return BacktestResult{}, err
	}
	eng, err := NewEngine(parts, bt.Rules, bt.Grace)
	if err != nil {
		return BacktestResult{}, err
	}
	next := map[stream.Partition]int64{}
	for _, t := range topics {
		var offs []bus.PartitionOffsets
		if !bt.From.IsZero() {
			offs, err = r.OffsetAfter(ctx, t, bt.From)
		} else {
			offs, err = r.Offsets(ctx, t)
			for i := range offs {
				offs[i].Start = max(offs[i].Start, bt.FromOffset)
			}
		}
		if err != nil {
			return BacktestResult{}, fmt.Errorf("analytics: backtest: offsets of %s: %w", t, err)
		}
		for _, o := range offs {
			next[stream.Partition{Topic: t, Number: o.Partition}] = o.Start
		}
	}
	var res BacktestResult
	var last int64
	collect := func(out stream.Output) {
		for _, n := range out.Late {
			res.Late += int64(n)
		}
		for _, rs := range out.Results {
			if d, ok := rs.Value.(cep.Detection); ok && rs.Operator == opRules {
				res.Detections = append(res.Detections, newDetection(d, d.At))
			}
		}
	}
	for more := true; more; {
		more = false
		for _, part := range parts {
			msgs, err := r.Read(ctx, part.Topic, part.Number, next[part], readBatch)
			if err != nil {
				return res, fmt.Errorf("analytics: backtest: read %s: %w", part, err)
			}
			if len(msgs) == 0 {
				continue
			}
			more = true
			next[part] = msgs[len(msgs)-1].Offset + 1
			recs := make([]stream.Record, len(msgs))
			for i, m := range msgs {
				recs[i] = Record(m)
				last = max(last, m.Timestamp.UnixNano())
			}
			out, err := eng.Process(recs)
			if err != nil {
				return res, fmt.Errorf("analytics: backtest: %w", err)
			}
			res.Records += int64(len(recs))
			collect(out)
		}
	}
	until := time.Unix(0, last)
	if !bt.Until.IsZero() {
		until = bt.Until
	}
	for _, part := range parts {
		out, err := eng.Idle(part, until)
		if err != nil {
			return res, fmt.Errorf("analytics: backtest: %w", err)
		}
		collect(out)
	}
	return res, nil
}
