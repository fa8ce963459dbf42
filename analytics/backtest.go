package analytics

import (
	"context"
	"fmt"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/export"
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
	// Archive, if set, is read for the offsets of the range that retention
	// deleted from the log (the audit archive, export's reader); nil:
	// those are skipped and Warn says so.
	Archive export.Archive
	Warn    func(string) // nil: no warnings
}

// BacktestResult is what a backtest read and detected.
type BacktestResult struct {
	Records    int64
	Late       int64 // records dropped as late (the live service would have too)
	Detections []Detection

	FromArchive int64 // of Records, those read from the audit archive
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
	// archived: per partition, the offsets [from, to) retention deleted
	// that the range holds, read from the archive before the log.
	archived := map[stream.Partition][2]int64{}
	for _, t := range topics {
		offs, err := r.Offsets(ctx, t)
		if err != nil {
			return BacktestResult{}, fmt.Errorf("analytics: backtest: offsets of %s: %w", t, err)
		}
		var after []bus.PartitionOffsets
		if !bt.From.IsZero() {
			if after, err = r.OffsetAfter(ctx, t, bt.From); err != nil {
				return BacktestResult{}, fmt.Errorf("analytics: backtest: offsets of %s: %w", t, err)
			}
		}
		for i, o := range offs {
			part := stream.Partition{Topic: t, Number: o.Partition}
			from := bt.FromOffset
			if after != nil {
				// The first record kept is after From: what retention
				// deleted may be as late as From (else nothing of it is).
				from = o.Start
				if after[i].Start > o.Start {
					from = after[i].Start
				} else if o.Start > 0 {
					from = 0
				}
			}
			next[part] = max(from, o.Start)
			if from >= o.Start {
				continue
			}
			if bt.Archive != nil {
				archived[part] = [2]int64{from, o.Start}
			} else if bt.Warn != nil {
				bt.Warn(fmt.Sprintf("%s: offsets %d to %d, deleted by retention, may hold records of the backtest and are not read (--archive reads them from the audit archive of a running Eventmart)",
					part, from, o.Start-1))
			}
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
			var msgs []*bus.Message
			if a, ok := archived[part]; ok {
				more = true
				if msgs, a[0], err = bt.readArchive(ctx, part, a[0], a[1]); err != nil {
					return res, err
				}
				if a[0] < 0 || a[0] >= a[1] {
					delete(archived, part)
				} else {
					archived[part] = a
				}
				res.FromArchive += int64(len(msgs))
			} else if msgs, err = r.Read(ctx, part.Topic, part.Number, next[part], readBatch); err != nil {
				return res, fmt.Errorf("analytics: backtest: read %s: %w", part, err)
			} else if len(msgs) > 0 {
				next[part] = msgs[len(msgs)-1].Offset + 1
			}
			if len(msgs) == 0 {
				continue
			}
			more = true
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

// readArchive reads one page of part's offsets [from, to) from the audit
// archive, rebuilt into the messages they were, and returns the offset of
// the next page (-1: none). An archived record's time is its event time
// (ms): the archive does not keep the log time the live service used.
func (bt Backtest) readArchive(ctx context.Context, part stream.Partition, from, to int64) ([]*bus.Message, int64, error) {
	var fromTime *time.Time
	if !bt.From.IsZero() {
		fromTime = &bt.From
	}
	page, err := bt.Archive.ArchivePage(ctx, part.Topic, part.Number, from, to, fromTime)
	if err != nil {
		return nil, -1, fmt.Errorf("analytics: backtest: read %s from the audit archive (offsets %d to %d are past the topic's retention): %w", part, from, to, err)
	}
	msgs := make([]*bus.Message, 0, len(page.Records))
	for _, ar := range page.Records {
		e, err := event.Decode(ar.Envelope)
		if err != nil {
			return nil, -1, fmt.Errorf("analytics: backtest: archived record %s@%d: %w", part, ar.Offset, err)
		}
		e.Key = ar.Key
		m, err := eventmsg.Encode(ctx, e)
		if err != nil {
			return nil, -1, fmt.Errorf("analytics: backtest: archived record %s@%d: %w", part, ar.Offset, err)
		}
		m.Topic, m.Partition, m.Offset, m.Timestamp = part.Topic, part.Number, ar.Offset, e.Timestamp.Truncate(time.Millisecond)
		msgs = append(msgs, m)
	}
	return msgs, page.Next, nil
}
