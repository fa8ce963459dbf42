package export

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/eventmart/eventmart/event"
)

// ErrChecksum: a file's content differs from what the manifest recorded.
var ErrChecksum = errors.New("export: checksum mismatch")

// Verify checks that f, in dir, has the size and SHA-256 the manifest
// recorded.
func Verify(dir string, f File) error {
	h, n, err := hashFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if h != f.SHA256 || n != f.Bytes {
		return fmt.Errorf("%w: %s has %d bytes with SHA-256 %s, the manifest says %d bytes with %s", ErrChecksum, f.Path, n, h, f.Bytes, f.SHA256)
	}
	return nil
}

// hashFile returns the hex SHA-256 and the size of the file at path.
func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// ReadFile hands fn the records of f, an exported file in dir of format
// ("parquet" or "jsonl"), in batches in offset order. The records are
// fn's to keep.
func ReadFile(ctx context.Context, dir, format string, f File, fn func([]*Record) error) error {
	path := filepath.Join(dir, filepath.FromSlash(f.Path))
	if format == "jsonl" {
		return readJSONL(ctx, path, fn)
	}
	return readParquet(ctx, path, fn)
}

func readJSONL(ctx context.Context, path string, fn func([]*Record) error) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), 2*event.MaxEnvelopeSize)
	recs := make([]*Record, 0, batchSize)
	for line := 1; sc.Scan(); line++ {
		var l jsonLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("export: %s:%d: %w", path, line, err)
		}
		// As on export, not event.Decode: the file's checksum matched and
		// its envelopes were validated by their producers.
		e := &event.Envelope{Key: l.Key, Partition: l.Partition, Offset: l.Offset}
		if err := decodeEnvelope(l.Envelope, e); err != nil {
			return fmt.Errorf("export: %s:%d: not an event envelope: %w", path, line, err)
		}
		recs = append(recs, &Record{Topic: l.Topic, Partition: l.Partition, Offset: l.Offset, Key: l.Key,
			PublishedAt: l.PublishedAt, Envelope: e, Raw: l.Envelope})
		if len(recs) == batchSize {
			if err := fn(recs); err != nil {
				return err
			}
			recs = make([]*Record, 0, batchSize)
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("export: %s: %w", path, err)
	}
	if len(recs) > 0 {
		return fn(recs)
	}
	return nil
}

func readParquet(ctx context.Context, path string, fn func([]*Record) error) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	pf, err := parquet.OpenFile(fh, st.Size())
	if err != nil {
		return fmt.Errorf("export: %s: %w", path, err)
	}
	col := map[string]int{}
	for _, name := range envelopeColumns {
		c, ok := pf.Schema().Lookup(name)
		if !ok {
			return fmt.Errorf("export: %s: no column %s: not an Eventmart export", path, name)
		}
		col[name] = c.ColumnIndex
	}
	r := parquet.NewReader(pf)
	defer r.Close()
	rows := make([]parquet.Row, 512)
	for {
		n, err := r.ReadRows(rows)
		if n > 0 {
			recs := make([]*Record, n)
			for i, row := range rows[:n] {
				recs[i] = recordOf(row, col)
			}
			if err := fn(recs); err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("export: %s: %w", path, err)
		}
	}
}

// recordOf rebuilds the record a Parquet row of the envelope columns holds.
func recordOf(row parquet.Row, col map[string]int) *Record {
	s := func(name string) string { return string(row[col[name]].ByteArray()) }
	e := &event.Envelope{
		EventID: s("event_id"), EventType: event.Type(s("event_type")), EventVersion: s("event_version"),
		Timestamp: time.UnixMicro(row[col["timestamp"]].Int64()).UTC(), Source: s("source"),
		CorrelationID: s("correlation_id"), CausationID: s("causation_id"),
		Data:     json.RawMessage(s("data")),
		Metadata: event.Metadata{UserID: s("user_id"), SessionID: s("session_id")},
		Key:      s("key"), Partition: row[col["record_partition"]].Int32(), Offset: row[col["record_offset"]].Int64(),
	}
	return &Record{Topic: s("topic"), Partition: e.Partition, Offset: e.Offset, Key: e.Key,
		PublishedAt: time.UnixMilli(row[col["published_at"]].Int64()).UTC(), Envelope: e}
}
