package order

import (
	"testing"
	"time"

	"github.com/eventmart/eventmart/internal/settings"
)

// When a PENDING order's saga timeout starts counting, and whether it has
// run out: from its placing while nothing was decided, from when the
// pipeline went past it once an order placed after it was decided, from
// the pipeline's last decision while it waits its turn, and in either case
// not before the last decision of the orders placed just before it.
func TestTimeoutStart(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	const timeout = 30 * time.Second
	for _, c := range []struct {
		name           string
		placed         time.Time
		f              frontier
		reached, ahead time.Time
		want           time.Time
	}{
		{"nothing decided yet: from its placing", at(0), frontier{}, time.Time{}, time.Time{}, at(0)},
		{"waiting its turn: from the last decision", at(0), frontier{Placed: at(-5), Decided: at(40)}, time.Time{}, at(38), at(40)},
		{"waiting, the pipeline stopped before it was placed", at(0), frontier{Placed: at(-5), Decided: at(-1)}, time.Time{}, at(-1), at(0)},
		{"reached: from when the pipeline went past it", at(0), frontier{Placed: at(20), Decided: at(50)}, at(25), at(3), at(25)},
		{"reached by an order placed with it", at(0), frontier{Placed: at(0), Decided: at(3)}, at(3), time.Time{}, at(3)},
		{"reached, when unknown: from its placing", at(0), frontier{Placed: at(20), Decided: at(50)}, time.Time{}, time.Time{}, at(0)},
		{"reached, its queue lagging: from the last decision ahead of it", at(0), frontier{Placed: at(20), Decided: at(50)}, at(4), at(45), at(45)},
		{"waiting, the orders ahead decided after the frontier's", at(0), frontier{Placed: at(-5), Decided: at(10)}, time.Time{}, at(12), at(12)},
	} {
		got := timeoutStart(c.placed, c.f, c.reached, c.ahead)
		if !got.Equal(c.want) {
			t.Errorf("%s: starts at %s, want %s", c.name, got.Sub(t0), c.want.Sub(t0))
		}
	}
	for _, c := range []struct {
		start, until time.Time
		want         bool
	}{
		{at(0), at(29), false}, {at(0), at(30), true}, {at(0), at(31), true}, {at(40), at(60), false}, {at(40), at(70), true},
	} {
		if got := expired(c.start, timeout, c.until); got != c.want {
			t.Errorf("started %s, by %s: timed out %v, want %v", c.start.Sub(t0), c.until.Sub(t0), got, c.want)
		}
	}
}

// The admission limit: the setting when set (0: none), else ten PENDING
// orders per second of saga timeout.
func TestMaxPending(t *testing.T) {
	for _, c := range []struct {
		env     string
		timeout time.Duration
		want    int
	}{
		{"", 30 * time.Second, 300}, {"", 2 * time.Minute, 1200}, {"", 50 * time.Millisecond, 1}, {"0", 30 * time.Second, 0}, {"64", 30 * time.Second, 64},
	} {
		v, err := settings.Parse(func(name string) string {
			if name == settings.OrderMaxPending.Name {
				return c.env
			}
			return ""
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := maxPending(v, c.timeout); got != c.want {
			t.Errorf("EVENTMART_ORDER_MAX_PENDING=%q, timeout %s: limit %d, want %d", c.env, c.timeout, got, c.want)
		}
	}
}
