package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/eventmart/eventmart/internal/export"
)

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
