package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eventmart/eventmart/bus"
)

// Offsets implements bus.Reader with kadm's ListStartOffsets and
// ListEndOffsets (end is the high watermark: what every in-sync replica
// has).
func (b *Bus) Offsets(ctx context.Context, topic string) ([]bus.PartitionOffsets, error) {
	if err := b.alive(); err != nil {
		return nil, err
	}
	starts, err := b.listOffsets(ctx, topic, b.adm.ListStartOffsets)
	if err != nil {
		return nil, err
	}
	ends, err := b.listOffsets(ctx, topic, b.adm.ListEndOffsets)
	if err != nil {
		return nil, err
	}
	return pair(starts, ends), nil
}

// OffsetAfter implements bus.Reader with kadm's ListOffsetsAfterMilli; End
// is the partition's end offset, as from Offsets.
//
// The end offsets are listed first, and Start is never past them: where no
// message is at or after t, the broker answers -1 and kadm lists the end
// again, so a message appended between the two listings would be past the
// Start it gives (a follower starting there missed it). Start may instead
// be a message appended during the call and stamped before t.
func (b *Bus) OffsetAfter(ctx context.Context, topic string, t time.Time) ([]bus.PartitionOffsets, error) {
	if err := b.alive(); err != nil {
		return nil, err
	}
	ends, err := b.listOffsets(ctx, topic, b.adm.ListEndOffsets)
	if err != nil {
		return nil, err
	}
	// Negative timestamps mean "latest" and "earliest" to ListOffsets;
	// any time before 1970 is before every message.
	ms := max(t.UnixMilli(), 0)
	after, err := b.listOffsets(ctx, topic, func(ctx context.Context, topics ...string) (kadm.ListedOffsets, error) {
		return b.adm.ListOffsetsAfterMilli(ctx, ms, topics...)
	})
	if err != nil {
		return nil, err
	}
	for p, end := range ends {
		if o, ok := after[p]; !ok || o > end {
			after[p] = end
		}
	}
	return pair(after, ends), nil
}

type listFunc func(ctx context.Context, topics ...string) (kadm.ListedOffsets, error)

// listOffsets returns partition -> offset of topic as list finds them.
func (b *Bus) listOffsets(ctx context.Context, topic string, list listFunc) (map[int32]int64, error) {
	out, err := listOne(ctx, topic, list)
	if isUnknownTopic(err) {
		// kadm reads franz-go's metadata cache, which may still hold a
		// topic created in the last seconds as unknown: ask again once
		// the cache is refreshed.
		if _, merr := b.metadata(ctx, true, topic); merr == nil {
			out, err = listOne(ctx, topic, list)
		}
	}
	switch {
	case isUnknownTopic(err):
		return nil, unknownTopic("list offsets of", topic, err)
	case err != nil:
		return nil, fmt.Errorf("kafka: list offsets of %s: %w", topic, err)
	}
	return out, nil
}

func listOne(ctx context.Context, topic string, list listFunc) (map[int32]int64, error) {
	out, _, err := listTopics(ctx, []string{topic}, list)
	return out[topic], err
}

// listTopics returns topic -> partition -> offset of topics as list finds
// them, in one request per broker for all of them; on error, the topic it
// concerns.
func listTopics(ctx context.Context, topics []string, list listFunc) (map[string]map[int32]int64, string, error) {
	lo, err := list(ctx, topics...)
	if err != nil {
		return nil, "", err
	}
	out := make(map[string]map[int32]int64, len(topics))
	for _, topic := range topics {
		ps := lo[topic]
		if len(ps) == 0 {
			return nil, topic, kerr.UnknownTopicOrPartition
		}
		offs := make(map[int32]int64, len(ps))
		for p, o := range ps {
			if o.Err != nil {
				return nil, topic, o.Err
			}
			offs[p] = o.Offset
		}
		out[topic] = offs
	}
	return out, "", nil
}

// listMany is listOffsets of several topics at once.
func (b *Bus) listMany(ctx context.Context, topics []string, list listFunc) (map[string]map[int32]int64, error) {
	out, topic, err := listTopics(ctx, topics, list)
	if isUnknownTopic(err) {
		// As in listOffsets: the metadata cache may not know a topic
		// created in the last seconds yet.
		if _, merr := b.metadata(ctx, true, topics...); merr == nil {
			out, topic, err = listTopics(ctx, topics, list)
		}
	}
	switch {
	case isUnknownTopic(err):
		return nil, unknownTopic("list offsets of", topic, err)
	case err != nil:
		return nil, fmt.Errorf("kafka: list offsets of %s: %w", strings.Join(topics, ","), err)
	}
	return out, nil
}

