package export

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event/eventmsg"
)

// ImportOptions configure Import.
type ImportOptions struct {
	Dir     string // an export directory
	DryRun  bool   // verify and count; publish nothing
	Workers int    // source partitions imported at once; default GOMAXPROCS
	// Progress, if set, is called (never concurrently) as records are read.
	Progress func(Progress)
}

// ImportResult counts what an import read (and published, unless a dry run).
type ImportResult struct {
	Files   int
	Records int64
	ByTopic map[string]int64
	ByType  map[string]int64
}

// publishBatch is how many records Import publishes at once.
const publishBatch = 2000

// Import publishes the records of the export in opts.Dir to p (nil for a
// dry run): every file is checked against the manifest's SHA-256 first,
// then each source partition's files are published in offset order, with
// their original keys and envelopes (event ids included). A key maps to
// the same partition on every bus with the topic's partition count, so the
// records of a key keep their order; consumers skip event ids they
// processed before, so importing twice changes nothing.
func Import(ctx context.Context, p bus.Publisher, opts ImportOptions) (*ImportResult, error) {
	m, err := ReadManifest(opts.Dir)
	if err != nil {
		return nil, err
	}
	for _, f := range m.Files {
		if err := Verify(opts.Dir, f); err != nil {
			return nil, err
		}
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	res := &ImportResult{Files: len(m.Files), ByTopic: map[string]int64{}, ByType: map[string]int64{}}
	// Group the files by source partition, in offset order.
	type part struct {
		topic string
		p     int32
	}
	groups := map[part][]File{}
	var order []part
	for _, f := range m.Files {
		k := part{f.Topic, f.Partition}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], f)
	}
	var mu sync.Mutex
	progress := Progress{Total: m.Rows(), Files: len(m.Files)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan []File)
	errs := make(chan error, opts.Workers)
	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Go(func() {
			for files := range work {
				if err := importFiles(ctx, p, opts, m.Format, files, func(recs []*Record) {
					mu.Lock()
					defer mu.Unlock()
					for _, r := range recs {
						res.ByTopic[r.Topic]++
						res.ByType[string(r.Envelope.EventType)]++
					}
					res.Records += int64(len(recs))
					progress.Read += int64(len(recs))
					if opts.Progress != nil {
						opts.Progress(progress)
					}
				}); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		})
	}
feed:
	for _, k := range order {
		files := groups[k]
		slices.SortFunc(files, func(a, b File) int { return int(a.FirstOffset - b.FirstOffset) })
		select {
		case work <- files:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return res, err
	}
	return res, ctx.Err()
}

// importFiles publishes the records of files, one source partition's, in order.
func importFiles(ctx context.Context, p bus.Publisher, opts ImportOptions, format string, files []File, done func([]*Record)) error {
	for _, f := range files {
		err := ReadFile(ctx, opts.Dir, format, f, func(recs []*Record) error {
			if !opts.DryRun {
				for batch := range slices.Chunk(recs, publishBatch) {
					msgs := make([]*bus.Message, len(batch))
					for i, r := range batch {
						r.Envelope.Key = r.Key
						m, err := eventmsg.Encode(ctx, r.Envelope)
						if err != nil {
							return fmt.Errorf("import: %s %s/%d@%d: %w", f.Path, r.Topic, r.Partition, r.Offset, err)
						}
						m.Topic = r.Topic
						msgs[i] = m
					}
					if err := p.Publish(ctx, msgs...); err != nil {
						return fmt.Errorf("import: publish %s: %w", f.Path, err)
					}
				}
			}
			done(recs)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
