package embedded

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
)

// An offset commit alone is written without an fsync of its own
// (synchronous NORMAL for its transaction); the writer's connection must be
// back at FULL for the publishes that follow, and the offset committed.
func TestOffsetCommitLeavesPublishesFullySynchronous(t *testing.T) {
	ctx := context.Background()
	b := openWithTopic(t)
	if err := b.Publish(ctx, &bus.Message{Topic: "t", Key: []byte("k"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	handled := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- b.Subscribe(sctx, "g", []string{"t"}, func(context.Context, []*bus.Message) error {
			handled <- struct{}{}
			return nil
		})
	}()
	<-handled
	cancel() // the worker waits for its offset commit before it returns
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var next int64
	if err := b.rdb.QueryRow(`SELECT next_offset FROM group_offsets WHERE grp = 'g'`).Scan(&next); err != nil || next != 1 {
		t.Fatalf("committed offset = %d, %v; want 1", next, err)
	}
	var sync int
	if err := b.wdb.QueryRow(`PRAGMA synchronous`).Scan(&sync); err != nil || sync != 2 {
		t.Fatalf("writer connection at synchronous = %d, %v after an offset commit; want 2 (FULL)", sync, err)
	}
}

// A partition handled a record at a time commits its offset at most every
// commitEvery, not once per batch, and commits the last offset it reached
// once it falls idle, without a shutdown.
func TestOffsetCommitsAreSpaced(t *testing.T) {
	ctx := context.Background()
	b := openWithTopic(t)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	handled := make(chan struct{}, 1)
	go b.Subscribe(sctx, "g", []string{"t"}, func(_ context.Context, batch []*bus.Message) error {
		handled <- struct{}{}
		return nil
	})
	const n = 20
	start := time.Now()
	for range n {
		if err := b.Publish(ctx, &bus.Message{Topic: "t", Key: []byte("k"), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
		<-handled // each record its own batch
	}
	elapsed := time.Since(start)
	committed := func() int64 {
		var next int64
		if err := b.rdb.QueryRow(`SELECT next_offset FROM group_offsets WHERE grp = 'g'`).Scan(&next); err != nil {
			return -1
		}
		return next
	}
	for deadline := time.Now().Add(10 * time.Second); committed() != n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("committed offset %d, want %d once the partition is idle", committed(), n)
		}
	}
	// One commit at the first batch, then one per commitEvery at most, and
	// the idle one: on a machine too slow to handle the records within a
	// few commitEvery, the bound nears n and the test asserts less.
	most := int64(elapsed/commitEvery) + 2
	if got := b.offsetCommits.Load(); got > most || got >= n {
		t.Errorf("%d offset commits for %d single-record batches in %v, want at most %d", got, n, elapsed, most)
	}
}

// openWithTopic opens a log in a temporary directory, closed at the end
// of the test, with a topic "t" of one partition.
func openWithTopic(t *testing.T) *Bus {
	t.Helper()
	b, err := Open(filepath.Join(t.TempDir(), "log.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if _, err := b.EnsureTopics(context.Background(), []bus.TopicConfig{{Name: "t", Partitions: 1, Retention: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	return b
}
