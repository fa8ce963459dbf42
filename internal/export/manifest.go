package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/eventmart/eventmart/internal/fsperm"
)

// ManifestName is the manifest's file name in an export directory.
const ManifestName = "manifest.json"

// Manifest describes an export directory: what was selected, how far each
// partition got and every file written, with its offsets, row count and
// SHA-256. It is rewritten (atomically) after every file, so an
// interrupted export resumes where it stopped, and it holds nothing that
// depends on when the export ran, so a re-run writes it byte for byte.
type Manifest struct {
	Version    int              `json:"version"` // 1
	Format     string           `json:"format"`  // parquet or jsonl
	Selection  Selection        `json:"selection"`
	Partitions []PartitionRange `json:"partitions"`
	Files      []File           `json:"files"`
	Complete   bool             `json:"complete"` // every partition reached its end
}

// Selection is what the user asked to export.
type Selection struct {
	Topics     []string   `json:"topics"`
	From       *time.Time `json:"from,omitempty"` // event time, inclusive
	To         *time.Time `json:"to,omitempty"`   // event time, exclusive
	FromOffset *int64     `json:"fromOffset,omitempty"`
	ToOffset   *int64     `json:"toOffset,omitempty"` // exclusive
}

// PartitionRange is the offsets of one partition an export reads: [From,
// End), fixed when the export starts; Next is where it resumes.
type PartitionRange struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	From      int64  `json:"from"`
	End       int64  `json:"end"`
	Next      int64  `json:"next"`
}

// File is one exported file: the records of one topic partition, of one
// hour of event time, with offsets FirstOffset to LastOffset (inclusive).
type File struct {
	Path        string    `json:"path"` // relative to the export directory, with forward slashes
	Topic       string    `json:"topic"`
	Partition   int32     `json:"partition"`
	Hour        time.Time `json:"hour"` // the hour of event time (UTC) of every record in it
	FirstOffset int64     `json:"firstOffset"`
	LastOffset  int64     `json:"lastOffset"`
	Rows        int64     `json:"rows"`
	Bytes       int64     `json:"bytes"`
	SHA256      string    `json:"sha256"` // hex
}

// ErrNoManifest: the directory holds no export.
var ErrNoManifest = errors.New("export: no manifest")

// ReadManifest reads dir's manifest; it wraps ErrNoManifest when there is none.
func ReadManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s", ErrNoManifest, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("export: %s: %w", filepath.Join(dir, ManifestName), err)
	}
	if m.Version != 1 {
		return nil, fmt.Errorf("export: %s: unsupported manifest version %d", filepath.Join(dir, ManifestName), m.Version)
	}
	return &m, nil
}

// write saves m into dir atomically, in a canonical order.
func (m *Manifest) write(dir string) error {
	slices.SortFunc(m.Files, func(a, b File) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.FirstOffset - b.FirstOffset)
	})
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("export: manifest: %w", err)
	}
	tmp := filepath.Join(dir, ManifestName+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), fsperm.File); err != nil {
		return fmt.Errorf("export: manifest: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, ManifestName)); err != nil {
		return fmt.Errorf("export: manifest: %w", err)
	}
	return nil
}

// Rows returns the rows of every file.
func (m *Manifest) Rows() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Rows
	}
	return n
}

// sameSelection reports whether s selects what t does.
func sameSelection(s, t Selection) bool {
	a, _ := json.Marshal(s)
	b, _ := json.Marshal(t)
	return string(a) == string(b)
}
