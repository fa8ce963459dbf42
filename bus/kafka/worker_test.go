package kafka

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventmart/eventmart/bus"
)

// These tests drive a partition worker directly, with a fake group client:
// back-pressure and hand-over without a broker, deterministically.

// fakeClient records what workers ask of the group client.
type fakeClient struct {
	mu      sync.Mutex
	paused  int   // pause calls
	resumed int   // resume calls
	marked  int64 // offset after the last marked record, -1 for none
	changed chan struct{}
}

func newFakeClient() *fakeClient {
	return &fakeClient{marked: -1, changed: make(chan struct{})}
}

func (f *fakeClient) update(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeClient) PauseFetchPartitions(map[string][]int32) map[string][]int32 {
	f.update(func() { f.paused++ })
	return nil
}

func (f *fakeClient) ResumeFetchPartitions(map[string][]int32) {
	f.update(func() { f.resumed++ })
}

func (f *fakeClient) MarkCommitRecords(rs ...*kgo.Record) {
	f.update(func() { f.marked = rs[len(rs)-1].Offset + 1 })
}

// waitFor fails t unless cond (called under the lock) holds within 10 s.
func (f *fakeClient) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		f.mu.Lock()
		ok, ch := cond(), f.changed
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (f *fakeClient) state() (paused, resumed int, marked int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.paused, f.resumed, f.marked
}

func newTestSubscription(h bus.Handler, opts ...bus.SubscribeOption) (*subscription, *fakeClient) {
	f := newFakeClient()
	return &subscription{
		ctl:     f,
		h:       h,
		cfg:     bus.NewSubscribeConfig(opts...),
		ctx:     context.Background(),
		log:     slog.New(slog.DiscardHandler),
		grace:   handOverGrace,
		workers: map[partitionKey]*worker{},
	}, f
}

// records returns n records of partition 0 from offset from, of size bytes each.
func records(from int64, n, size int) []*kgo.Record {
	rs := make([]*kgo.Record, n)
	for i := range rs {
		rs[i] = &kgo.Record{Topic: "t", Partition: 0, Offset: from + int64(i), Value: make([]byte, size)}
	}
	return rs
}

var partition0 = map[string][]int32{"t": {0}}

// stopWithin runs s.stop and fails t if it does not return within 10 s:
// a stuck worker would block a rebalance.
func stopWithin(t *testing.T, s *subscription, cancel bool) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		s.stop(partition0, cancel)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stopping the worker did not return")
	}
}

func TestWorkerPausesFetchingWhenQueueIsFull(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	h := func(ctx context.Context, batch []*bus.Message) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		return nil
	}
	s, f := newTestSubscription(h, bus.MaxBatch(10))
	w := s.worker("t", 0)

	// The handler blocks on the first batch; the poll loop keeps pushing
	// without ever blocking, a fetch's worth at a time, until the queue
	// holds pauseChunks of them.
	const size = 64 << 10 // 8 records a push: 512 KiB
	var offset int64
	for range pauseChunks - 1 {
		w.push(records(offset, 8, size))
		offset += 8
	}
	<-entered
	if p, _, _ := f.state(); p != 0 {
		t.Fatalf("paused with %d chunks queued, below %d", pauseChunks-1, pauseChunks)
	}
	w.push(records(offset, 8, size))
	offset += 8
	if p, r, _ := f.state(); p != 1 || r != 0 {
		t.Fatalf("with a full queue: %d pauses, %d resumes; want 1, 0", p, r)
	}
	w.push(records(offset, 8, size)) // a fetch already in flight may still arrive
	offset += 8
	if p, _, _ := f.state(); p != 1 {
		t.Fatalf("paused %d times, want once", p)
	}

	close(release)
	f.waitFor(t, "everything handled and marked", func() bool { return f.marked == offset })
	if p, r, _ := f.state(); p != 1 || r != 1 {
		t.Fatalf("after draining: %d pauses, %d resumes; want 1, 1", p, r)
	}
	stopWithin(t, s, false)
}

