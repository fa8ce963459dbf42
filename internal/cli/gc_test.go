package cli

import (
	"runtime/debug"
	"testing"
)

// TestTuneGC: a serving process collects at serverGCPercent unless the
// environment tunes the collector itself.
func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, c := range []struct {
		env  map[string]string
		want int
	}{
		{nil, serverGCPercent},
		{map[string]string{"GOGC": "100"}, 100},
		{map[string]string{"GOMEMLIMIT": "1GiB"}, 100},
	} {
		debug.SetGCPercent(100)
		tuneGC(func(k string) string { return c.env[k] })
		if got := debug.SetGCPercent(100); got != c.want {
			t.Errorf("env %v: GC percent %d, want %d", c.env, got, c.want)
		}
	}
}
