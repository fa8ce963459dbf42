package audit

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// clock is a time the test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// gatheringService is the audit service archiving after records records
// or delay, on the clock it returns.
func gatheringService(t *testing.T, records int, delay time.Duration) (*Service, *clock) {
	s := openServiceOn(t, testDSN(t))
	c := &clock{now: time.UnixMilli(1_800_000_000_000)}
	s.d.Now = c.Now
	s.arch.records, s.arch.delay = records, delay
	return s, c
}

// archivedSeqs returns the stretches of the chain archived so far, each
// checked with Archived, as "first-last" in the order written, and
// whether each continues the one before.
func archivedSeqs(t *testing.T, s *Service) string {
	t.Helper()
	var out []string
	prev := ""
	for _, b := range archived(t, s) {
		recs, err := Archived(b)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range recs {
			env, err := event.Decode(r.Envelope)
			if err != nil || env.EventID != r.EventID || r.Partition != 3 || r.Offset < 100 {
				t.Fatalf("archived record %d: %+v (envelope: %v)", i, r, err)
			}
		}
		if prev != "" && b.PrevHash != prev {
			t.Errorf("archive record of %d-%d does not continue the one before", recs[0].Seq, recs[len(recs)-1].Seq)
		}
		prev = b.Hash
		out = append(out, fmt.Sprint(recs[0].Seq, "-", recs[len(recs)-1].Seq))
	}
	return strings.Join(out, " ")
}

