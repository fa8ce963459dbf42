package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventmart/eventmart/bus"
)

// Back-pressure: a partition's worker queues what the poll loop hands it,
// one fetch response's worth (a chunk) at a time. When the worker is
// pauseChunks chunks behind, and they hold pauseBytes or more, fetching the
// partition pauses; it resumes when the worker is down to half of either.
// A partition's queue thus holds at most about pauseChunks fetches, each
// bounded by franz-go's FetchMaxPartitionBytes (1 MiB of compressed
// batches), however slow its handler.
//
// Counting chunks rather than bytes keeps a handler that keeps up from ever
// pausing: one fetch of well-compressed JSON can be 4 MiB and more once
// decompressed, and a byte limit below two or three of those paused on
// almost every fetch. That is costly, as a pause drops the partition's data
// from the fetch already under way, and a resumed partition waits for the
// fetch in flight to its broker (up to FetchMaxWait if the others are
// idle); in the consumer benchmark it cost two thirds of the throughput.
// The byte floor keeps a slow handler on a quiet partition, fetching a few
// records at a time, from pausing with almost nothing queued.
const (
	pauseChunks = 4
	pauseBytes  = 1 << 20
)

// A revoke waits for the running handler calls of its partitions, but not
// forever: past the group's rebalance timeout the coordinator evicts the
// member, the hand-over is no longer graceful, and the calls' contexts are
// cancelled as for lost partitions. Without that, a handler stuck in a call
// would hang the member, its rebalances and its shutdown for good.
const (
	rebalanceTimeout = time.Minute // franz-go's default, set explicitly to tie it to handOverGrace
	handOverGrace    = rebalanceTimeout - 10*time.Second
)

// Subscribe implements bus.Subscriber with one franz-go group client per
// call: a member of group with the cooperative-sticky balancer.
//
// One goroutine polls the client and queues each partition's records for
// that partition's worker goroutine, which calls h with batches of up to
// MaxBatch records. The poll loop never blocks on a worker: a partition
// whose queue is full is paused instead (PauseFetchPartitions), and resumed
// when its worker has drained half. Because franz-go runs with
// BlockRebalanceOnPoll, rebalance callbacks run only between polls:
//
//   - revoked (a graceful rebalance, and leaving at shutdown): the revoked
//     partitions' workers finish their running handler call (its context
//     is cancelled if it takes longer than handOverGrace), a batch in retry
//     backoff is dropped, and the marked offsets are committed
//     synchronously before the partitions are handed over;
//   - lost (the session expired): the workers' contexts are cancelled and
//     nothing is committed;
//   - assigned: a worker starts for each new partition.
//
// Offsets are marked after each successful call and committed every second
// by franz-go (AutoCommitMarks), besides the commit at revoke: a crash
// repeats at most about a second of work.
func (b *Bus) Subscribe(ctx context.Context, group string, topics []string, h bus.Handler, opts ...bus.SubscribeOption) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errClosed
	}
	b.subs.Add(1)
	b.mu.Unlock()
	defer b.subs.Done()

	if group == "" || len(topics) == 0 {
		return errors.New("kafka: subscribe needs a group and at least one topic")
	}
	// franz-go would wait for a missing topic to appear; the contract
	// wants an error.
	if err := b.checkTopics(ctx, topics); err != nil {
		if ctx.Err() != nil {
			return nil // cancelled before it began
		}
		return err
	}

	// Polling stops when ctx ends or the bus closes. Handlers' contexts keep
	// ctx's values but end only when their partition is lost or the bus
	// closes: a graceful shutdown lets running calls finish.
	pollCtx, cancelPoll := context.WithCancel(ctx)
	defer cancelPoll()
	defer context.AfterFunc(b.ctx, cancelPoll)()
	handlerCtx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()
	defer context.AfterFunc(b.ctx, cancelHandlers)()

	cfg := bus.NewSubscribeConfig(opts...)
	s := &subscription{
		h:       h,
		cfg:     cfg,
		ctx:     handlerCtx,
		log:     b.log.With("group", group),
		grace:   handOverGrace,
		workers: map[partitionKey]*worker{},
	}
	reset := kgo.NewOffset().AtStart()
	if cfg.Start == bus.Latest {
		reset = kgo.NewOffset().AtEnd()
	}
	groupOpts := []kgo.Opt{}
	if b.cfg.instanceID != "" {
		groupOpts = append(groupOpts, kgo.InstanceID(b.cfg.instanceID))
	}
	if b.cfg.sessionTimeout > 0 {
		groupOpts = append(groupOpts, kgo.SessionTimeout(b.cfg.sessionTimeout))
	}
	cl, err := kgo.NewClient(slices.Concat(b.base, groupOpts, []kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(reset),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
		// Members learn of a rebalance at their next heartbeat, and a
		// cooperative hand-over takes two rounds: 1 s rather than
		// franz-go's 3 s makes it take about two seconds, not six, for
		// one small request per second.
		kgo.HeartbeatInterval(time.Second),
		kgo.RebalanceTimeout(rebalanceTimeout),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
	}, fetchOpts(cfg), b.metricsOpts("group:"+group))...)
	if err != nil {
		return fmt.Errorf("kafka: subscribe: %w", err)
	}
	s.cl, s.ctl = cl, cl

	err = s.poll(pollCtx)
	// Leaving the group runs s.revoked for every partition: workers
	// finish, offsets are committed, then the member leaves.
	cl.CloseAllowingRebalance()
	s.stopAll()
	switch {
	case b.ctx.Err() != nil:
		return errClosed
	case err != nil:
		return err
	}
	return nil
}

