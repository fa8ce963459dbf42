package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/eventmart/eventmart/bus"
)

// group coordinates the members of one consumer group in this process.
//
// Assignment is a pure function of the member list (desired); a partition
// moves only when its current owner's worker has finished its batch,
// committed and released it, so hand-overs neither skip nor repeat.
type group struct {
	name    string
	mu      sync.Mutex
	members []*member // in join order
	owner   map[tp]*member
	changed chan struct{} // closed and replaced on every membership or ownership change
}

type member struct {
	topics  map[*topic]bool
	leaving bool
}

func (b *Bus) group(name string) (*group, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, bus.ErrClosed
	}
	g := b.groups[name]
	if g == nil {
		g = &group{name: name, owner: map[tp]*member{}, changed: make(chan struct{})}
		b.groups[name] = g
	}
	return g, nil
}

// rebalance wakes every member and worker to re-check the assignment.
func (g *group) rebalance() {
	g.mu.Lock()
	g.notifyLocked()
	g.mu.Unlock()
}

func (g *group) notifyLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// desiredLocked returns the member partition k should belong to: the
// members consuming k's topic share its partitions round robin.
func (g *group) desiredLocked(k tp) *member {
	n := 0
	for _, m := range g.members {
		if !m.leaving && m.topics[k.t] {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	i := int(k.p) % n
	for _, m := range g.members {
		if !m.leaving && m.topics[k.t] {
			if i == 0 {
				return m
			}
			i--
		}
	}
	return nil
}

// Subscribe implements bus.Subscriber.
func (b *Bus) Subscribe(ctx context.Context, groupName string, topicNames []string, h bus.Handler, opts ...bus.SubscribeOption) error {
	cfg := bus.NewSubscribeConfig(opts...)
	m := &member{topics: map[*topic]bool{}}
	for _, name := range topicNames {
		t, err := b.topic(name)
		if err != nil {
			return err
		}
		m.topics[t] = true
	}
	g, err := b.group(groupName)
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.members = append(g.members, m)
	g.notifyLocked()
	g.mu.Unlock()

	running := map[tp]bool{}
	exited := make(chan tp)
	var wg sync.WaitGroup
	stopping := false
	for {
		var candidates []tp
		if !stopping {
			for t := range m.topics {
				for p := range b.partitionCount(t) { // before g.mu: the lock order is b.mu, then g.mu
					candidates = append(candidates, tp{t, p})
				}
			}
		}
		g.mu.Lock()
		changed := g.changed
		var start []tp
		for _, k := range candidates {
			if !running[k] && g.desiredLocked(k) == m {
				start = append(start, k)
			}
		}
		g.mu.Unlock()
		for _, k := range start {
			running[k] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				b.work(g, m, k, h, cfg)
				exited <- k
			}()
		}
		if stopping && len(running) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			if !stopping {
				stopping = true
				g.mu.Lock()
				m.leaving = true // workers see they are no longer wanted, finish, commit
				g.notifyLocked()
				g.mu.Unlock()
			}
		case <-b.ctx.Done():
			if !stopping {
				stopping = true
				g.mu.Lock()
				m.leaving = true
				g.notifyLocked()
				g.mu.Unlock()
			}
		case k := <-exited:
			delete(running, k)
		case <-changed:
		}
	}
	wg.Wait()
	g.mu.Lock()
	for i, x := range g.members {
		if x == m {
			g.members = append(g.members[:i], g.members[i+1:]...)
			break
		}
	}
	g.notifyLocked()
	g.mu.Unlock()
	if ctx.Err() == nil && b.ctx.Err() != nil {
		return fmt.Errorf("embedded: subscription of %s: %w", groupName, bus.ErrClosed)
	}
	return nil
}

func (b *Bus) partitionCount(t *topic) int32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return t.partitions
}

