// Package inbox makes a service's event handlers idempotent and batched:
// a batch of records from one partition is applied in one database
// transaction, and every event's id is recorded in that same transaction,
// so a redelivered or replayed event has no second effect.
package inbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Migration creates the table of processed event ids; services include it
// among their migrations.
const Migration = `
CREATE TABLE IF NOT EXISTS processed_events (
	event_id     TEXT PRIMARY KEY,
	event_type   TEXT NOT NULL,
	processed_at BIGINT NOT NULL
);`

// Func applies one event's effects through tx. It may write to the outbox
// with outbox.Emit(ctx, tx, source, e.Origin(), payloads…). An error
// rolls back the whole batch, which the bus redelivers.
type Func func(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p event.Payload) error

// Consumer is one service's consumer group: its handlers by event type.
type Consumer struct {
	Group    string
	DB       *sqldb.DB
	Handlers map[event.Type]Func
	Log      *slog.Logger
	// Committed, if set, is called after every batch that wrote (for
	// example to wake the service's outbox relay).
	Committed func()

	mu      sync.Mutex
	queue   []*pending
	leading bool
}

// pending is a batch waiting to be applied, and where its outcome goes.
type pending struct {
	batch []*bus.Message
	done  chan error
}

// Topics returns the topics the consumer's handlers need, each once.
func (c *Consumer) Topics() []string {
	seen := map[event.Topic]bool{}
	var ts []string
	for t := range c.Handlers {
		topic := event.TopicOf(t)
		if !seen[topic] {
			seen[topic] = true
			ts = append(ts, string(topic))
		}
	}
	return ts
}

// Handle is the consumer's bus.Handler. Records whose eventType header
// names no handler are skipped without decoding. A record that is not a
// valid envelope of a known type and version is logged and skipped (the
// dead-letter queue takes it over in the failure-handling layer).
//
// Batches of different partitions arriving while a transaction runs are
// combined into the next one (group commit): the database sees one
// transaction, and one fsync, for many partitions' batches. If a combined
// transaction fails, each batch is retried alone, so one failing batch
// does not fail the others.
func (c *Consumer) Handle(ctx context.Context, batch []*bus.Message) error {
	p := &pending{batch: batch, done: make(chan error, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, p)
	if c.leading {
		c.mu.Unlock()
		return <-p.done
	}
	c.leading = true
	c.mu.Unlock()
	// This caller leads: it applies what is queued, round after round,
	// until the queue is empty.
	for {
		c.mu.Lock()
		round := c.queue
		c.queue = nil
		if len(round) == 0 {
			c.leading = false
			c.mu.Unlock()
			break
		}
		c.mu.Unlock()
		err := c.apply(ctx, round)
		if err != nil && len(round) > 1 {
			for _, q := range round {
				q.done <- c.apply(ctx, []*pending{q})
			}
			continue
		}
		for _, q := range round {
			q.done <- err
		}
	}
	return <-p.done
}

// apply applies batches in one transaction.
func (c *Consumer) apply(ctx context.Context, batches []*pending) error {
	var msgs []*bus.Message
	for _, b := range batches {
		msgs = append(msgs, b.batch...)
	}
	wrote := false
	err := c.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		for _, m := range msgs {
			h, ok := c.Handlers[event.Type(m.Header(bus.HeaderEventType))]
			if !ok {
				continue
			}
			e, err := bus.DecodeEnvelope(m)
			var p event.Payload
			if err == nil {
				p, err = e.Payload()
			}
			if err != nil {
				c.Log.Error("undecodable event skipped", "group", c.Group, "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "error", err)
				continue
			}
			res, err := tx.Exec(ctx, `INSERT INTO processed_events (event_id, event_type, processed_at) VALUES (?, ?, ?) ON CONFLICT (event_id) DO NOTHING`,
				e.EventID, string(e.EventType), e.Timestamp.UnixMilli())
			if err != nil {
				return fmt.Errorf("inbox: record %s: %w", e.EventID, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				continue // processed before: a redelivery or replay
			}
			hctx := bus.ContextWithTrace(ctx, m)
			if err := h(hctx, tx, e, p); err != nil {
				return &HandlerError{Envelope: e, Err: err}
			}
			wrote = true
		}
		return nil
	})
	if err != nil {
		var he *HandlerError
		if errors.As(err, &he) {
			c.Log.Warn("event handler failed; batch will be redelivered", "group", c.Group, "eventType", he.Envelope.EventType,
				"eventId", he.Envelope.EventID, "correlationId", he.Envelope.CorrelationID, "error", he.Err)
		}
		return err
	}
	if wrote && c.Committed != nil {
		c.Committed()
	}
	return nil
}

// HandlerError says which event's handler failed.
type HandlerError struct {
	Envelope *event.Envelope
	Err      error
}

func (e *HandlerError) Error() string {
	return fmt.Sprintf("inbox: handle %s %s: %v", e.Envelope.EventType, e.Envelope.EventID, e.Err)
}

func (e *HandlerError) Unwrap() error { return e.Err }