// Ends implements bus.EndLister with one ListOffsets request per broker
// for all of topics.
func (b *Bus) Ends(ctx context.Context, topics []string) (map[string]map[int32]int64, error) {
	if err := b.alive(); err != nil {
		return nil, err
	}
	return b.listMany(ctx, topics, b.adm.ListEndOffsets)
}

func pair(starts, ends map[int32]int64) []bus.PartitionOffsets {
	out := make([]bus.PartitionOffsets, 0, len(ends))
	for p, end := range ends {
		out = append(out, bus.PartitionOffsets{Partition: p, Start: starts[p], End: end})
	}
	slices.SortFunc(out, func(a, b bus.PartitionOffsets) int { return int(a.Partition - b.Partition) })
	return out
}

// Read implements bus.Reader with plain Fetch requests to the partition's
// leader on the bus's client: no consumer, no extra connection, usually one
// round trip. It reads up to the high watermark of its first fetch, the end
// of the log when Read was called.
func (b *Bus) Read(ctx context.Context, topic string, partition int32, from int64, limit int) ([]*bus.Message, error) {
	if err := b.alive(); err != nil {
		return nil, err
	}
	var recs []*kgo.Record
	end := int64(-1) // unknown until the first fetch
	for tries := 0; len(recs) < limit && (end < 0 || from < end); {
		fp, err := b.fetch(ctx, topic, partition, from, limit-len(recs))
		var hint *fetchHint
		switch {
		case errors.As(err, &hint) && hint.retry && tries < 3:
			// The leader moved, or the topic was created a moment ago and
			// the cached metadata missed it: fetch again.
			tries++
			continue
		case errors.As(err, &hint) && hint.outOfRange && from < hint.logStart && tries < 3:
			tries++
			from = hint.logStart // deleted by retention: read from the start
			continue
		case errors.As(err, &hint) && hint.outOfRange:
			return toMessages(recs), nil // beyond the end
		case err != nil:
			return nil, err
		}
		if end < 0 {
			end = fp.HighWatermark
		}
		progressed := false
		for _, r := range fp.Records {
			if r.Offset < from {
				continue
			}
			if r.Offset >= end || len(recs) == limit {
				break
			}
			from, progressed = r.Offset+1, true
			if !r.Attrs.IsControl() { // transaction markers take offsets but are no messages
				recs = append(recs, r)
			}
		}
		if !progressed {
			break // nothing below end to read: compacted away or aborted
		}
	}
	return toMessages(recs), nil
}

// fetchHint is a fetch error that Read recovers from.
type fetchHint struct {
	err        error
	retry      bool  // refreshed metadata: try again
	outOfRange bool  // offset outside [logStart, high watermark]
	logStart   int64 // when outOfRange
}

func (h *fetchHint) Error() string { return h.err.Error() }
func (h *fetchHint) Unwrap() error { return h.err }

