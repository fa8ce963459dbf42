package embedded

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/eventmart/eventmart/bus"
)

// followBatch bounds one read of a followed partition.
const followBatch = 500

var _ bus.Follower = (*Bus)(nil)

// Follow implements bus.Follower. Between reads it waits for the topic's
// append signal, which the writer gives on every commit to the topic (and
// EnsureTopics when it adds partitions): no polling, no query while idle.
func (b *Bus) Follow(ctx context.Context, topicName string, since time.Time, h func([]*bus.Message)) error {
	t, err := b.topic(topicName)
	if err != nil {
		return err
	}
	offs, err := b.OffsetAfter(ctx, topicName, since)
	if err != nil {
		return err
	}
	var pos []int64 // next offset to read, per partition
	for _, o := range offs {
		pos = append(pos, o.Start)
	}
	for {
		b.mu.Lock()
		grown := t.grown
		ends := slices.Clone(t.next)
		b.mu.Unlock()
		for len(pos) < len(ends) {
			pos = append(pos, 0) // a partition added since: all of it is new
		}
		for p, end := range ends {
			for pos[p] < end {
				msgs, err := b.Read(ctx, topicName, int32(p), pos[p], followBatch)
				switch {
				case ctx.Err() != nil:
					return nil
				case err != nil:
					return fmt.Errorf("embedded: follow %s: %w", topicName, err)
				case len(msgs) == 0:
					pos[p] = end // deleted by retention meanwhile
					continue
				}
				h(msgs)
				pos[p] = msgs[len(msgs)-1].Offset + 1
			}
		}
		select {
		case <-grown:
		case <-ctx.Done():
			return nil
		case <-b.ctx.Done():
			return fmt.Errorf("embedded: follow %s: %w", topicName, bus.ErrClosed)
		}
	}
}
