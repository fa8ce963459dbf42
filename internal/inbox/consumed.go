package inbox

import (
	"context"
	"fmt"
	"time"

	"github.com/eventmart/eventmart/bus"
)

// GroupLog is what ConsumedUntil needs of a bus: a group's lag and the
// records themselves. Every bus.Bus is one.
type GroupLog interface {
	bus.Reader
	Lag(ctx context.Context, group string, topics []string) ([]bus.PartitionLag, error)
}

// ConsumedUntil returns a time before which group has consumed every
// record of topics: handled it and committed its offset. A partition the
// group has read to its end counts up to now (read before the lag is
// asked); any other up to the timestamp of its first record the group has
// not committed. The result is the earliest over all partitions.
//
// It is the watermark that lets a timeout be sure nothing it waits for is
// already in the log unread: while the group lags, is rebalancing, or its
// partitions are still held by a member that died, the committed offsets
// stand still and so does the watermark. Records carry their producer's
// clock, so the watermark is as exact as the producers' clocks agree.
// Committed offsets trail the handlers (Kafka commits every second), which
// only makes it earlier.
func ConsumedUntil(ctx context.Context, b GroupLog, group string, topics []string, now func() time.Time) (time.Time, error) {
	until := now()
	lags, err := b.Lag(ctx, group, topics)
	if err != nil {
		return time.Time{}, fmt.Errorf("inbox: lag of %s: %w", group, err)
	}
	for _, l := range lags {
		if l.Lag <= 0 {
			continue
		}
		msgs, err := b.Read(ctx, l.Topic, l.Partition, max(l.Committed, 0), 1)
		if err != nil {
			return time.Time{}, fmt.Errorf("inbox: first record of %s/%d unread by %s: %w", l.Topic, l.Partition, group, err)
		}
		if len(msgs) > 0 && msgs[0].Timestamp.Before(until) {
			until = msgs[0].Timestamp
		}
	}
	return until, nil
}