func TestWorkerInBackoffDropsBatchOnRevoke(t *testing.T) {
	var calls sync.WaitGroup
	calls.Add(1)
	var once sync.Once
	h := func(ctx context.Context, batch []*bus.Message) error {
		once.Do(calls.Done)
		return errors.New("always failing")
	}
	// An hour's backoff: only an immediate stop lets the test finish.
	s, f := newTestSubscription(h, bus.RetryBackoff(time.Hour, time.Hour))
	w := s.worker("t", 0)
	w.push(records(0, 5, 10))
	calls.Wait()
	stopWithin(t, s, false)
	if _, _, marked := f.state(); marked != -1 {
		t.Fatalf("a failed batch was marked up to %d", marked)
	}
}

func TestWorkerFinishesRunningCallOnRevoke(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	ctxErr := make(chan error, 1)
	h := func(ctx context.Context, batch []*bus.Message) error {
		close(entered)
		<-release
		ctxErr <- ctx.Err()
		return nil
	}
	s, f := newTestSubscription(h, bus.MaxBatch(3))
	w := s.worker("t", 0)
	w.push(records(0, 5, 10))
	<-entered

	revoked := make(chan struct{})
	go func() {
		s.stop(partition0, false)
		close(revoked)
	}()
	<-w.stop // the revoke has begun while the call runs
	close(release)
	<-revoked
	if err := <-ctxErr; err != nil {
		t.Errorf("handler context during a graceful revoke: %v, want not cancelled", err)
	}
	// The running batch (offsets 0-2) is marked; the queued rest is left
	// to the next owner.
	if _, _, marked := f.state(); marked != 3 {
		t.Fatalf("marked up to %d, want 3", marked)
	}
}

func TestWorkerCancelsHandlerWhenPartitionIsLost(t *testing.T) {
	entered := make(chan struct{})
	h := func(ctx context.Context, batch []*bus.Message) error {
		close(entered)
		<-ctx.Done()
		return nil // even a "success" after the loss must not be committed
	}
	s, f := newTestSubscription(h)
	w := s.worker("t", 0)
	w.push(records(0, 5, 10))
	<-entered
	stopWithin(t, s, true)
	if _, _, marked := f.state(); marked != -1 {
		t.Fatalf("a lost partition's batch was marked up to %d", marked)
	}
}

func TestWorkerDoesNotPauseForLittle(t *testing.T) {
	release := make(chan struct{})
	h := func(ctx context.Context, batch []*bus.Message) error {
		<-release
		return nil
	}
	s, f := newTestSubscription(h)
	w := s.worker("t", 0)
	// Many fetches of a record each, as on a quiet partition: far behind in
	// fetches, but pausing would save nothing and could stall the handler.
	for i := range 100 {
		w.push(records(int64(i), 1, 100))
	}
	if p, _, _ := f.state(); p != 0 {
		t.Fatalf("paused with 100 small records queued")
	}
	close(release)
	f.waitFor(t, "everything handled", func() bool { return f.marked == 100 })
	stopWithin(t, s, false)
}

func TestWorkerHandlesEveryRecordOnceInOrder(t *testing.T) {
	var mu sync.Mutex
	var got []int64
	h := func(ctx context.Context, batch []*bus.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if len(batch) > 7 {
			t.Errorf("batch of %d, more than MaxBatch", len(batch))
		}
		for _, m := range batch {
			got = append(got, m.Offset)
		}
		return nil
	}
	s, f := newTestSubscription(h, bus.MaxBatch(7))
	w := s.worker("t", 0)
	var offset int64
	for i := range 200 {
		n := 1 + i%13 // chunks of varying size, pushed while the worker runs
		w.push(records(offset, n, 10))
		offset += int64(n)
	}
	f.waitFor(t, "everything handled", func() bool { return f.marked == offset })
	stopWithin(t, s, false)
	mu.Lock()
	defer mu.Unlock()
	for i, o := range got {
		if o != int64(i) {
			t.Fatalf("record %d handled has offset %d", i, o)
		}
	}
	if int64(len(got)) != offset {
		t.Fatalf("handled %d records, want %d", len(got), offset)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) != 0 || len(w.chunks) != 0 || w.bytes != 0 {
		t.Errorf("after draining: %d queued, %d chunks, %d bytes", len(w.queue), len(w.chunks), w.bytes)
	}
}

