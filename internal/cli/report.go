package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/eventmart/eventmart/internal/export"
	reports "github.com/eventmart/eventmart/internal/report"
)

// reportCmd computes a report in batch:
//
//	eventmart report daily --date YYYY-MM-DD | --from T --to T [--in DIR] [--format table|csv|json]
//
// from exported files (--in) or else from the log. It only reads.
func reportCmd(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("eventmart report", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
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

// progressBar draws an export's or import's progress on stderr: on a
// terminal a bar redrawn in place a few times a second, otherwise a line
// every 10 seconds (a log gets no carriage returns).
type progressBar struct {
	w        io.Writer
	what     string
	tty      bool
	start    time.Time
	last     time.Time
	p        export.Progress
	drawn    bool
	interval time.Duration
}

func newProgressBar(w io.Writer, what string) *progressBar {
	b := &progressBar{w: w, what: what, tty: isTerminal(w), start: time.Now(), interval: 10 * time.Second}
	if b.tty {
		b.interval = 200 * time.Millisecond
	}
	b.last = b.start
	return b
}

func (b *progressBar) update(p export.Progress) {
	b.p = p
	if now := time.Now(); now.Sub(b.last) >= b.interval {
		b.last = now
		b.draw(false)
	}
}

// done draws the final state.
func (b *progressBar) done() {
	if b.p.Total > 0 || b.drawn {
		b.draw(true)
	}
}

func (b *progressBar) draw(final bool) {
	elapsed := time.Since(b.start)
	rate := float64(b.p.Read) / max(elapsed.Seconds(), 1e-3)
	pct := 100.0
	if b.p.Total > 0 {
		pct = 100 * float64(b.p.Read) / float64(b.p.Total)
	}
	eta := "?"
	if rate > 0 {
		eta = time.Duration(float64(b.p.Total-b.p.Read) / rate * float64(time.Second)).Round(time.Second).String()
	}
	line := fmt.Sprintf("%s: read %d/%d records (%.0f%%), %d files, %.0f records/s, ETA %s", b.what, b.p.Read, b.p.Total, pct, b.p.Files, rate, eta)
	if final {
		line = fmt.Sprintf("%s: read %d/%d records, %d files, %.0f records/s in %s", b.what, b.p.Read, b.p.Total, b.p.Files, rate, elapsed.Round(time.Millisecond))
	}
	if !b.tty {
		fmt.Fprintln(b.w, line)
		return
	}
	const width = 30
	filled := int(pct / 100 * width)
	bar := "[" + repeat("#", filled) + repeat(" ", width-filled) + "] "
	end := ""
	if final {
		end = "\n"
	}
	fmt.Fprintf(b.w, "\r\033[K%s%s%s", bar, line, end)
	b.drawn = true
}

func repeat(s string, n int) string { return strings.Repeat(s, max(n, 0)) }

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