// fetch issues one Fetch request for topic's partition from offset from,
// sized for about n messages, to the partition's leader.
func (b *Bus) fetch(ctx context.Context, topic string, partition int32, from int64, n int) (kgo.FetchPartition, error) {
	meta, err := b.metadata(ctx, false, topic)
	if err != nil {
		return kgo.FetchPartition{}, fmt.Errorf("kafka: read %s: %w", topic, err)
	}
	m := meta[topic]
	if isUnknownTopic(m.err) {
		if fresh, ferr := b.metadata(ctx, true, topic); ferr == nil {
			m = fresh[topic]
		}
	}
	switch leader, ok := m.leaders[partition]; {
	case isUnknownTopic(m.err):
		return kgo.FetchPartition{}, unknownTopic("read", topic, m.err)
	case m.err != nil:
		return kgo.FetchPartition{}, fmt.Errorf("kafka: read %s: %w", topic, m.err)
	case !ok:
		return kgo.FetchPartition{}, fmt.Errorf("kafka: read %s: no partition %d", topic, partition)
	case leader < 0:
		return kgo.FetchPartition{}, b.refetch(ctx, topic, fmt.Errorf("kafka: read %s/%d: %w", topic, partition, kerr.LeaderNotAvailable))
	}

	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = 0 // answer with what there is: Read does not wait for new messages
	req.MaxBytes = 16 << 20
	req.SessionEpoch = -1 // no fetch session
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, m.id
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = partition
	rp.FetchOffset = from
	rp.CurrentLeaderEpoch = -1
	rp.LogStartOffset = -1
	// About 1 KiB a message, within 64 KiB..4 MiB; the broker returns at
	// least one whole batch whatever the limit.
	rp.PartitionMaxBytes = int32(min(max(int64(n)<<10, 64<<10), 4<<20))
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)

	resp, err := req.RequestWith(ctx, b.cl.Broker(int(m.leaders[partition])))
	if err != nil {
		return kgo.FetchPartition{}, fmt.Errorf("kafka: read %s/%d: %w", topic, partition, err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return kgo.FetchPartition{}, fmt.Errorf("kafka: read %s/%d: %w", topic, partition, err)
	}
	var part *kmsg.FetchResponseTopicPartition
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			if resp.Topics[i].Partitions[j].Partition == partition {
				part = &resp.Topics[i].Partitions[j]
			}
		}
	}
	if part == nil {
		return kgo.FetchPartition{}, fmt.Errorf("kafka: read %s/%d: no partition in fetch response", topic, partition)
	}
	fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
		KeepControlRecords: true, // so Read can step over them
		Offset:             from,
		Topic:              topic,
		Partition:          partition,
	}, part, decompressor, nil)
	switch err := fp.Err; {
	case err == nil:
		return fp, nil
	case errors.Is(err, kerr.OffsetOutOfRange):
		return fp, &fetchHint{err: err, outOfRange: true, logStart: part.LogStartOffset}
	case errors.Is(err, kerr.NotLeaderForPartition), errors.Is(err, kerr.FencedLeaderEpoch),
		errors.Is(err, kerr.UnknownLeaderEpoch), errors.Is(err, kerr.LeaderNotAvailable),
		errors.Is(err, kerr.UnknownTopicID), errors.Is(err, kerr.UnknownTopicOrPartition):
		return fp, b.refetch(ctx, topic, fmt.Errorf("kafka: read %s/%d: %w", topic, partition, err))
	default:
		return fp, fmt.Errorf("kafka: read %s/%d: %w", topic, partition, err)
	}
}

// refetch refreshes topic's metadata and returns err as a hint to retry.
func (b *Bus) refetch(ctx context.Context, topic string, err error) error {
	if _, merr := b.metadata(ctx, true, topic); merr != nil {
		return err
	}
	return &fetchHint{err: err, retry: true}
}

var decompressor = kgo.DefaultDecompressor()

// toMessages converts records to messages with two allocations in all.
func toMessages(recs []*kgo.Record) []*bus.Message {
	ms := make([]bus.Message, len(recs))
	out := make([]*bus.Message, len(recs))
	for i, r := range recs {
		ms[i] = bus.Message{
			Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: busHeaders(r.Headers),
			Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp,
		}
		out[i] = &ms[i]
	}
	return out
}

// Lag implements bus.Admin with kadm: the group's committed offsets
// (OffsetFetch) against each partition's start and end offsets. Topics are
// looked up first, so an unknown one fails with bus.ErrUnknownTopic; a
// group coordinator still being elected (a fresh broker) is waited for
// until ctx ends.
func (b *Bus) Lag(ctx context.Context, group string, topics []string) ([]bus.PartitionLag, error) {
	if err := b.alive(); err != nil {
		return nil, err
	}
	// The offsets of all topics in two requests (per broker), not two per
	// topic: every process's console asks every group's lag every 10s.
	offsets := make([][]bus.PartitionOffsets, len(topics))
	if len(topics) > 0 {
		starts, err := b.listMany(ctx, topics, b.adm.ListStartOffsets)
		if err != nil {
			return nil, err
		}
		ends, err := b.listMany(ctx, topics, b.adm.ListEndOffsets)
		if err != nil {
			return nil, err
		}
		for i, topic := range topics {
			offsets[i] = pair(starts[topic], ends[topic])
		}
	}
	var committed kadm.OffsetResponses
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		var err error
		committed, err = b.adm.FetchOffsets(ctx, group)
		if err == nil {
			break
		}
		if !kerr.IsRetriable(err) {
			return nil, fmt.Errorf("kafka: committed offsets of %s: %w", group, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("kafka: committed offsets of %s: %w (%w)", group, err, ctx.Err())
		case <-time.After(wait):
		}
	}
	var out []bus.PartitionLag
	for i, topic := range topics {
		for _, o := range offsets[i] {
			l := bus.PartitionLag{Topic: topic, Partition: o.Partition, Committed: -1, End: o.End}
			if c, ok := committed.Lookup(topic, o.Partition); ok && c.Err == nil && c.At >= 0 {
				l.Committed = c.At
			}
			l.Lag = o.End - max(l.Committed, o.Start)
			out = append(out, l)
		}
	}
	bus.SortLag(out)
	return out, nil
}
