package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventmart/eventmart/bus"
)

// Publish implements bus.Publisher on the bus's one producer client: all
// msgs are handed to the client at once, so they share produce requests,
// and Publish waits until every one is acknowledged by all in-sync
// replicas.
//
// If ctx ends first, Publish returns ctx.Err() at once. Records the client
// had already sent may still be written, as the contract allows; until they
// are, the client may still read their Key, Value and Headers, so do
// not modify those after a cancelled Publish.
func (b *Bus) Publish(ctx context.Context, msgs ...*bus.Message) error {
	if err := b.alive(); err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	recs := toRecords(msgs)

	var res kgo.ProduceResults
	if ctx.Done() == nil {
		res = b.cl.ProduceSync(ctx, recs...)
	} else {
		// ProduceSync waits for records in flight even when ctx ends (the
		// idempotent producer cannot abandon them); the contract wants
		// Publish to return on cancellation.
		done := make(chan kgo.ProduceResults, 1)
		go func() { done <- b.cl.ProduceSync(ctx, recs...) }()
		select {
		case res = <-done:
		case <-ctx.Done():
			return fmt.Errorf("kafka: publish: %w", ctx.Err())
		}
	}
	for _, r := range res {
		if r.Err != nil {
			return publishErr(r.Record.Topic, r.Err)
		}
	}
	for i, m := range msgs {
		// Timestamp: the client stamps records (in milliseconds, Kafka's
		// precision) before sending, and topics keep that time
		// (message.timestamp.type=CreateTime, see createTopics), so
		// consumers see the very same timestamp.
		m.Partition, m.Offset, m.Timestamp = recs[i].Partition, recs[i].Offset, recs[i].Timestamp
	}
	return nil
}

// toRecords maps messages to records 1:1, with two allocations in all:
// Publish sits on every service's hot path.
func toRecords(msgs []*bus.Message) []*kgo.Record {
	recs := make([]kgo.Record, len(msgs))
	ptrs := make([]*kgo.Record, len(msgs))
	for i, m := range msgs {
		recs[i] = kgo.Record{Topic: m.Topic, Key: m.Key, Value: m.Value, Headers: kgoHeaders(m.Headers)}
		ptrs[i] = &recs[i]
	}
	return ptrs
}

func publishErr(topic string, err error) error {
	switch {
	case isUnknownTopic(err):
		return unknownTopic("publish to", topic, err)
	case errors.Is(err, kgo.ErrClientClosed):
		return errClosed
	default:
		return fmt.Errorf("kafka: publish to %s: %w", topic, err)
	}
}
