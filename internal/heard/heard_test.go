package heard

import (
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fixture is a Memory of ints by string with a settable trust and clock.
type fixture struct {
	*Memory[string, int]
	trusted bool
	now     time.Time
	tx      fakeTx // a transaction writing to it, for Write
}

func newFixture(maxEntries int) *fixture {
	f := &fixture{trusted: true, now: time.Unix(1000, 0)}
	f.Memory = New[string, int](Config{
		Trusted:    func() bool { return f.trusted },
		MaxEntries: maxEntries,
		MaxAge:     5 * time.Second,
		Now:        func() time.Time { return f.now },
	})
	return f
}

// read reads key k, which the database holds as v, as a caller does.
func (f *fixture) read(k string, v int) { f.EndOne(f.Begin(k), v, true) }

func TestReadsOvertakenAreNotRemembered(t *testing.T) {
	for _, c := range []struct {
		name     string
		between  func(m *fixture) // heard of between the read's Begin and End
		remember bool
	}{
		{"nothing heard", func(*fixture) {}, true},
		{"its key written", func(m *fixture) { m.Forget("a") }, false},
		{"its key changed", func(m *fixture) { m.Change("a", func(int) int { return 9 }) }, false},
		{"another of its keys written", func(m *fixture) { m.Forget("b") }, false},
		{"a reset", func(m *fixture) { m.Reset() }, false},
		{"another key written", func(m *fixture) { m.Forget("c") }, true},
		{"its key being written", func(m *fixture) { m.Writing("a") }, false},
		{"a write of its key rolled back", func(m *fixture) { m.Writing("a"); m.Wrote("a") }, false},
		{"every key being written", func(m *fixture) { m.WritingAll() }, false},
		{"a write of every key rolled back", func(m *fixture) { m.WritingAll(); m.WroteAll() }, false},
		{"another key being written", func(m *fixture) { m.Writing("c") }, true},
		{"trust lost", func(m *fixture) { m.trusted = false }, false},
		{"trust lost and back, with the resets", func(m *fixture) { m.trusted = false; m.Reset(); m.trusted = true; m.Reset() }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newFixture(10)
			r := m.Begin("a", "b")
			c.between(m)
			m.End(r, []string{"a", "b"}, []int{1, 2})
			m.trusted = true
			var got [2]int
			if ok := m.LookupAll([]string{"b", "a"}, got[:]); ok != c.remember || ok && got != [2]int{2, 1} {
				t.Errorf("LookupAll = %v %v, want remembered %v", got, ok, c.remember)
			}
			if len(m.reading) != 0 || len(m.written) != 0 {
				t.Errorf("reads in flight left behind: %v %v", m.reading, m.written)
			}
		})
	}
}

func TestOverlappingReads(t *testing.T) {
	m := newFixture(10)
	r1 := m.Begin("a")
	m.Forget("a")
	r2 := m.Begin("a") // after the write: reads what it wrote
	m.EndOne(r1, 1, true)
	if _, ok := m.Lookup("a"); ok {
		t.Fatal("the read overtaken was remembered")
	}
	m.EndOne(r2, 2, true)
	if v, ok := m.Lookup("a"); !ok || v != 2 {
		t.Fatalf("Lookup = %d %v, want the read begun after the write (2)", v, ok)
	}
	// A failed read remembers nothing, and ends.
	m.End(m.Begin("x"), nil, nil)
	m.EndOne(m.Begin("y"), 1, false)
	for _, k := range []string{"x", "y"} {
		if _, ok := m.Lookup(k); ok || len(m.reading) != 0 {
			t.Fatalf("a failed read of %s was remembered, or left in flight", k)
		}
	}
}

func TestForgetChangeReset(t *testing.T) {
	m := newFixture(10)
	m.read("a", 1)
	m.read("b", 2)
	m.now = m.now.Add(time.Second)
	m.Change("a", func(v int) int { return v + 10 })
	m.Change("z", func(v int) int { t.Error("changed a value not remembered"); return v })
	if v, _ := m.Lookup("a"); v != 11 {
		t.Errorf("changed: %d, want 11", v)
	}
	m.now = m.now.Add(4*time.Second - 1) // the change keeps the read's age
	if _, ok := m.Lookup("a"); !ok {
		t.Error("not answered within MaxAge")
	}
	m.now = m.now.Add(1)
	if _, ok := m.Lookup("a"); ok {
		t.Error("a changed value answered past the MaxAge of its read")
	}
	m.read("a", 1)
	m.Forget("a")
	if _, ok := m.Lookup("a"); ok {
		t.Error("a forgotten value answered")
	}
	m.read("a", 1)
	m.Reset()
	if m.Len() != 0 {
		t.Errorf("%d values remembered after a reset", m.Len())
	}
	for _, k := range []string{"a", "b"} {
		if _, ok := m.Lookup(k); ok {
			t.Errorf("%s answered after a reset", k)
		}
	}
}

