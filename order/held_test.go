package order

import (
	"testing"

	"github.com/eventmart/eventmart/internal/watch"
)

// TestKnownRemembersOnlyWhatNoChangeOvertook: an answer is remembered only
// if no change of its order was heard of since the watch taken before its
// read, nor a reset; a change forgets it and wakes the GET held on it.
func TestKnownRemembersOnlyWhatNoChangeOvertook(t *testing.T) {
	trusted := true
	k := known{hub: &watch.Hub{}, trusted: func() bool { return trusted }}
	is := func(want string) func(string) bool { return func(e string) bool { return e == want } }

	ch, release, epoch := k.watch("o1")
	k.changed("o1") // committed between the read and its answer
	k.remember("o1", "u1", `"a"`, false, ch, epoch)
	release()
	if _, _, _, ok := k.hold("o1", is(`"a"`)); ok {
		t.Fatal("an answer overtaken by a change was remembered")
	}

	ch, release, epoch = k.watch("o1")
	k.reset() // changes may have been missed
	k.remember("o1", "u1", `"a"`, false, ch, epoch)
	release()
	if k.size() != 0 {
		t.Fatal("an answer read before a reset was remembered")
	}

	ch, release, epoch = k.watch("o1")
	k.remember("o1", "u1", `"a"`, false, ch, epoch)
	release()
	if _, _, _, ok := k.hold("o1", is(`"b"`)); ok {
		t.Fatal("held on an ETag other than the one remembered")
	}
	e, held, releaseHeld, ok := k.hold("o1", is(`"a"`))
	if !ok || e.owner != "u1" || e.etag != `"a"` || e.final {
		t.Fatalf("hold = %+v %v, want u1 \"a\" not final, true", e, ok)
	}
	defer releaseHeld()
	k.changed("o1")
	select {
	case <-held:
	default:
		t.Fatal("the held GET was not woken by the change")
	}
	if _, _, _, ok := k.hold("o1", is(`"a"`)); ok {
		t.Fatal("a changed order is still known")
	}

	ch, release, epoch = k.watch("o3")
	k.remember("o3", "u1", `"f"`, true, ch, epoch) // a final order
	release()
	if e, _, releaseHeld, ok := k.hold("o3", is(`"f"`)); !ok || !e.final {
		t.Fatalf("hold of a final order = %+v %v, want final", e, ok)
	} else {
		releaseHeld()
	}
	k.changed("o3")

	trusted = false // changes may go unheard: nothing is known
	ch, release, epoch = k.watch("o2")
	k.remember("o2", "u1", `"a"`, false, ch, epoch)
	release()
	if k.size() != 0 {
		t.Fatal("remembered while changes may go unheard")
	}
}

// TestKnownPlacedAwaitsItsOwnCommitOnce: a placed order is remembered
// whether its commit was heard of before placed (SQLite) or is still to be
// (PostgreSQL's NOTIFY, which then forgets nothing); any hearing beyond
// that one is a change that forgets it, or keeps it from being remembered.
func TestKnownPlacedAwaitsItsOwnCommitOnce(t *testing.T) {
	k := known{hub: &watch.Hub{}, trusted: func() bool { return true }}
	is := func(want string) func(string) bool { return func(e string) bool { return e == want } }

	epoch := k.placing("heard") // SQLite: heard at commit
	k.changed("heard")
	k.placed("heard", "u1", `"a"`, epoch)
	if _, _, _, ok := k.hold("heard", is(`"a"`)); !ok {
		t.Fatal("a placed order heard of at commit was not remembered")
	}
	k.changed("heard")
	if _, _, _, ok := k.hold("heard", is(`"a"`)); ok {
		t.Fatal("a change after the placing did not forget it")
	}

	epoch = k.placing("later") // PostgreSQL: the NOTIFY comes after the answer
	k.placed("later", "u1", `"a"`, epoch)
	_, held, release, ok := k.hold("later", is(`"a"`))
	if !ok {
		t.Fatal("a placed order still to be heard of was not remembered")
	}
	k.changed("later") // its own commit
	select {
	case <-held:
		t.Fatal("the placing's own commit woke the held GET")
	default:
	}
	release()
	if _, _, _, ok := k.hold("later", is(`"a"`)); !ok {
		t.Fatal("the placing's own commit forgot the order")
	}
	k.changed("later") // a change
	if _, _, _, ok := k.hold("later", is(`"a"`)); ok {
		t.Fatal("a change after the placing's commit did not forget it")
	}

	epoch = k.placing("overtaken")
	k.changed("overtaken")
	k.changed("overtaken") // a change besides the commit
	k.placed("overtaken", "u1", `"a"`, epoch)
	epoch = k.placing("failed")
	k.placed("failed", "", "", epoch) // nothing committed
	epoch = k.placing("reset")
	k.reset()
	k.placed("reset", "u1", `"a"`, epoch)
	if k.size() != 0 || len(k.newOrders) != 0 {
		t.Fatalf("remembered %d orders, %d placings left, want none", k.size(), len(k.newOrders))
	}
}

// TestKnownHeardRowOnlyOfItsOwnLastChange: the row this instance wrote is
// the order only when the change last heard of is the one that wrote it
// (its token), while every change is heard of, until the next change.
func TestKnownHeardRowOnlyOfItsOwnLastChange(t *testing.T) {
	trusted := true
	k := known{hub: &watch.Hub{}, trusted: func() bool { return trusted }}
	row := func(v string) []any { return []any{"o1", v} }
	has := func(want string) {
		t.Helper()
		r, ok := k.heardRow("o1")
		switch {
		case want == "" && ok:
			t.Fatalf("heard row %v, want none", r)
		case want != "" && (!ok || r[1] != want):
			t.Fatalf("heard row %v (%v), want %q", r, ok, want)
		}
	}
	k.committed("t1", row("mine"))
	k.heard("o1 t0") // another instance's commit, before mine
	has("")
	k.heard("o1 t1")
	has("mine")
	trusted = false // not listening: changes may be missed
	has("")
	trusted = true
	k.heard("o1 t1") // heard again (another flush of the transaction): no longer known as mine
	has("")

	k.committed("t2", row("flushed first"))
	k.committed("t3", row("flushed again")) // the same transaction's later flush, or a later one
	k.heard("o1 t2")
	has("")
	k.heard("o1 t3") // the last row written, heard last
	has("flushed again")

	k.committed("t4", row("mine again"))
	k.heard("o1 t4")
	has("mine again")
	k.heard("o1") // a payload without token (an older instance)
	has("")
	k.committed("t5", row("before a reset"))
	k.reset()
	k.heard("o1 t5")
	has("")
	k.committed("t6", row("changed locally"))
	k.heard("o1 t6")
	k.changed("o1") // told by a commit, not a notification (SQLite, or not listening)
	has("")
}
