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
	k.remember("o1", "u1", `"a"`, ch, epoch)
	release()
	if _, _, _, _, ok := k.hold("o1", is(`"a"`)); ok {
		t.Fatal("an answer overtaken by a change was remembered")
	}

	ch, release, epoch = k.watch("o1")
	k.reset() // changes may have been missed
	k.remember("o1", "u1", `"a"`, ch, epoch)
	release()
	if k.size() != 0 {
		t.Fatal("an answer read before a reset was remembered")
	}

	ch, release, epoch = k.watch("o1")
	k.remember("o1", "u1", `"a"`, ch, epoch)
	release()
	if _, _, _, _, ok := k.hold("o1", is(`"b"`)); ok {
		t.Fatal("held on an ETag other than the one remembered")
	}
	owner, etag, held, releaseHeld, ok := k.hold("o1", is(`"a"`))
	if !ok || owner != "u1" || etag != `"a"` {
		t.Fatalf("hold = %q %q %v, want u1 \"a\" true", owner, etag, ok)
	}
	defer releaseHeld()
	k.changed("o1")
	select {
	case <-held:
	default:
		t.Fatal("the held GET was not woken by the change")
	}
	if _, _, _, _, ok := k.hold("o1", is(`"a"`)); ok {
		t.Fatal("a changed order is still known")
	}

	trusted = false // changes may go unheard: nothing is known
	ch, release, epoch = k.watch("o2")
	k.remember("o2", "u1", `"a"`, ch, epoch)
	release()
	if k.size() != 0 {
		t.Fatal("remembered while changes may go unheard")
	}
}
