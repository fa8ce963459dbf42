// Package export writes a bus's records to files, Parquet or JSON Lines,
// the way Kafka Connect's S3 sink does: one file per topic, partition and
// hour of event time, named by topic, partition and offset range,
//
//	DIR/topics/<topic>/partition=<p>/<topic>+<p>+<firstOffset>-<lastOffset>.parquet
//
// with a manifest (manifest.json) listing every file with its offsets, row
// count and SHA-256. Files are written to a temporary name and renamed when
// complete, and the manifest records each, so an interrupted export
// resumes after the last complete file; the files depend only on the
// records, so a re-run writes them byte for byte. It reads them back too,
// for import and reports (read.go).
package export

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/eventmart/eventmart/audit"
	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/fsperm"
)

// Record is one record of a topic with its envelope decoded.
type Record struct {
	Topic       string
	Partition   int32
	Offset      int64
	Key         string
	PublishedAt time.Time // when the bus stored it (ms); the event time for archived records
	Envelope    *event.Envelope
	// Raw is the envelope's JSON as the bus holds it, when known (read
	// from the bus, the archive or a JSON Lines file); nil from Parquet.
	Raw []byte
}

// Archive reads what retention deleted from a topic: the audit service's
// archive (GET /admin/archive), one page of [from, to) of a partition.
type Archive interface {
	ArchivePage(ctx context.Context, topic string, partition int32, from, to int64, fromTime *time.Time) (audit.ArchivePage, error)
}

// Options configure Export.
type Options struct {
	Dir       string // the export directory; created if missing
	Format    string // "parquet" (default) or "jsonl"
	Selection Selection
	// RowGroupBytes bounds the uncompressed size of a Parquet row group:
	// the writer buffers one per file being written (one per worker), so
	// it bounds memory. Default 16 MiB.
	RowGroupBytes int64
	Workers       int     // partitions exported at once; default GOMAXPROCS
	Archive       Archive // nil: records retention deleted are not exported (Warn says so)
	// Progress, if set, is called (never concurrently) as records are read.
	Progress func(Progress)
	// Warn, if set, is told what the export leaves out and why (never
	// concurrently).
	Warn func(string)
}

// Progress is how far an export got.
type Progress struct {
	Read, Total int64 // records read of the selected offset ranges
	Files       int   // files written so far, by this run and before
}

// Result is what an export did.
type Result struct {
	Manifest     *Manifest
	Read         int64 // records read by this run
	Written      int64 // rows written by this run
	FilesWritten int   // files written by this run
	FromArchive  int64 // records read from the audit archive
	Resumed      bool  // the export continued an interrupted one
}

// timeSlack widens the offsets searched for an event-time range: the bus
// finds offsets by the time it stored a record, which trails the event's
// time (by the outbox's delay, or much more for imported records) and
// never leads it by more than the clocks of two hosts differ. So a
// time-bounded export starts at the first record stored an hour before
// From and reads to the end of the log, keeping the records whose event
// time is in [From, To).
const timeSlack = time.Hour

// batchSize is how many records are read from the bus at once.
const batchSize = 1000

// ErrSelectionMismatch: the directory holds an export of another selection
// or format.
var ErrSelectionMismatch = errors.New("export: the directory holds another export")