// idleFetchWait is how long the broker holds a group's fetch when there is
// nothing to return. A resumed partition joins the fetch after the one in
// flight to its broker, which waits up to this long when the others are
// idle.
const idleFetchWait = 500 * time.Millisecond

// lingerBytesPerRecord stands for a record in the bytes a lingering
// group's fetch waits for: the broker counts bytes, not records, and
// MaxBatch records of any real size (Eventmart's are 0.5 to 2 KiB) fill
// MaxBatch times this.
const lingerBytesPerRecord = 256

// fetchOpts are the group client's fetch options. With a linger the broker
// holds each fetch until it has about MaxBatch records' worth of bytes or
// the linger has passed, so a quiet group costs one fetch per linger, not
// one per record; the worker gathers what arrives over several fetches
// (worker.next).
func fetchOpts(cfg bus.SubscribeConfig) []kgo.Opt {
	if cfg.Linger <= 0 {
		return []kgo.Opt{kgo.FetchMaxWait(idleFetchWait)}
	}
	// The broker's wait is in whole milliseconds; a linger shorter than
	// one still waits 1 ms rather than none at all.
	wait := min(max(cfg.Linger, time.Millisecond), idleFetchWait)
	minBytes := int32(min(int64(cfg.MaxBatch)*lingerBytesPerRecord, 1<<30))
	return []kgo.Opt{kgo.FetchMaxWait(wait), kgo.FetchMinBytes(minBytes)}
}

// groupClient is what workers need of the group's client, *kgo.Client;
// tests of workers fake it.
type groupClient interface {
	PauseFetchPartitions(map[string][]int32) map[string][]int32
	ResumeFetchPartitions(map[string][]int32)
	MarkCommitRecords(...*kgo.Record)
}

type partitionKey struct {
	topic     string
	partition int32
}

// subscription is one Subscribe call.
type subscription struct {
	cl    *kgo.Client // the group member
	ctl   groupClient // what workers use of cl
	h     bus.Handler
	cfg   bus.SubscribeConfig
	ctx   context.Context // parent of workers' contexts
	log   *slog.Logger
	grace time.Duration // handOverGrace; shorter in tests

	mu      sync.Mutex
	workers map[partitionKey]*worker
}

// poll feeds workers until ctx ends or a fatal error.
func (s *subscription) poll(ctx context.Context) error {
	for {
		fs := s.cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			s.cl.AllowRebalance()
			return nil
		}
		var fatal error
		fs.EachError(func(topic string, partition int32, err error) {
			switch {
			case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.GroupAuthorizationFailed):
				fatal = fmt.Errorf("kafka: consume %s: %w", topic, err)
			default:
				// Everything else franz-go retries by itself (a
				// rejoin, a leader move); keep consuming.
				s.log.Warn("kafka: consume", "topic", topic, "partition", partition, "err", err)
			}
		})
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) > 0 {
				s.worker(p.Topic, p.Partition).push(p.Records)
			}
		})
		s.cl.AllowRebalance()
		if fatal != nil {
			return fatal
		}
	}
}

