package cli

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventmart/eventmart/audit"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/export"
)

// exportCmd writes topics to files, Parquet or JSON Lines:
//
//	eventmart export --out DIR [--topics T,…] [--from T|OFFSET] [--to T|OFFSET] [--format parquet|jsonl] [--archive]
//
// It only reads the bus: it creates no log nor data directory. Run again
// with the same flags, it resumes an interrupted export.
func exportCmd(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "export")
	for _, s := range runtimeFlags {
		env.Settings.Flag(fs, s)
	}
	clientFlags(fs, env)
	out := fs.String("out", "", "directory to export into (required); holding an interrupted export of the same selection, it resumes it")
	topics := fs.String("topics", "", "comma-separated topics (default: every topic of ADR-0006)")
	from := fs.String("from", "", "first event time (YYYY-MM-DD or RFC 3339, inclusive) or offset of every partition")
	to := fs.String("to", "", "end event time (YYYY-MM-DD or RFC 3339, exclusive) or offset of every partition (exclusive)")
	format := fs.String("format", "parquet", "parquet or jsonl")
	archive := fs.Bool("archive", false, "read what retention deleted from the audit archive of the running Eventmart at --target (needs --admin-email/--admin-password)")
	rowGroupMB := fs.Int("row-group-mb", 16, "Parquet: end a row group at this many MiB (uncompressed); memory grows with it")
	workers := fs.Int("workers", 0, "partitions exported at once (default: the CPUs)")
	gcLimitMB := fs.Int("gc-limit-mb", -1, "collect garbage when the heap reaches this many MiB rather than each time it doubles: less CPU, more memory (default 256 + two row groups per worker; 0: Go's default collector)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("export: unexpected arguments %v", pos)}
	}
	if *out == "" {
		return usageError{"export: --out DIR is required"}
	}
	if *format != "parquet" && *format != "jsonl" {
		return usageError{fmt.Sprintf("export: --format %q: want parquet or jsonl", *format)}
	}
	if *rowGroupMB < 1 {
		return usageError{"export: --row-group-mb must be at least 1"}
	}
	sel, err := parseSelection(*topics, *from, *to)
	if err != nil {
		return err
	}
	cfg := config(env.Settings)
	opts := export.Options{Dir: *out, Format: *format, Selection: sel, RowGroupBytes: int64(*rowGroupMB) << 20, Workers: *workers,
		Warn: func(s string) { fmt.Fprintln(env.Stderr, "warning:", s) }}
	if *archive {
		c := newAdminClient(env, time.Minute)
		if err := c.login(ctx, env); err != nil {
			return err
		}
		opts.Archive = archiveClient{c}
	}
	fmt.Fprintln(env.Stderr, "bus:", busName(cfg))
	b, err := openExistingBus(ctx, cfg)
	if err != nil {
		return err
	}
	defer b.Close()
	bar := newProgressBar(env.Stderr, "export")
	opts.Progress = bar.update
	if limit := int64(*gcLimitMB) << 20; *gcLimitMB != 0 {
		if *gcLimitMB < 0 {
			limit = export.BatchGCLimit(opts.RowGroupBytes, cmp.Or(*workers, runtime.GOMAXPROCS(0)))
		}
		defer export.BatchGC(limit)()
	}
	res, err := export.Export(ctx, b, opts)
	bar.done()
	if err != nil {
		return err
	}
	verb := "exported"
	if res.Resumed {
		verb = "resumed the export:"
	}
	fmt.Fprintf(env.Stdout, "%s %d records in %d files into %s (%d files, %d rows in all, %d read from the audit archive); manifest %s\n",
		verb, res.Written, res.FilesWritten, *out, len(res.Manifest.Files), res.Manifest.Rows(), res.FromArchive, export.ManifestName)
	return nil
}

