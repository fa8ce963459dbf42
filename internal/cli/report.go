package cli

import (
	"context"
	"fmt"
	"slices"
	"time"

	reports "github.com/eventmart/eventmart/internal/report"
)

// reportCmd computes a report in batch:
//
//	eventmart report daily --date YYYY-MM-DD | --from T --to T [--in DIR] [--format table|csv|json]
//
// from exported files (--in) or else from the log. It only reads.
func reportCmd(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "report")
	for _, s := range runtimeFlags {
		env.Settings.Flag(fs, s)
	}
	date := fs.String("date", "", "the day (YYYY-MM-DD, UTC)")
	from := fs.String("from", "", "or from this event time (YYYY-MM-DD or RFC 3339, inclusive)")
	to := fs.String("to", "", "to this event time (exclusive)")
	in := fs.String("in", "", "read the files of this export directory (eventmart export --out DIR) instead of the log")
	format := fs.String("format", "table", "table, csv or json")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "daily" {
		return usageError{"report: want daily --date YYYY-MM-DD (or --from T --to T)"}
	}
	if !slices.Contains(reports.Formats, *format) {
		return usageError{fmt.Sprintf("report: --format %q: want table, csv or json", *format)}
	}
	var start, end time.Time
	switch {
	case *date != "" && *from == "" && *to == "":
		if start, err = time.Parse(time.DateOnly, *date); err != nil {
			return usageError{fmt.Sprintf("report: --date %q: want YYYY-MM-DD", *date)}
		}
		end = start.AddDate(0, 0, 1)
	case *date == "" && *from != "" && *to != "":
		if start, err = parseTime(*from); err != nil {
			return usageError{fmt.Sprintf("report: --from %q: want YYYY-MM-DD or an RFC 3339 time", *from)}
		}
		if end, err = parseTime(*to); err != nil {
			return usageError{fmt.Sprintf("report: --to %q: want YYYY-MM-DD or an RFC 3339 time", *to)}
		}
		if !end.After(start) {
			return usageError{fmt.Sprintf("report: --to %s is not after --from %s", *to, *from)}
		}
	default:
		return usageError{"report: give --date, or --from and --to"}
	}
	var d *reports.Daily
	if *in != "" {
		fmt.Fprintln(env.Stderr, "export:", *in)
		d, err = reports.FromExport(ctx, *in, start, end)
	} else {
		cfg := config(env.Settings)
		fmt.Fprintln(env.Stderr, "bus:", busName(cfg))
		b, openErr := openExistingBus(ctx, cfg)
		if openErr != nil {
			return openErr
		}
		defer b.Close()
		d, err = reports.FromLog(ctx, b, start, end)
	}
	if err != nil {
		return err
	}
	return reports.Write(env.Stdout, d, *format)
}