// worker returns the partition's worker, starting it if needed.
func (s *subscription) worker(topic string, partition int32) *worker {
	k := partitionKey{topic, partition}
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.workers[k]; w != nil {
		return w
	}
	ctx, cancel := context.WithCancel(s.ctx)
	w := &worker{
		s: s, key: k, ctx: ctx, cancel: cancel,
		stop: make(chan struct{}), done: make(chan struct{}), wake: make(chan struct{}, 1),
	}
	s.workers[k] = w
	go w.run()
	return w
}

// assigned starts a worker for every new partition. With BlockRebalanceOnPoll
// it runs before any of their records can be polled.
func (s *subscription) assigned(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	for t, ps := range parts {
		for _, p := range ps {
			s.worker(t, p)
		}
	}
}

// revoked hands partitions over gracefully: their workers finish the
// running call (its offset marked), then everything marked is committed.
// The poll loop is blocked meanwhile, so no new batch starts.
func (s *subscription) revoked(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
	if s.stop(parts, false) == 0 {
		return
	}
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		// The next owner repeats what this member did since its last
		// commit: at least once, as the contract allows.
		s.log.Warn("kafka: commit at revoke failed", "err", err)
	}
}

// lost stops the workers of partitions the member no longer owns without
// a hand-over: their contexts are cancelled and nothing is committed, as
// another member may already be consuming them.
func (s *subscription) lost(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	s.stop(parts, true)
}

// stop stops the workers of parts, cancelling their contexts if cancel,
// and waits for them. It returns how many it stopped.
func (s *subscription) stop(parts map[string][]int32, cancel bool) int {
	var ws []*worker
	s.mu.Lock()
	for t, ps := range parts {
		for _, p := range ps {
			k := partitionKey{t, p}
			if w := s.workers[k]; w != nil {
				ws = append(ws, w)
				delete(s.workers, k)
			}
		}
	}
	s.mu.Unlock()
	s.stopWorkers(ws, cancel)
	return len(ws)
}

// stopAll stops whatever workers are left once the client is closed (none
// after a normal leave) and cancels them: nothing can be committed anymore.
func (s *subscription) stopAll() {
	s.mu.Lock()
	ws := make([]*worker, 0, len(s.workers))
	for k, w := range s.workers {
		ws = append(ws, w)
		delete(s.workers, k)
	}
	s.mu.Unlock()
	s.stopWorkers(ws, true)
}

// stopWorkers stops ws after their running calls, cancelling the calls'
// contexts at once if cancel, else after s.grace, and waits for them.
func (s *subscription) stopWorkers(ws []*worker, cancel bool) {
	for _, w := range ws {
		if cancel {
			w.cancel()
		}
		close(w.stop)
	}
	grace := time.NewTimer(s.grace)
	defer grace.Stop()
	for _, w := range ws {
		select {
		case <-w.done:
		case <-grace.C:
			s.log.Warn("kafka: handler calls still running at hand-over; cancelling their contexts", "after", s.grace)
			for _, w := range ws {
				w.cancel()
			}
			<-w.done
		}
	}
	for _, w := range ws {
		<-w.done
		w.cancel()
		w.resume() // a partition reassigned later must not stay paused
	}
}

// worker calls the handler for one partition, one batch at a time.
type worker struct {
	s      *subscription
	key    partitionKey
	ctx    context.Context // the handler's: cancelled when the partition is lost
	cancel context.CancelFunc
	stop   chan struct{} // closed to stop after the running call
	done   chan struct{} // closed when run returns
	wake   chan struct{} // signalled when records are queued

	mu     sync.Mutex
	queue  []*kgo.Record // polled, not yet handled, in offset order, from head on
	head   int
	chunks []int // records of each push still in queue, the first maybe partly handled
	bytes  int   // recordSize of the queue
	paused bool  // fetching of the partition is paused
}

