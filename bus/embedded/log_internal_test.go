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
	b, err := Open(filepath.Join(t.TempDir(), "log.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.EnsureTopics(ctx, []bus.TopicConfig{{Name: "t", Partitions: 1, Retention: time.Hour}}); err != nil {
		t.Fatal(err)
	}
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