// parseSelection reads --topics, --from and --to: both bounds times, or
// both offsets.
func parseSelection(topics, from, to string) (export.Selection, error) {
	var sel export.Selection
	for _, t := range strings.FieldsFunc(topics, func(r rune) bool { return r == ',' || r == ' ' }) {
		if _, ok := event.LookupTopic(event.Topic(t)); !ok {
			return sel, usageError{fmt.Sprintf("export: --topics: unknown topic %q (the topics are those of `eventmart topics`)", t)}
		}
		if !slices.Contains(sel.Topics, t) {
			sel.Topics = append(sel.Topics, t)
		}
	}
	if len(sel.Topics) == 0 {
		for _, t := range event.Topics {
			sel.Topics = append(sel.Topics, string(t.Name))
		}
	}
	fromT, fromO, err := parseBound("from", from)
	if err != nil {
		return sel, err
	}
	toT, toO, err := parseBound("to", to)
	if err != nil {
		return sel, err
	}
	if (fromT != nil || toT != nil) && (fromO != nil || toO != nil) {
		return sel, usageError{"export: give --from and --to both as times or both as offsets"}
	}
	if fromT != nil && toT != nil && !toT.After(*fromT) {
		return sel, usageError{fmt.Sprintf("export: --to %s is not after --from %s", to, from)}
	}
	if fromO != nil && toO != nil && *toO <= *fromO {
		return sel, usageError{fmt.Sprintf("export: --to %s is not after --from %s", to, from)}
	}
	sel.From, sel.To, sel.FromOffset, sel.ToOffset = fromT, toT, fromO, toO
	return sel, nil
}

// parseBound reads a time (YYYY-MM-DD, RFC 3339) or an offset.
func parseBound(name, s string) (*time.Time, *int64, error) {
	if s == "" {
		return nil, nil, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return nil, nil, usageError{fmt.Sprintf("--%s %s: an offset is not negative", name, s)}
		}
		return nil, &n, nil
	}
	t, err := parseTime(s)
	if err != nil {
		return nil, nil, usageError{fmt.Sprintf("--%s %q: want a date (YYYY-MM-DD), an RFC 3339 time or an offset", name, s)}
	}
	return &t, nil, nil
}

// parseTime reads YYYY-MM-DD (midnight UTC) or RFC 3339.
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t.UTC(), err
}

// archiveClient reads the audit archive through the admin API.
type archiveClient struct{ c *adminClient }

func (a archiveClient) ArchivePage(ctx context.Context, topic string, p int32, from, to int64, fromTime *time.Time) (audit.ArchivePage, error) {
	q := url.Values{"topic": {topic}, "partition": {strconv.Itoa(int(p))}, "fromOffset": {strconv.FormatInt(from, 10)},
		"toOffset": {strconv.FormatInt(to, 10)}, "limit": {strconv.Itoa(audit.MaxLimit)}}
	if fromTime != nil {
		q.Set("from", fromTime.UTC().Format(time.RFC3339Nano))
	}
	var page audit.ArchivePage
	err := a.c.do(ctx, "GET", "/admin/archive?"+q.Encode(), &page)
	return page, err
}

// importCmd publishes exported files into a bus:
//
//	eventmart import DIR [--dry-run] [--bus …] [--data …]
func importCmd(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "import")
	for _, s := range runtimeFlags {
		env.Settings.Flag(fs, s)
	}
	dry := fs.Bool("dry-run", false, "check the files against the manifest and count their records; publish nothing")
	workers := fs.Int("workers", 0, "source partitions imported at once (default: the CPUs)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"import: want DIR, an export directory (eventmart export --out DIR)"}
	}
	opts := export.ImportOptions{Dir: pos[0], DryRun: *dry, Workers: *workers}
	if _, err := export.ReadManifest(opts.Dir); err != nil {
		return err
	}
	cfg := config(env.Settings)
	var res *export.ImportResult
	bar := newProgressBar(env.Stderr, "import")
	opts.Progress = bar.update
	if *dry {
		res, err = export.Import(ctx, nil, opts)
	} else {
		fmt.Fprintln(env.Stderr, "bus:", busName(cfg))
		b, openErr := openBus(ctx, cfg)
		if openErr != nil {
			return openErr
		}
		defer b.Close()
		want, err := wantTopics(ctx, cfg, b)
		if err != nil {
			return err
		}
		if _, err := b.EnsureTopics(ctx, want); err != nil {
			return err
		}
		res, err = export.Import(ctx, b, opts)
	}
	bar.done()
	if err != nil {
		return err
	}
	verb := "imported"
	if *dry {
		verb = "dry run: would import"
	}
	fmt.Fprintf(env.Stdout, "%s %d records from %d files (checksums verified)\n", verb, res.Records, res.Files)
	printCounts(env, "topic", res.ByTopic)
	printCounts(env, "event type", res.ByType)
	return nil
}

func printCounts(env *Env, what string, m map[string]int64) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(env.Stdout, "  %s %-28s %d\n", what, k, m[k])
	}
}
