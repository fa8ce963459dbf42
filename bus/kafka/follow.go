package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventmart/eventmart/bus"
)

// How a follower's client waits. The broker holds a fetch with nothing to
// return for followWait, so an idle follower sends one request per broker
// every followWait, and a message reaches it as soon as it is replicated
// (acks=all), not at the end of the wait. Partitions added to the topic
// are found at the next metadata refresh, every followMetadataAge.
const (
	followWait        = 10 * time.Second
	followMetadataAge = time.Minute
	followGone        = 2 * time.Second // see Follow
)

// follow would implement bus.Follower (it is not exported: a follower
// started on a just-created, empty topic of a new broker was seen to miss
// what was appended next, in CI; until that is understood the Kafka driver
// offers no Follow and the session watcher polls) with a client of its own consuming every
// partition of topic directly (no group), from the first offset at or
// after since; an offset out of range (the topic was deleted and created
// again) starts over the same way. Its own client, because its fetches
// wait at the broker: on the shared client they would hold up Read.
func (b *Bus) follow(ctx context.Context, topic string, since time.Time, h func([]*bus.Message)) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errClosed
	}
	b.subs.Add(1) // Close waits for followers as for subscriptions
	b.mu.Unlock()
	defer b.subs.Done()
	if err := b.checkTopics(ctx, []string{topic}); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	cl, err := kgo.NewClient(slices.Concat(b.base, []kgo.Opt{
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(max(since.UnixMilli(), 0))),
		kgo.FetchMaxWait(followWait),
		kgo.MetadataMaxAge(followMetadataAge),
	}, b.metricsOpts("follow:"+topic))...)
	if err != nil {
		return fmt.Errorf("kafka: follow %s: %w", topic, err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(b.ctx, cancel)()
	var goneSince time.Time // when fetches began to find the topic unknown
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			if b.ctx.Err() != nil {
				return errClosed
			}
			return nil
		}
		var gone error
		fs.EachError(func(t string, p int32, err error) {
			switch {
			case errors.Is(err, context.Canceled):
			case isUnknownTopic(err):
				gone = err
			default:
				// franz-go retries by itself (a leader move); keep
				// following.
				b.log.Warn("kafka: follow", "topic", t, "partition", p, "err", err)
			}
		})
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) > 0 {
				h(toMessages(p.Records))
			}
		})
		// A topic deleted (and perhaps created again, with a new topic id
		// this client would learn only at its next metadata refresh,
		// fetching in vain until then) fails the follow, so the caller
		// follows again with a fresh client; a topic just created may
		// be unknown to a broker for a moment, so only an error that
		// lasts followGone does.
		switch {
		case gone == nil:
			goneSince = time.Time{}
		case goneSince.IsZero():
			goneSince = time.Now()
		case time.Since(goneSince) > followGone:
			return unknownTopic("follow", topic, gone)
		}
	}
}