// TestTheArchiveGathersBlocks: blocks are archived together once
// ArchiveRecords records are unarchived, or the oldest is ArchiveDelay
// old; what no block made due is archived by archivePending. Each archive
// record continues the one before and the chain verifies throughout.
func TestTheArchiveGathersBlocks(t *testing.T) {
	s, c := gatheringService(t, 5, time.Second)
	envs := events(t, 12, 10)
	for _, e := range envs[:3] {
		recordBlock(t, s, e) // blocks of one: one order in flight
	}
	if got := archivedSeqs(t, s); got != "" {
		t.Fatalf("archived %q after 3 records, want nothing before 5 or a second", got)
	}
	recordBlock(t, s, envs[3:5]...)
	if got := archivedSeqs(t, s); got != "1-5" {
		t.Fatalf("archived %q, want 1-5: four blocks in one archive record", got)
	}
	recordBlock(t, s, envs[5])
	c.add(999 * time.Millisecond)
	recordBlock(t, s, envs[6])
	if got := archivedSeqs(t, s); got != "1-5" {
		t.Fatalf("archived %q, want still 1-5 before the oldest is a second old", got)
	}
	c.add(time.Millisecond)
	recordBlock(t, s, envs[7])
	if got := archivedSeqs(t, s); got != "1-5 6-8" {
		t.Fatalf("archived %q, want 1-5 6-8: the oldest record a second old", got)
	}
	recordBlock(t, s, envs[8])
	mustVerify(t, s, 9)
	if err := s.archivePending(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.archivePending(context.Background()); err != nil { // nothing left: nothing written
		t.Fatal(err)
	}
	if got := archivedSeqs(t, s); got != "1-5 6-8 9-9" {
		t.Fatalf("archived %q, want the tail 9-9 archived on its own", got)
	}
	// A process that did not append the unarchived records (restarted, or
	// another instance) reads them back from the trail.
	recordBlock(t, s, envs[9])
	other := New(s.d)
	other.arch.records, other.arch.delay = 5, time.Second
	recordBlock(t, other, envs[10])
	if got := archivedSeqs(t, s); got != "1-5 6-8 9-9 10-11" {
		t.Fatalf("archived %q, want 10-11: record 10, which the process does not hold, taken as old", got)
	}
	recordBlock(t, other, envs[11])
	if err := s.archivePending(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := archivedSeqs(t, s); got != "1-5 6-8 9-9 10-11 12-12" {
		t.Fatalf("archived %q, want 12-12 read back by the process that did not append it", got)
	}
	mustVerify(t, s, 12)
}

// TestRunArchivesTheTail: records no later block makes due are archived by
// Run twice ArchiveDelay after they were recorded, and the relay is not needed
// for it (the outbox holds the archive record).
func TestRunArchivesTheTail(t *testing.T) {
	s := openServiceOn(t, testDSN(t))
	s.arch.delay = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	envs := events(t, 3, 10)
	recordBlock(t, s, envs[0])
	recordBlock(t, s, envs[1:]...)
	// Run may archive the first block alone when it is already due before
	// the second is recorded (a busy machine): both ways every record is
	// archived, once, in order.
	deadline := time.Now().Add(10 * time.Second)
	for got := archivedSeqs(t, s); got != "1-3" && got != "1-1 2-3"; got = archivedSeqs(t, s) {
		if time.Now().After(deadline) {
			t.Fatalf("archived %q after 10 s, want 1-3 (or 1-1 2-3)", got)
		}
		time.Sleep(5 * time.Millisecond) // polling for Run's commit
	}
}

// TestTheArchivePositionOfATrailWrittenBeforeIt: migration 0003 starts the
// archive where the chain is (every record was archived as it was
// appended), so the first archive record after it continues the chain's
// head.
func TestTheArchivePositionOfATrailWrittenBeforeIt(t *testing.T) {
	dsn, dir := testDSN(t), t.TempDir()
	before := openServiceMigrated(t, dsn, dir, func(ms []sqldb.Migration) []sqldb.Migration {
		var out []sqldb.Migration
		for _, m := range ms {
			if m.Name < "0003" {
				out = append(out, m)
			}
		}
		return out
	})
	envs := events(t, 4, 10)
	writeOldChain(t, before, envs[:3])
	var head string
	if err := before.d.DB.QueryRow(context.Background(), `SELECT hash FROM chain_head`).Scan(&head); err != nil {
		t.Fatal(err)
	}
	before.d.DB.Close()
	s := openServiceMigrated(t, dsn, dir, func(ms []sqldb.Migration) []sqldb.Migration { return ms })
	s.arch.delay = 0
	recordBlock(t, s, envs[3])
	blocks := archived(t, s)
	if len(blocks) != 1 || blocks[0].PrevHash != head || len(blocks[0].Records) != 1 || blocks[0].Records[0].Seq != 4 {
		t.Fatalf("archived %+v, want record 4 alone, continuing the old head %s", blocks, head)
	}
	mustVerify(t, s, 4)
}

// TestABlockAfterTheKnownHeadCostsTwoStatements: a process that knows the
// chain head it last committed appends a block with two statements (the
// head's UPDATE, which locks it, and the INSERT), not three; when another
// instance has appended since, its UPDATE matches nothing and it reads
// the head locked, and the chain stays one.
func TestABlockAfterTheKnownHeadCostsTwoStatements(t *testing.T) {
	s, _ := gatheringService(t, 100, time.Hour)
	envs := events(t, 5, 10)
	statements := func(f func()) int64 {
		before := s.d.DB.Stats()
		f()
		return s.d.DB.Stats().Sub(before).Statements
	}
	if n := statements(func() { recordBlock(t, s, envs[0]) }); n != 3 {
		t.Errorf("the first block: %d statements, want 3 (read the head locked, insert, advance the head)", n)
	}
	if n := statements(func() { recordBlock(t, s, envs[1:3]...) }); n != 2 {
		t.Errorf("a block after the known head: %d statements, want 2 (advance the head, insert)", n)
	}
	other := New(s.d)
	other.arch.records, other.arch.delay = 100, time.Hour
	recordBlock(t, other, envs[3])
	if n := statements(func() { recordBlock(t, s, envs[4]) }); n != 4 {
		t.Errorf("a block after another instance's: %d statements, want 4 (an UPDATE that matches nothing, then as the first)", n)
	}
	mustVerify(t, s, 5)
	if err := s.archivePending(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := archivedSeqs(t, s); got != "1-4 5-5" {
		t.Errorf("archived %q, want 1-4 (by the other instance, which does not hold 1-3) and 5-5", got)
	}
}