// TestNothingAnsweredWhileAWriteIsInFlight: from Writing(k) to Wrote(k) —
// a window that holds the write's commit, and the moment after it before
// its commit hook forgets k — neither what was remembered of k nor a read
// of k is answered.
func TestNothingAnsweredWhileAWriteIsInFlight(t *testing.T) {
	missed := func(t *testing.T, m *fixture, when string) {
		t.Helper()
		if v, ok := m.Lookup("a"); ok {
			t.Errorf("%s: a answered (%d)", when, v)
		}
		if m.LookupAll([]string{"a"}, make([]int, 1)) {
			t.Errorf("%s: a answered by LookupAll", when)
		}
	}
	answered := func(t *testing.T, m *fixture, when string, want int) {
		t.Helper()
		if v, ok := m.Lookup("a"); !ok || v != want {
			t.Errorf("%s: Lookup(a) = %d %v, want %d", when, v, ok, want)
		}
	}
	t.Run("committed", func(t *testing.T) {
		m := newFixture(10)
		m.read("a", 1)
		before := m.Begin("a") // before the write's statement, ends after its commit
		m.Writing("a")
		missed(t, m, "written, not committed")
		m.read("a", 1) // its snapshot may be older than the commit
		missed(t, m, "read while written")
		// The commit is visible from here; its hook has not run yet.
		missed(t, m, "committed, before its hook")
		during := m.Begin("a")
		m.Forget("a") // the commit hook
		m.Wrote("a")
		m.EndOne(before, 1, true)
		m.EndOne(during, 1, true)
		missed(t, m, "after reads overtaken by the write")
		m.read("a", 2)
		answered(t, m, "read after the write ended", 2)
	})
	t.Run("rolled back", func(t *testing.T) {
		m := newFixture(10)
		m.read("a", 1)
		m.Writing("a")
		m.Writing("a") // a second write of a, in another transaction
		m.Wrote("a")
		missed(t, m, "one of two writes ended")
		m.Wrote("a")
		answered(t, m, "both rolled back", 1)
		if len(m.writing) != 0 {
			t.Errorf("writes in flight left behind: %v", m.writing)
		}
	})
	for _, c := range []struct {
		name          string
		write, commit func(m *fixture)
	}{
		{"every key", func(m *fixture) { m.WritingAll() }, func(m *fixture) { m.Reset(); m.WroteAll() }},
		{"every key through a transaction", func(m *fixture) { m.WriteAll(&m.tx) }, func(m *fixture) { m.tx.commit() }},
		{"through a transaction", func(m *fixture) { m.Write(&m.tx, "a") }, func(m *fixture) { m.tx.commit() }},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newFixture(10)
			m.read("a", 1)
			c.write(m)
			missed(t, m, "written")
			m.read("a", 1)
			missed(t, m, "read while written")
			c.commit(m)
			missed(t, m, "after the commit")
			m.read("a", 2)
			answered(t, m, "read after the write ended", 2)
		})
	}
}

// fakeTx is a transaction's hooks, run by commit.
type fakeTx struct{ onCommit, onEnd []func() }

func (tx *fakeTx) OnCommit(fn func()) { tx.onCommit = append(tx.onCommit, fn) }
func (tx *fakeTx) OnEnd(fn func())    { tx.onEnd = append(tx.onEnd, fn) }

func (tx *fakeTx) commit() {
	for _, f := range append(tx.onCommit, tx.onEnd...) {
		f()
	}
}

func TestUntrusted(t *testing.T) {
	m := newFixture(10)
	m.read("a", 1)
	m.trusted = false
	if _, ok := m.Lookup("a"); ok {
		t.Error("answered while untrusted")
	}
	if m.LookupAll([]string{"a"}, make([]int, 1)) {
		t.Error("answered all while untrusted")
	}
	m.Reset()
	m.read("a", 1)
	m.trusted = true
	if _, ok := m.Lookup("a"); ok {
		t.Error("a read ended while untrusted was remembered")
	}
}