// work consumes partition k for member m while m is its desired owner.
func (b *Bus) work(g *group, m *member, k tp, h bus.Handler, cfg bus.SubscribeConfig) {
	if !b.acquire(g, m, k) {
		return
	}
	defer func() {
		g.mu.Lock()
		delete(g.owner, k)
		g.notifyLocked()
		g.mu.Unlock()
	}()
	offset, err := b.startOffset(g.name, k, cfg.Start)
	if err != nil {
		return // the member's supervisor restarts the worker at the next change
	}
	// An offset commit is written by the log's writer with its next batch;
	// the worker goes on with the next batch meanwhile (a commit's fsync
	// used to stall every partition once per batch), with at most one
	// commit outstanding. Commits are also spaced: one at most every
	// commitEvery, the offset reached so far, and the last one when the
	// partition falls idle or is released — with one event in flight every
	// batch is a single record, and a commit per batch was a write
	// transaction of the log per event and group (about thirty per order).
	// A crash thus repeats at most commitEvery of batches, as Kafka's
	// auto-commit repeats a second's: delivery is at least once. The
	// worker commits what it handled and waits for that commit before
	// releasing the partition (the defers run last-in first-out), so the
	// next owner starts from it: hand-overs still neither skip nor repeat.
	var pending chan error
	settle := func() error {
		if pending == nil {
			return nil
		}
		err := <-pending
		pending = nil
		return err
	}
	committed := offset // the offset of the last commit handed to the writer
	var lastCommit time.Time
	commit := func() error {
		if err := settle(); err != nil {
			return err
		}
		if offset == committed {
			return nil
		}
		req := &writeReq{commit: &offsetCommit{group: g.name, topicID: k.t.id, partition: k.p, next: offset}, done: make(chan error, 1)}
		if err := b.enqueue(context.Background(), req); err != nil {
			return err
		}
		pending, committed, lastCommit = req.done, offset, time.Now()
		return nil
	}
	defer settle()
	defer commit()      // a failure leaves the batches to the next owner, at least once
	var due *time.Timer // the spaced commit of an idle partition
	defer func() {
		if due != nil {
			due.Stop()
		}
	}()
	wanted := func() (bool, <-chan struct{}) {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.desiredLocked(k) == m && b.ctx.Err() == nil, g.changed
	}
	for {
		ok, changed := wanted()
		if !ok {
			return
		}
		// Only query when the partition has messages past our offset; wait
		// for this partition's append signal otherwise.
		b.mu.Lock()
		appended, end := k.t.appended[k.p], k.t.next[k.p]
		b.mu.Unlock()
		if offset >= end {
			var dueC <-chan time.Time
			if offset != committed {
				wait := commitEvery - time.Since(lastCommit)
				if due == nil {
					due = time.NewTimer(wait)
				} else {
					due.Reset(wait)
				}
				dueC = due.C
			}
			select {
			case <-appended:
			case <-changed:
			case <-b.ctx.Done():
			case <-dueC:
				if err := commit(); err != nil {
					return // whoever owns the partition next sees the uncommitted batches again
				}
			}
			continue
		}
		batch, err := b.Read(b.ctx, k.t.name, k.p, offset, cfg.MaxBatch)
		if err != nil {
			return
		}
		if len(batch) == 0 { // offset below the log start after retention: skip ahead
			offset = end
			continue
		}
		if cfg.Linger > 0 && len(batch) < cfg.MaxBatch {
			if batch, ok = b.linger(k, batch, cfg, wanted); !ok {
				return // revoked, stopping or a failed read while lingering: left uncommitted
			}
		}
		if !b.handle(batch, h, cfg, wanted) {
			return // revoked or stopping while retrying: dropped uncommitted
		}
		offset = batch[len(batch)-1].Offset + 1
		if time.Since(lastCommit) >= commitEvery {
			if err := commit(); err != nil {
				return // the previous commit failed: whoever owns the partition next sees its batch again
			}
		}
	}
}

// commitEvery spaces a partition's offset commits (see work).
const commitEvery = 100 * time.Millisecond

// linger waits, for a batch of fewer than MaxBatch records, until MaxBatch
// records are there or cfg.Linger has passed since the first was appended
// (bus.Linger), and returns the batch read again if more came meanwhile.
// It reports false when the partition stops being wanted first, or the
// read fails.
func (b *Bus) linger(k tp, batch []*bus.Message, cfg bus.SubscribeConfig, wanted func() (bool, <-chan struct{})) ([]*bus.Message, bool) {
	from := batch[0].Offset
	wait := min(max(batch[0].Timestamp.Add(cfg.Linger).Sub(b.cfg.now()), 0), cfg.Linger)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for expired := false; ; {
		ok, changed := wanted()
		if !ok {
			return nil, false
		}
		b.mu.Lock()
		appended, end := k.t.appended[k.p], k.t.next[k.p]
		b.mu.Unlock()
		if expired || end-from >= int64(cfg.MaxBatch) {
			if end == batch[len(batch)-1].Offset+1 {
				return batch, true
			}
			more, err := b.Read(b.ctx, k.t.name, k.p, from, cfg.MaxBatch)
			if err != nil || len(more) == 0 || more[0].Offset != from {
				// A failed read, or retention deleted the batch's start
				// meanwhile: the worker reads again from its offset.
				return nil, false
			}
			return more, true
		}
		select {
		case <-timer.C:
			expired = true
		case <-appended:
		case <-changed:
		case <-b.ctx.Done():
		}
	}
}

// handle calls h until it succeeds, backing off between attempts. It gives
// up, reporting false, when the partition is no longer wanted.
func (b *Bus) handle(batch []*bus.Message, h bus.Handler, cfg bus.SubscribeConfig, wanted func() (bool, <-chan struct{})) bool {
	for attempt := 1; ; attempt++ {
		if err := h(b.ctx, batch); err == nil {
			return true
		}
		ok, changed := wanted()
		if !ok {
			return false
		}
		wait := time.NewTimer(cfg.Backoff(attempt))
		select {
		case <-wait.C:
		case <-changed: // re-check at once; an unrelated change only shortens this wait
		case <-b.ctx.Done():
		}
		wait.Stop()
		if ok, _ := wanted(); !ok {
			return false
		}
	}
}

// acquire waits until m may own k (its previous owner released it) and
// takes it; false if m stops being k's desired owner meanwhile.
func (b *Bus) acquire(g *group, m *member, k tp) bool {
	for {
		g.mu.Lock()
		if g.desiredLocked(k) != m || b.ctx.Err() != nil {
			g.mu.Unlock()
			return false
		}
		if g.owner[k] == nil {
			g.owner[k] = m
			g.mu.Unlock()
			return true
		}
		changed := g.changed
		g.mu.Unlock()
		select {
		case <-changed:
		case <-b.ctx.Done():
		}
	}
}

// startOffset is the group's committed offset of k, or the log's start or
// end when it has none.
func (b *Bus) startOffset(groupName string, k tp, start bus.StartPosition) (int64, error) {
	var next int64
	err := b.rdb.QueryRowContext(b.ctx, `SELECT next_offset FROM group_offsets WHERE grp = ? AND topic_id = ? AND partition = ?`,
		groupName, k.t.id, k.p).Scan(&next)
	switch {
	case err == nil:
		return next, nil
	case !errors.Is(err, sql.ErrNoRows):
		return 0, fmt.Errorf("embedded: committed offset of %s: %w", groupName, err)
	case start == bus.Latest:
		b.mu.Lock()
		defer b.mu.Unlock()
		return k.t.next[k.p], nil
	default:
		return 0, nil // Read starts at the log start when offset 0 was deleted
	}
}