// Export exports the records opts select from r into opts.Dir, or resumes
// the export the directory's manifest describes.
func Export(ctx context.Context, r bus.Reader, opts Options) (*Result, error) {
	if opts.Format == "" {
		opts.Format = "parquet"
	}
	if opts.Format != "parquet" && opts.Format != "jsonl" {
		return nil, fmt.Errorf("export: unknown format %q (want parquet or jsonl)", opts.Format)
	}
	if opts.RowGroupBytes <= 0 {
		opts.RowGroupBytes = 16 << 20
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Warn == nil {
		opts.Warn = func(string) {}
	}
	var warnMu sync.Mutex // workers warn concurrently
	warn := opts.Warn
	opts.Warn = func(s string) {
		warnMu.Lock()
		defer warnMu.Unlock()
		warn(s)
	}
	res := &Result{}
	m, err := ReadManifest(opts.Dir)
	switch {
	case err == nil:
		if m.Format != opts.Format || !sameSelection(m.Selection, opts.Selection) {
			return nil, fmt.Errorf("%w (%s of %v); export into a new directory, or repeat the same selection to resume it", ErrSelectionMismatch, m.Format, m.Selection.Topics)
		}
		res.Resumed = true
	case errors.Is(err, ErrNoManifest):
		m = &Manifest{Version: 1, Format: opts.Format, Selection: opts.Selection, Files: []File{}}
		if m.Partitions, err = plan(ctx, r, opts); err != nil {
			return nil, err
		}
		if err := fsperm.MkdirAll(opts.Dir); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
	default:
		return nil, err
	}
	res.Manifest = m
	if err := removeTemporary(opts.Dir); err != nil {
		return nil, err
	}
	if err := m.write(opts.Dir); err != nil {
		return nil, err
	}
	x := &exporter{r: r, opts: opts, m: m, res: res}
	for _, p := range m.Partitions {
		x.progress.Total += p.End - p.Next
	}
	x.progress.Files = len(m.Files)
	work := make(chan int)
	errs := make(chan error, opts.Workers)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range opts.Workers {
		wg.Go(func() {
			bufs := &buffers{}
			for i := range work {
				if err := x.partition(ctx, i, bufs); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		})
	}
feed:
	for i, p := range m.Partitions {
		if p.Next >= p.End {
			continue
		}
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	if opts.Progress != nil {
		opts.Progress(x.progress)
	}
	if err := <-errs; err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("export: interrupted; run it again to resume: %w", err)
	}
	m.Complete = true
	return res, m.write(opts.Dir)
}

// plan fixes the offset range of every selected partition.
func plan(ctx context.Context, r bus.Reader, opts Options) ([]PartitionRange, error) {
	s := opts.Selection
	var out []PartitionRange
	for _, topic := range s.Topics {
		offs, err := r.Offsets(ctx, topic)
		if err != nil {
			return nil, fmt.Errorf("export: %s: %w", topic, err)
		}
		from, end := make([]int64, len(offs)), make([]int64, len(offs))
		for i, o := range offs {
			from[i], end[i] = 0, o.End
		}
		if s.From != nil {
			after, err := r.OffsetAfter(ctx, topic, s.From.Add(-timeSlack))
			if err != nil {
				return nil, fmt.Errorf("export: %s: %w", topic, err)
			}
			for i, a := range after {
				if a.Start > offs[i].Start {
					from[i] = a.Start
				} // else the first record kept was stored after From: what retention deleted may be as late as From

			}
		}
		// To bounds nothing: a record stored long after its event time (an
		// import, an outbox backlog) may still belong before To.
		for i, o := range offs {
			if s.FromOffset != nil {
				from[i] = max(from[i], *s.FromOffset)
			}
			if s.ToOffset != nil {
				end[i] = min(end[i], *s.ToOffset)
			}
			if from[i] < o.Start && opts.Archive == nil {
				if from[i] < end[i] && (s.FromOffset != nil || s.From != nil || o.Start > 0) {
					opts.Warn(fmt.Sprintf("%s/%d: offsets %d to %d, deleted by retention, may hold records of the selection and are not exported (--archive reads them from the audit archive of a running Eventmart)",
						topic, o.Partition, from[i], min(o.Start, end[i])-1))
				}
				from[i] = o.Start
			}
			end[i] = max(end[i], from[i])
			out = append(out, PartitionRange{Topic: topic, Partition: o.Partition, From: from[i], End: end[i], Next: from[i]})
		}
	}
	return out, nil
}

// removeTemporary deletes the partial files an interrupted export left.
func removeTemporary(dir string) error {
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".tmp") {
			return os.Remove(path)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

type exporter struct {
	r    bus.Reader
	opts Options

	mu       sync.Mutex // guards m, res, progress
	m        *Manifest
	res      *Result
	progress Progress
}

// partition exports partition range i of the manifest from its Next
// offset to its End, rotating files on each change of the hour of event
// time.
func (x *exporter) partition(ctx context.Context, i int, bufs *buffers) error {
	x.mu.Lock()
	pr := x.m.Partitions[i]
	x.mu.Unlock()
	s := x.opts.Selection
	var w *fileWriter
	defer func() {
		if w != nil {
			w.abort()
		}
	}()
	err := x.read(ctx, pr, func(recs []*Record) error {
		for _, rec := range recs {
			ts := rec.Envelope.Timestamp
			if (s.From != nil && ts.Before(*s.From)) || (s.To != nil && !ts.Before(*s.To)) {
				continue
			}
			hour := ts.UTC().Truncate(time.Hour)
			if w != nil && !hour.Equal(w.file.Hour) {
				if err := x.commit(i, w, rec.Offset); err != nil {
					return err
				}
				w = nil
			}
			if w == nil {
				var err error
				if w, err = newFileWriter(x.opts, rec, hour, bufs); err != nil {
					return err
				}
			}
			if err := w.write(rec); err != nil {
				return err
			}
		}
		x.mu.Lock()
		x.progress.Read += int64(len(recs))
		x.res.Read += int64(len(recs))
		if x.opts.Progress != nil {
			x.opts.Progress(x.progress)
		}
		x.mu.Unlock()
		return ctx.Err()
	})
	if err != nil {
		return err
	}
	if w != nil {
		err = x.commit(i, w, pr.End)
		w = nil
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.m.Partitions[i].Next = pr.End
	return x.m.write(x.opts.Dir)
}

// commit completes w's file, records it in the manifest and moves
// partition i's resume point to next.
func (x *exporter) commit(i int, w *fileWriter, next int64) error {
	f, err := w.finish()
	if err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.m.Files = slices.DeleteFunc(x.m.Files, func(g File) bool { return g.Path == f.Path })
	x.m.Files = append(x.m.Files, f)
	x.m.Partitions[i].Next = next
	x.res.FilesWritten++
	x.res.Written += f.Rows
	x.progress.Files++
	return x.m.write(x.opts.Dir)
}

// read hands fn the records of pr from pr.Next to pr.End, batch by batch
// in offset order: those retention deleted from the archive, then the
// bus's own.
func (x *exporter) read(ctx context.Context, pr PartitionRange, fn func([]*Record) error) error {
	from := pr.Next
	offs, err := x.r.Offsets(ctx, pr.Topic)
	if err != nil {
		return fmt.Errorf("export: %s: %w", pr.Topic, err)
	}
	start := int64(0)
	for _, o := range offs {
		if o.Partition == pr.Partition {
			start = o.Start
		}
	}
	if from < start {
		if x.opts.Archive == nil {
			x.opts.Warn(fmt.Sprintf("%s/%d: offsets %d to %d were deleted by retention since the export started; they are not exported", pr.Topic, pr.Partition, from, start-1))
		} else if err := x.readArchive(ctx, pr, from, min(start, pr.End), fn); err != nil {
			return err
		}
		from = start
	}
	for from < pr.End {
		msgs, err := x.r.Read(ctx, pr.Topic, pr.Partition, from, min(batchSize, int(pr.End-from)))
		if err != nil {
			return fmt.Errorf("export: read %s/%d@%d: %w", pr.Topic, pr.Partition, from, err)
		}
		if len(msgs) == 0 {
			return nil
		}
		// The batch's records and envelopes are allocated at once: three
		// allocations a batch instead of two a record.
		recs := make([]*Record, 0, len(msgs))
		slab := make([]Record, len(msgs))
		envs := make([]event.Envelope, len(msgs))
		for i, m := range msgs {
			if m.Offset >= pr.End {
				break
			}
			// Not event.Decode: the producer validated the envelope and its
			// payload against the schema before publishing it, and
			// validating it again would cost most of the export's time.
			key := string(m.Key)
			e := &envs[i]
			e.Key, e.Partition, e.Offset = key, m.Partition, m.Offset
			if err := decodeEnvelope(m.Value, e); err != nil {
				x.opts.Warn(fmt.Sprintf("%s/%d@%d: not an event envelope, left out: %v", m.Topic, m.Partition, m.Offset, err))
				continue
			}
			slab[i] = Record{Topic: pr.Topic, Partition: m.Partition, Offset: m.Offset, Key: key,
				PublishedAt: m.Timestamp, Envelope: e, Raw: m.Value}
			recs = append(recs, &slab[i])
		}
		from = msgs[len(msgs)-1].Offset + 1
		if err := fn(recs); err != nil {
			return err
		}
	}
	return nil
}

// readArchive reads [from, to) of pr's partition from the audit archive.
func (x *exporter) readArchive(ctx context.Context, pr PartitionRange, from, to int64, fn func([]*Record) error) error {
	for from >= 0 && from < to {
		page, err := x.opts.Archive.ArchivePage(ctx, pr.Topic, pr.Partition, from, to, x.opts.Selection.From)
		if err != nil {
			return fmt.Errorf("export: read %s/%d from the audit archive (offsets %d to %d are past the topic's retention): %w", pr.Topic, pr.Partition, from, to, err)
		}
		recs := make([]*Record, 0, len(page.Records))
		for _, ar := range page.Records {
			e, err := event.Decode(ar.Envelope)
			if err != nil {
				return fmt.Errorf("export: archived record %s/%d@%d: %w", ar.Topic, ar.Partition, ar.Offset, err)
			}
			e.Key, e.Partition, e.Offset = ar.Key, ar.Partition, ar.Offset
			recs = append(recs, &Record{Topic: pr.Topic, Partition: ar.Partition, Offset: ar.Offset, Key: ar.Key,
				PublishedAt: e.Timestamp.Truncate(time.Millisecond), Envelope: e, Raw: ar.Envelope})
		}
		x.mu.Lock()
		x.res.FromArchive += int64(len(recs))
		x.mu.Unlock()
		if len(recs) > 0 {
			if err := fn(recs); err != nil {
				return err
			}
		}
		from = page.Next
	}
	return nil
}

// fileName is the name of the file of topic's partition p holding offsets
// first to last: Kafka Connect's <topic>+<partition>+<startOffset>, with
// the last offset, zero-padded so names sort by offset.
func fileName(topic string, p int32, first, last int64, format string) string {
	return fmt.Sprintf("topics/%s/partition=%d/%s+%d+%010d-%010d.%s", topic, p, topic, p, first, last, format)
}

// Scan hands fn, batch by batch, the records sel selects from r (those the
// bus still keeps: it reads no archive), in offset order per partition,
// partition after partition. It writes nothing.
func Scan(ctx context.Context, r bus.Reader, sel Selection, fn func([]*Record) error) error {
	ranges, err := plan(ctx, r, Options{Selection: sel, Warn: func(string) {}})
	if err != nil {
		return err
	}
	x := &exporter{r: r, opts: Options{Selection: sel, Warn: func(string) {}}, res: &Result{}}
	for _, pr := range ranges {
		err := x.read(ctx, pr, func(recs []*Record) error {
			kept := recs[:0]
			for _, rec := range recs {
				ts := rec.Envelope.Timestamp
				if (sel.From == nil || !ts.Before(*sel.From)) && (sel.To == nil || ts.Before(*sel.To)) {
					kept = append(kept, rec)
				}
			}
			return fn(kept)
		})
		if err != nil {
			return err
		}
	}
	return nil
}
