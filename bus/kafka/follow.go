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
// are looked for every followMetadataAge.
const (
	followWait        = 10 * time.Second
	followMetadataAge = time.Minute
	followGone        = 2 * time.Second // see Follow
)

var _ bus.Follower = (*Bus)(nil)

// Follow implements bus.Follower with a client of its own consuming every
// partition of topic directly (no group). Its own client, because its
// fetches wait at the broker: on the shared client they would hold up Read.
//
// It positions itself with OffsetAfter and consumes from those exact
// offsets, rather than leaving it to franz-go's reset offset
// (AfterMilli(since)): where nothing is at or after since (an empty
// topic), that takes the end from a second listing, and a message appended
// between the two was skipped. Partitions added later are followed from
// their start; an offset out of range (the topic was deleted and created
// again) starts over from since.
func (b *Bus) Follow(ctx context.Context, topic string, since time.Time, h func([]*bus.Message)) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errClosed
	}
	b.subs.Add(1) // Close waits for followers as for subscriptions
	b.mu.Unlock()
	defer b.subs.Done()
	starts, err := b.OffsetAfter(ctx, topic, since)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("kafka: follow %s: %w", topic, err)
	}
	offsets := make(map[int32]kgo.Offset, len(starts))
	for _, p := range starts {
		offsets[p.Partition] = kgo.NewOffset().At(p.Start)
	}
	cl, err := kgo.NewClient(slices.Concat(b.base, []kgo.Opt{
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
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
	grown := make(chan struct{})
	go func() {
		defer close(grown)
		b.followNewPartitions(ctx, cl, topic, int32(len(starts)))
	}()
	defer func() { cancel(); <-grown }() // before cl.Close
	var goneSince time.Time              // when fetches began to find the topic unknown
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

// followNewPartitions adds to cl, from their start, the partitions of topic
// from known on that appear, looking every followMetadataAge until ctx
// ends. Everything in them was appended after the follower started.
func (b *Bus) followNewPartitions(ctx context.Context, cl *kgo.Client, topic string, known int32) {
	tick := time.NewTicker(followMetadataAge)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		meta, err := b.metadata(ctx, true, topic)
		if err != nil || meta[topic].err != nil {
			continue // the fetches report a topic gone; anything else passes
		}
		n := int32(len(meta[topic].leaders))
		if n <= known {
			continue
		}
		added := make(map[int32]kgo.Offset, n-known)
		for p := known; p < n; p++ {
			added[p] = kgo.NewOffset().AtStart()
		}
		cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: added})
		known = n
	}
}
