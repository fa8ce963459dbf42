package apptest

import (
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus/embedded"
)

// ShiftedLog returns an embedded log whose clock reads base() plus the
// duration stored in shift (nanoseconds), and which applies retention only
// when asked: tests of what lies beyond retention move the clock past a
// topic's retention instead of waiting for it. Run services on it with
// OnBus, which closes it at the end.
func ShiftedLog(t testing.TB, base func() time.Time) (b *embedded.Bus, shift *atomic.Int64) {
	t.Helper()
	shift = new(atomic.Int64)
	b, err := embedded.Open(filepath.Join(t.TempDir(), "eventlog.db"),
		embedded.Clock(func() time.Time { return base().Add(time.Duration(shift.Load())) }), embedded.CheckRetentionEvery(0))
	if err != nil {
		t.Fatal(err)
	}
	return b, shift
}
