package export_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/export"
	"github.com/eventmart/eventmart/internal/export/exporttest"
)

var businessTopics = []string{"order-events", "payment-events", "shipping-events", "inventory-events"}

func run(t *testing.T, b bus.Reader, dir, format string, sel export.Selection) *export.Result {
	t.Helper()
	res, err := export.Export(context.Background(), b, export.Options{Dir: dir, Format: format, Selection: sel, RowGroupBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// readDir returns every file under dir by its relative path.
func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameDirs(t *testing.T, a, b string) {
	t.Helper()
	fa, fb := readDir(t, a), readDir(t, b)
	if len(fa) != len(fb) {
		t.Fatalf("%s has %d files, %s has %d", a, len(fa), b, len(fb))
	}
	for name, content := range fa {
		if !bytes.Equal(content, fb[name]) {
			t.Fatalf("%s differs between %s and %s", name, a, b)
		}
	}
}

// allRecords reads back every file of an export.
func allRecords(t *testing.T, dir string) []*export.Record {
	t.Helper()
	m, err := export.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []*export.Record
	for _, f := range m.Files {
		if err := export.Verify(dir, f); err != nil {
			t.Fatal(err)
		}
		err := export.ReadFile(context.Background(), dir, m.Format, f, func(rs []*export.Record) error {
			out = append(out, rs...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestExportIsByteIdenticalAndReadsBack(t *testing.T) {
	b := exporttest.OpenBus(t)
	n := exporttest.Seed(t, b, 300, 45*time.Second) // 3¾ hours
	for _, format := range []string{"parquet", "jsonl"} {
		t.Run(format, func(t *testing.T) {
			a, c := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "c")
			res := run(t, b, a, format, export.Selection{Topics: businessTopics})
			run(t, b, c, format, export.Selection{Topics: businessTopics})
			sameDirs(t, a, c)
			if got := res.Manifest.Rows(); got != int64(n) || res.Written != int64(n) {
				t.Fatalf("exported %d rows (%d this run), want %d", got, res.Written, n)
			}
			// One file per partition and hour: no file mixes hours.
			hours := map[string]time.Time{}
			for _, f := range res.Manifest.Files {
				if !strings.HasPrefix(f.Path, "topics/"+f.Topic+"/partition=") || !strings.HasSuffix(f.Path, "."+format) {
					t.Fatalf("file %s is not named as Kafka Connect's S3 sink names it", f.Path)
				}
				hours[f.Path] = f.Hour
			}
			recs := allRecords(t, a)
			if len(recs) != n {
				t.Fatalf("read back %d records, want %d", len(recs), n)
			}
			// Every record read back equals the one on the bus.
			byID := map[string]*export.Record{}
			for _, r := range recs {
				byID[r.Envelope.EventID] = r
			}
			for _, topic := range businessTopics {
				offs, _ := b.Offsets(context.Background(), topic)
				for _, o := range offs {
					msgs, err := b.Read(context.Background(), topic, o.Partition, 0, 100000)
					if err != nil {
						t.Fatal(err)
					}
					for _, m := range msgs {
						want, _ := eventmsg.Decode(m)
						got := byID[want.EventID]
						if got == nil {
							t.Fatalf("%s/%d@%d missing from the export", topic, o.Partition, m.Offset)
						}
						if got.Offset != m.Offset || got.Partition != m.Partition || got.Key != string(m.Key) || got.Topic != topic ||
							!got.PublishedAt.Equal(m.Timestamp) || !got.Envelope.Timestamp.Equal(want.Timestamp) ||
							string(got.Envelope.Data) != string(want.Data) || got.Envelope.CausationID != want.CausationID ||
							got.Envelope.Metadata != want.Metadata || got.Envelope.EventType != want.EventType || got.Envelope.Source != want.Source {
							t.Fatalf("%s/%d@%d read back as %+v, want %+v", topic, o.Partition, m.Offset, got.Envelope, want)
						}
					}
				}
			}
		})
	}
}

func TestExportResumesAfterAnInterruption(t *testing.T) {
	b := exporttest.OpenBus(t)
	exporttest.Seed(t, b, 200, time.Minute)
	sel := export.Selection{Topics: businessTopics}
	whole := filepath.Join(t.TempDir(), "whole")
	run(t, b, whole, "parquet", sel)

	dir := filepath.Join(t.TempDir(), "resumed")
	ctx, cancel := context.WithCancel(context.Background())
	_, err := export.Export(ctx, b, export.Options{Dir: dir, Selection: sel, RowGroupBytes: 64 << 10, Workers: 1,
		Progress: func(p export.Progress) {
			if p.Files >= 3 {
				cancel()
			}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted export: %v, want context.Canceled", err)
	}
	m, err := export.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Complete || len(m.Files) < 3 {
		t.Fatalf("the interrupted export's manifest says complete=%v with %d files", m.Complete, len(m.Files))
	}
	// A crash mid-file leaves a partial file: the resumed export drops it.
	partial := filepath.Join(dir, "topics", "order-events", "partition=0", "order-events+0+0000000099.parquet.tmp")
	os.MkdirAll(filepath.Dir(partial), 0o755)
	os.WriteFile(partial, []byte("partial"), 0o644)

	res, err := export.Export(context.Background(), b, export.Options{Dir: dir, Selection: sel, RowGroupBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.FilesWritten >= len(res.Manifest.Files) {
		t.Fatalf("resumed=%v, wrote %d of %d files: it did not resume", res.Resumed, res.FilesWritten, len(res.Manifest.Files))
	}
	sameDirs(t, whole, dir)

	// A different selection into the same directory is refused.
	_, err = export.Export(context.Background(), b, export.Options{Dir: dir, Selection: export.Selection{Topics: []string{"order-events"}}})
	if !errors.Is(err, export.ErrSelectionMismatch) {
		t.Fatalf("another selection into the directory: %v, want ErrSelectionMismatch", err)
	}
}

func TestExportSelectsByEventTimeAndOffset(t *testing.T) {
	b := exporttest.OpenBus(t)
	exporttest.Seed(t, b, 240, time.Minute) // 22:00 to 02:00
	from, to := exporttest.Start.Add(time.Hour), exporttest.Start.Add(2*time.Hour)
	dir := filepath.Join(t.TempDir(), "x")
	run(t, b, dir, "parquet", export.Selection{Topics: []string{"order-events"}, From: &from, To: &to})
	recs := allRecords(t, dir)
	created := 0
	for _, r := range recs {
		ts := r.Envelope.Timestamp
		if ts.Before(from) || !ts.Before(to) {
			t.Fatalf("record at %v outside [%v, %v)", ts, from, to)
		}
		if r.Envelope.EventType == event.Type("OrderCreated") {
			created++
		}
	}
	if created != 60 {
		t.Fatalf("%d orders created in the hour, want 60", created)
	}

	fromOff, toOff := int64(2), int64(5)
	dir = filepath.Join(t.TempDir(), "y")
	run(t, b, dir, "jsonl", export.Selection{Topics: []string{"payment-events"}, FromOffset: &fromOff, ToOffset: &toOff})
	recs = allRecords(t, dir)
	offs, _ := b.Offsets(context.Background(), "payment-events")
	want := 0
	for _, o := range offs {
		want += int(max(0, min(o.End, toOff)-fromOff))
	}
	if len(recs) != want {
		t.Fatalf("%d records of offsets [2, 5), want %d", len(recs), want)
	}
	for _, r := range recs {
		if r.Offset < 2 || r.Offset >= 5 {
			t.Fatalf("offset %d outside [2, 5)", r.Offset)
		}
	}
}

func TestVerifyDetectsAChangedFile(t *testing.T) {
	b := exporttest.OpenBus(t)
	exporttest.Seed(t, b, 20, time.Minute)
	dir := t.TempDir()
	res := run(t, b, dir, "parquet", export.Selection{Topics: []string{"order-events"}})
	f := res.Manifest.Files[0]
	path := filepath.Join(dir, filepath.FromSlash(f.Path))
	content, _ := os.ReadFile(path)
	content[len(content)/2] ^= 0xff
	os.WriteFile(path, content, 0o644)
	if err := export.Verify(dir, f); !errors.Is(err, export.ErrChecksum) {
		t.Fatalf("Verify of a changed file: %v, want ErrChecksum", err)
	}
}