func TestWorkerStuckAtRevokeIsCancelledAfterGrace(t *testing.T) {
	entered := make(chan struct{})
	h := func(ctx context.Context, batch []*bus.Message) error {
		close(entered)
		<-ctx.Done() // stuck until cancelled
		return nil
	}
	s, f := newTestSubscription(h)
	s.grace = 10 * time.Millisecond // the rebalance timeout, in short
	w := s.worker("t", 0)
	w.push(records(0, 5, 10))
	<-entered
	stopWithin(t, s, false)
	if _, _, marked := f.state(); marked != -1 {
		t.Fatalf("a call cancelled at hand-over was marked up to %d", marked)
	}
}

// stamped returns records(from, n, 10) with timestamp ts.
func stamped(from int64, n int, ts time.Time) []*kgo.Record {
	rs := records(from, n, 10)
	for _, r := range rs {
		r.Timestamp = ts
	}
	return rs
}

// A lingering worker gathers records pushed by several fetches into one
// batch: the two records pushed while the handler runs wait for a third
// (MaxBatch), pushed once the first call is over.
func TestWorkerLingerGathersFetchesUntilMaxBatch(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	var mu sync.Mutex
	var sizes []int
	h := func(ctx context.Context, batch []*bus.Message) error {
		mu.Lock()
		sizes = append(sizes, len(batch))
		mu.Unlock()
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		return nil
	}
	s, f := newTestSubscription(h, bus.MaxBatch(3), bus.Linger(time.Hour))
	w := s.worker("t", 0)
	w.push(stamped(0, 1, time.Now().Add(-2*time.Hour))) // its linger is over: handed over at once
	<-entered
	w.push(stamped(1, 1, time.Now()))
	w.push(stamped(2, 1, time.Now()))
	close(release)
	f.waitFor(t, "the first call marked", func() bool { return f.marked >= 1 })
	w.push(stamped(3, 1, time.Now()))
	f.waitFor(t, "the four records handled and marked", func() bool { return f.marked == 4 })
	stopWithin(t, s, false)
	mu.Lock()
	defer mu.Unlock()
	if len(sizes) != 2 || sizes[0] != 1 || sizes[1] != 3 {
		t.Fatalf("handler calls of %v records, want [1 3]", sizes)
	}
}

// A revoke cuts a linger short and leaves its records unmarked.
func TestWorkerLingerEndsOnRevokeUnmarked(t *testing.T) {
	handled := make(chan int, 10)
	h := func(ctx context.Context, batch []*bus.Message) error {
		handled <- len(batch)
		return nil
	}
	s, f := newTestSubscription(h, bus.MaxBatch(10), bus.Linger(time.Hour))
	w := s.worker("t", 0)
	w.push(stamped(0, 1, time.Now().Add(-2*time.Hour)))
	f.waitFor(t, "the first record marked", func() bool { return f.marked == 1 })
	w.push(stamped(1, 2, time.Now()))
	stopWithin(t, s, false) // an hour's linger: only an immediate stop lets the test finish
	if _, _, marked := f.state(); marked != 1 {
		t.Fatalf("marked up to %d after a revoke during the linger, want 1", marked)
	}
	if n := len(handled); n != 1 {
		t.Fatalf("%d handler calls, want 1", n)
	}
}
