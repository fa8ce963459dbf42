package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/auth"
)

// sessionWatcher keeps a process's list of ended sessions (auth.Revocations)
// in step with the SessionsRevoked events of user-events, so that a logout,
// a password change, a deactivation or an admin's revocation on any
// instance ends the session on every instance, on both buses.
//
// It reads the topic directly (bus.Reader), outside any consumer group:
// every process must see every partition. At start it reads back one
// session lifetime (the refresh lifetime), which covers every revocation
// whose tokens could still be valid; then it follows the topic
// (bus.Follower): a revocation is applied as soon as it is durable on the
// bus, and an idle process asks nothing of the bus (Kafka's broker holds
// the follower's fetch; the embedded log wakes it on commit). Both drivers
// follow; a bus without Follow would be polled every sessionPoll.
// user-events is a low-volume topic (account changes only).
type sessionWatcher struct {
	bus    bus.Reader
	tokens *auth.Tokens
	log    *slog.Logger
	now    func() time.Time
	next   map[int32]int64 // per partition, the next offset to read
	since  time.Time       // when the last catch-up started

	// applied, if set, is signalled (without blocking) after every
	// message the follower applied: for tests.
	applied chan struct{}
}

// sessionPoll is how often the watcher polls a bus without Follow, and
// how soon it follows again after a failure: the longest time another
// instance then still accepts a revoked session's token.
const sessionPoll = 250 * time.Millisecond

// sessionSkew is how far before a catch-up's start the follower begins:
// records carry their producer's clock, which may lag this one. What it
// reads twice is applied twice, which is harmless.
const sessionSkew = time.Minute

// userTopic is where SessionsRevoked travels.
const userTopic = string(event.TopicUser)

// sessionReadBatch bounds one read of a partition.
const sessionReadBatch = 500

// catchUp positions the watcher one session lifetime back and reads up to
// the end of the log. A topic not created yet reads as empty.
func (w *sessionWatcher) catchUp(ctx context.Context) error {
	w.next = map[int32]int64{}
	w.since = w.now()
	offs, err := w.bus.OffsetAfter(ctx, userTopic, w.now().Add(-w.tokens.RefreshTTL()))
	if errors.Is(err, bus.ErrUnknownTopic) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	for _, o := range offs {
		w.next[o.Partition] = o.Start
	}
	return w.poll(ctx)
}

// catchUpWithin is how long a start keeps trying to catch up: a broker
// that has just died leaves partitions without a reachable leader until
// the cluster elects another (a failed try is logged and made again).
const catchUpWithin = 30 * time.Second

// catchUpRetrying is catchUp tried again, with growing pauses, until it
// succeeds, catchUpWithin passes or ctx ends.
func (w *sessionWatcher) catchUpRetrying(ctx context.Context) error {
	deadline := time.Now().Add(catchUpWithin)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		err := w.catchUp(ctx)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		w.log.Warn("sessions: catching up with the ended sessions; trying again", "error", err, "retryIn", wait.String())
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// poll reads what was appended to user-events since the last poll.
func (w *sessionWatcher) poll(ctx context.Context) error {
	offs, err := w.bus.Offsets(ctx, userTopic)
	if errors.Is(err, bus.ErrUnknownTopic) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	for _, o := range offs {
		from, ok := w.next[o.Partition]
		if !ok || from > o.End {
			// A partition added since start: all of it is new. Or the
			// topic was deleted and created again, its offsets starting
			// over: read it all (applying a revocation twice is harmless).
			from = o.Start
		}
		for from < o.End {
			msgs, err := w.bus.Read(ctx, userTopic, o.Partition, from, sessionReadBatch)
			if err != nil {
				return fmt.Errorf("sessions: %w", err)
			}
			if len(msgs) == 0 {
				break
			}
			for _, m := range msgs {
				w.apply(m)
				from = m.Offset + 1
			}
		}
		w.next[o.Partition] = from
	}
	return nil
}

// apply adds the revocation m carries, if it is one. Only SessionsRevoked
// is decoded: the type travels in a header.
func (w *sessionWatcher) apply(m *bus.Message) {
	if m.Header(eventmsg.HeaderEventType) != "SessionsRevoked" {
		return
	}
	e, err := eventmsg.Decode(m)
	var p event.Payload
	if err == nil {
		p, err = e.Payload()
	}
	if err != nil {
		w.log.Error("sessions: undecodable SessionsRevoked", "partition", m.Partition, "offset", m.Offset, "error", err)
		return
	}
	r, ok := p.(*event.SessionsRevoked)
	if !ok {
		return
	}
	w.tokens.EndSessions(r.UserID, r.SessionID, r.KeepSessionID, r.RevokedAt)
}

// run follows user-events until ctx ends, from where the catch-up
// started; on a bus without Follow it polls. A failed follow is logged and
// started again, from where the failed one started, after a pause that
// grows to a few seconds (a topic not created yet fails at once).
func (w *sessionWatcher) run(ctx context.Context) error {
	f, ok := w.bus.(bus.Follower)
	if !ok {
		return w.pollEvery(ctx, sessionPoll)
	}
	since := w.since.Add(-sessionSkew)
	for wait := sessionPoll; ; wait = min(2*wait, 5*time.Second) {
		start := w.now()
		err := f.Follow(ctx, userTopic, since, w.applyAll)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, bus.ErrUnknownTopic) {
			w.log.Warn("sessions: following revocations", "error", err, "retryIn", wait.String())
		}
		since = start.Add(-sessionSkew)
		if w.now().Sub(start) > time.Minute {
			wait = sessionPoll // it followed a while: a short pause again
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// applyAll applies the revocations among msgs.
func (w *sessionWatcher) applyAll(msgs []*bus.Message) {
	for _, m := range msgs {
		w.apply(m)
	}
	if w.applied != nil {
		select {
		case w.applied <- struct{}{}:
		default:
		}
	}
}

// pollEvery polls every interval until ctx ends. A failed poll is logged
// and tried again: the bus may be briefly unreachable.
func (w *sessionWatcher) pollEvery(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := w.poll(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("sessions: reading revocations", "error", err)
		}
	}
}