// push queues records polled for the partition, pausing its fetching when
// the queue is full. It never blocks, so the poll loop never waits for a
// handler.
func (w *worker) push(recs []*kgo.Record) {
	w.mu.Lock()
	w.queue = append(w.queue, recs...)
	w.chunks = append(w.chunks, len(recs))
	for _, r := range recs {
		w.bytes += recordSize(r)
	}
	if !w.paused && len(w.chunks) >= pauseChunks && w.bytes >= pauseBytes {
		w.paused = true
		w.s.ctl.PauseFetchPartitions(map[string][]int32{w.key.topic: {w.key.partition}})
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run calls the handler with the queue's head until stopped: after a
// success it drops the batch from the queue and marks its offset; after a
// failure it waits and retries with the head as it is then (it may have
// grown).
func (w *worker) run() {
	defer close(w.done)
	for attempt := 0; ; {
		batch := w.next(attempt == 0)
		if batch == nil {
			return
		}
		err := w.s.h(w.ctx, toMessages(batch))
		if err == nil {
			last := w.consumed(len(batch))
			if w.ctx.Err() == nil { // a lost partition's offsets are not ours to commit
				w.s.ctl.MarkCommitRecords(last)
			}
			attempt = 0
			continue
		}
		if w.ctx.Err() != nil {
			return
		}
		attempt++
		d := w.s.cfg.Backoff(attempt)
		w.s.log.Warn("kafka: handler failed; retrying the batch", "topic", w.key.topic, "partition", w.key.partition,
			"offset", batch[0].Offset, "messages", len(batch), "attempt", attempt, "backoff", d, "err", err)
		if !w.sleep(d) {
			return // revoked or shut down in backoff: the batch stays uncommitted
		}
	}
}

// next waits for queued records and returns up to MaxBatch of them from
// the head of the queue, or nil once the worker is to stop. With linger
// (and a bus.Linger) it waits for MaxBatch records until the linger has
// passed since the head record's timestamp, and at most the linger from
// when it first sees one; a stop meanwhile leaves them unhandled and
// uncommitted.
func (w *worker) next(linger bool) []*kgo.Record {
	d := w.s.cfg.Linger
	var expired <-chan time.Time
	for {
		select {
		case <-w.stop:
			return nil
		case <-w.ctx.Done():
			return nil
		case <-expired:
			d = 0
		default:
		}
		w.mu.Lock()
		n := min(len(w.queue)-w.head, w.s.cfg.MaxBatch)
		batch := w.queue[w.head : w.head+n : w.head+n]
		w.mu.Unlock()
		if n > 0 && (!linger || d <= 0 || n == w.s.cfg.MaxBatch) {
			return batch
		}
		if n > 0 && expired == nil {
			wait := min(max(time.Until(batch[0].Timestamp.Add(d)), 0), d)
			if wait == 0 {
				return batch
			}
			t := time.NewTimer(wait)
			defer t.Stop()
			expired = t.C
		}
		select {
		case <-w.wake:
		case <-expired:
			d = 0
		case <-w.stop:
			return nil
		case <-w.ctx.Done():
			return nil
		}
	}
}

// consumed drops the first n records from the queue, resuming fetching if
// it drained enough, and returns the last one dropped.
func (w *worker) consumed(n int) *kgo.Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	done := w.queue[w.head : w.head+n]
	last := done[n-1]
	for _, r := range done {
		w.bytes -= recordSize(r)
	}
	clear(done) // handled records are not kept alive by the queue
	w.head += n
	// Reuse the backing array: from its start once empty, else by moving
	// the rest down once the handled part is the larger.
	if w.head == len(w.queue) {
		w.queue, w.head = w.queue[:0], 0
	} else if w.head > len(w.queue)/2 {
		k := copy(w.queue, w.queue[w.head:])
		clear(w.queue[k:])
		w.queue, w.head = w.queue[:k], 0
	}
	for n > 0 {
		if n < w.chunks[0] {
			w.chunks[0] -= n
			break
		}
		n -= w.chunks[0]
		w.chunks = w.chunks[:copy(w.chunks, w.chunks[1:])]
	}
	if w.paused && (len(w.chunks) <= pauseChunks/2 || w.bytes < pauseBytes/2) {
		w.paused = false
		w.s.ctl.ResumeFetchPartitions(map[string][]int32{w.key.topic: {w.key.partition}})
	}
	return last
}

// resume resumes fetching the partition if it was paused.
func (w *worker) resume() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.paused {
		w.paused = false
		w.s.ctl.ResumeFetchPartitions(map[string][]int32{w.key.topic: {w.key.partition}})
	}
}

// sleep waits d, or less if the worker is stopped (then it returns false).
func (w *worker) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.stop:
		return false
	case <-w.ctx.Done():
		return false
	}
}

// recordSize estimates the memory a queued record holds. It counts headers
// by number, not size: handlers see them through a view (busHeaders) and
// could change their sizes between push and consumed.
func recordSize(r *kgo.Record) int {
	return 256 + len(r.Key) + len(r.Value) + 64*len(r.Headers) // 256: the Record itself
}