func TestAgeBound(t *testing.T) {
	m := newFixture(10)
	r := m.Begin("a")
	m.now = m.now.Add(time.Second) // a slow read: its age counts from Begin
	m.EndOne(r, 1, true)
	m.now = m.now.Add(4*time.Second - 1)
	if _, ok := m.Lookup("a"); !ok {
		t.Error("not answered within MaxAge")
	}
	m.now = m.now.Add(1)
	if _, ok := m.Lookup("a"); ok {
		t.Error("answered at MaxAge")
	}
	if m.LookupAll([]string{"a"}, make([]int, 1)) {
		t.Error("answered all at MaxAge")
	}
	m.read("a", 2) // read again: answered anew
	if v, ok := m.Lookup("a"); !ok || v != 2 {
		t.Errorf("read again: %d %v", v, ok)
	}
}

func TestEntryBound(t *testing.T) {
	const most = 100
	m := newFixture(most)
	for i := range most + 10 {
		m.read(strconv.Itoa(i), i)
		if n := m.Len(); n > most {
			t.Fatalf("%d values remembered, at most %d", n, most)
		}
	}
	if v, ok := m.Lookup(strconv.Itoa(most + 9)); !ok || v != most+9 {
		t.Errorf("the newest value is not remembered: %d %v", v, ok)
	}
	m.read(strconv.Itoa(most+9), -1) // replacing an entry forgets no other
	if m.Len() != most {
		t.Errorf("%d values remembered, want %d", m.Len(), most)
	}
}

// TestConcurrentReadsOvertakenByWrites: readers read a database that a
// writer keeps writing, as callers do (Begin, read, End; Writing before a
// write, Forget once it committed, Wrote after). Whatever the
// interleaving, no value older than the last write committed before a
// lookup is answered by it.
func TestConcurrentReadsOvertakenByWrites(t *testing.T) {
	m := New[string, int64](Config{Trusted: func() bool { return true }, MaxEntries: 10, MaxAge: time.Hour})
	keys := []string{"a", "b"}
	var db [2]atomic.Int64 // the database's value of each key: the last write committed
	const writes = 2000
	var wg sync.WaitGroup
	var stop atomic.Bool
	var answered atomic.Int64
	for range 4 {
		wg.Go(func() {
			var got [2]int64
			for !stop.Load() {
				least := [2]int64{db[0].Load(), db[1].Load()}
				if m.LookupAll(keys, got[:]) {
					answered.Add(1)
					for i := range got {
						if got[i] < least[i] {
							t.Errorf("%s: answered %d after write %d committed", keys[i], got[i], least[i])
							return
						}
					}
					continue
				}
				r := m.Begin(keys...)
				read := [2]int64{db[0].Load(), db[1].Load()}
				m.End(r, keys, read[:])
			}
		})
	}
	for i := int64(1); i <= writes; i++ {
		k := int(i % 2)
		m.Writing(keys[k]) // the write's statement
		db[k].Store(i)     // its commit
		m.Forget(keys[k])  // its commit hook
		m.Wrote(keys[k])   // its end
		if i%500 == 0 {
			m.Reset()
		}
		runtime.Gosched() // let the readers remember between writes too
	}
	stop.Store(true)
	wg.Wait()
	if answered.Load() == 0 {
		t.Error("nothing was ever answered from memory")
	}
	if len(m.reading) != 0 || len(m.written) != 0 {
		t.Errorf("reads in flight left behind: %v %v", m.reading, m.written)
	}
}

// TestLookupDoesNotAllocate: nor do a read of one key and a change.
func TestLookupDoesNotAllocate(t *testing.T) {
	m := newFixture(10)
	m.read("a", 1)
	m.read("b", 2)
	into := make([]int, 2)
	keys := []string{"a", "b"}
	if n := testing.AllocsPerRun(100, func() {
		m.Lookup("a")
		m.LookupAll(keys, into)
	}); n != 0 {
		t.Errorf("%v allocations per lookup", n)
	}
	if n := testing.AllocsPerRun(100, func() { m.read("a", 1) }); n != 0 {
		t.Errorf("%v allocations per read of one key remembered", n)
	}
	add := 1
	if n := testing.AllocsPerRun(100, func() { m.Change("a", func(v int) int { return v + add }) }); n != 0 {
		t.Errorf("%v allocations per change", n)
	}
}

func BenchmarkLookup(b *testing.B) {
	m := New[string, int](Config{Trusted: func() bool { return true }, MaxEntries: 1000, MaxAge: time.Hour})
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = strconv.Itoa(i)
		m.EndOne(m.Begin(keys[i]), i, true)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := m.Lookup(keys[i%len(keys)]); !ok {
				b.Fatal("not remembered")
			}
			i++
		}
	})
}
