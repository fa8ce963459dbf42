package export

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/eventmart/eventmart/internal/fsperm"
)

// fileWriter writes one file: to a temporary name, hashing as it goes,
// renamed to its offset-range name by finish.
type fileWriter struct {
	dir, tmp, format string
	file             File
	f                *os.File
	buf              *bufio.Writer
	sum              hash.Hash
	count            *countingWriter

	// Parquet.
	bufs       *buffers
	layout     *topicLayout
	pw         *parquet.Writer
	rows       []parquet.Row
	groupStart int64 // pw.Size() when the row group began
	groupBytes int64

	// JSON Lines.
	line []byte
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// rowBatch is how many rows are handed to the Parquet writer at once.
const rowBatch = 256

// buffers are what one worker reuses from a file to the next instead of
// allocating them again: the output buffer and, per topic, the Parquet
// writer (its column and page buffers) and the rows handed to it. A
// writer reset writes the same bytes as a new one.
type buffers struct {
	buf  *bufio.Writer
	pw   map[string]*parquet.Writer
	rows []parquet.Row
}

func newFileWriter(opts Options, first *Record, hour time.Time, bufs *buffers) (*fileWriter, error) {
	w := &fileWriter{dir: opts.Dir, format: opts.Format, sum: sha256.New(), groupBytes: opts.RowGroupBytes,
		file: File{Topic: first.Topic, Partition: first.Partition, Hour: hour, FirstOffset: first.Offset}}
	dir := filepath.Join(opts.Dir, filepath.FromSlash(fmt.Sprintf("topics/%s/partition=%d", first.Topic, first.Partition)))
	if err := fsperm.MkdirAll(dir); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	w.tmp = filepath.Join(dir, fmt.Sprintf("%s+%d+%010d.%s.tmp", first.Topic, first.Partition, first.Offset, opts.Format))
	f, err := os.OpenFile(w.tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, fsperm.File)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	w.f = f
	w.count = &countingWriter{w: io.MultiWriter(f, w.sum)}
	if bufs.buf == nil {
		bufs.buf = bufio.NewWriterSize(w.count, 256<<10)
	}
	w.buf = bufs.buf
	w.buf.Reset(w.count)
	if opts.Format == "parquet" {
		w.layout = layoutOf(first.Topic)
		if bufs.pw == nil {
			bufs.pw = map[string]*parquet.Writer{}
		}
		if w.pw = bufs.pw[first.Topic]; w.pw == nil {
			w.pw = parquet.NewWriter(w.buf, w.layout.schema, parquet.Compression(codec))
			bufs.pw[first.Topic] = w.pw
		}
		w.pw.Reset(w.buf)
		w.rows = bufs.rows[:0]
		bufs.rows = nil // back when the file is finished
		w.bufs = bufs
	}
	return w, nil
}

// write appends r.
func (w *fileWriter) write(r *Record) error {
	if w.file.Rows == 0 {
		w.file.FirstOffset = r.Offset
	}
	w.file.Rows++
	w.file.LastOffset = r.Offset
	if w.pw == nil {
		return w.writeLine(r)
	}
	n := len(w.rows)
	if n < cap(w.rows) {
		w.rows = w.rows[:n+1]
	} else {
		w.rows = append(w.rows, nil)
	}
	w.rows[n] = w.layout.row(w.rows[n], r)
	if len(w.rows) == rowBatch {
		return w.flushRows()
	}
	return nil
}

// flushRows hands the buffered rows to the Parquet writer and ends the
// row group once it holds RowGroupBytes.
func (w *fileWriter) flushRows() error {
	if len(w.rows) == 0 {
		return nil
	}
	if _, err := w.pw.WriteRows(w.rows); err != nil {
		return fmt.Errorf("export: write %s: %w", w.tmp, err)
	}
	w.rows = w.rows[:0]
	if size := w.pw.Size(); size-w.groupStart >= w.groupBytes {
		if err := w.pw.Flush(); err != nil {
			return fmt.Errorf("export: write %s: %w", w.tmp, err)
		}
		w.groupStart = w.pw.Size()
	}
	return nil
}

// jsonLine is one line of a JSON Lines file: where the record was and its
// envelope, byte for byte as the bus held it.
type jsonLine struct {
	Topic       string          `json:"topic"`
	Partition   int32           `json:"partition"`
	Offset      int64           `json:"offset"`
	Key         string          `json:"key"`
	PublishedAt time.Time       `json:"publishedAt"`
	Envelope    json.RawMessage `json:"envelope"`
}

func (w *fileWriter) writeLine(r *Record) error {
	raw := r.Raw
	if raw == nil {
		var err error
		if raw, err = r.Envelope.Marshal(); err != nil {
			return fmt.Errorf("export: %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
	}
	b, err := json.Marshal(jsonLine{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key,
		PublishedAt: r.PublishedAt.UTC(), Envelope: raw})
	if err != nil {
		return fmt.Errorf("export: %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	w.buf.Write(b)
	_, err = w.buf.Write([]byte{'\n'})
	return err
}

// finish completes the file, syncs it and renames it to its final name.
func (w *fileWriter) finish() (File, error) {
	if w.pw != nil {
		if err := w.flushRows(); err != nil {
			return File{}, err
		}
		if err := w.pw.Close(); err != nil {
			return File{}, fmt.Errorf("export: write %s: %w", w.tmp, err)
		}
		w.bufs.rows = w.rows
	}
	if err := w.buf.Flush(); err != nil {
		return File{}, fmt.Errorf("export: write %s: %w", w.tmp, err)
	}
	if err := w.f.Sync(); err != nil {
		return File{}, fmt.Errorf("export: write %s: %w", w.tmp, err)
	}
	if err := w.f.Close(); err != nil {
		return File{}, fmt.Errorf("export: write %s: %w", w.tmp, err)
	}
	w.file.Path = fileName(w.file.Topic, w.file.Partition, w.file.FirstOffset, w.file.LastOffset, w.format)
	w.file.Bytes = w.count.n
	w.file.SHA256 = hex.EncodeToString(w.sum.Sum(nil))
	if err := os.Rename(w.tmp, filepath.Join(w.dir, filepath.FromSlash(w.file.Path))); err != nil {
		return File{}, fmt.Errorf("export: %w", err)
	}
	return w.file, nil
}

// abort drops the partial file.
func (w *fileWriter) abort() {
	w.f.Close()
	os.Remove(w.tmp)
}
