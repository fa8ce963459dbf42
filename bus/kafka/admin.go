package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eventmart/eventmart/bus"
)

// topicMeta is what a metadata response says about one topic.
type topicMeta struct {
	id       [16]byte
	leaders  map[int32]int32 // partition -> leader broker id, -1 for none
	internal bool
	err      error
}

// metadata returns the metadata of the named topics, or of all topics if
// none is named; a topic the broker does not know has an unknown-topic err.
//
// With fresh it asks a broker. Otherwise it may answer from franz-go's
// cache, which keeps topics (also "unknown") for MetadataMinAge, 5 s: fine
// for reads, wrong right after a topic was created or grown. A fresh answer
// also refreshes that cache, which kadm's calls read.
func (b *Bus) metadata(ctx context.Context, fresh bool, topics ...string) (map[string]topicMeta, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	var resp *kmsg.MetadataResponse
	var err error
	if fresh {
		resp, err = req.RequestWith(ctx, b.cl)
	} else {
		resp, err = b.cl.RequestCachedMetadata(ctx, req, 0)
	}
	if err != nil {
		return nil, err
	}
	out := make(map[string]topicMeta, len(resp.Topics))
	for _, t := range resp.Topics {
		if t.Topic == nil {
			continue
		}
		m := topicMeta{id: t.TopicID, internal: t.IsInternal, err: kerr.ErrorForCode(t.ErrorCode), leaders: make(map[int32]int32, len(t.Partitions))}
		for _, p := range t.Partitions {
			m.leaders[p.Partition] = p.Leader
		}
		out[*t.Topic] = m
	}
	for _, t := range topics {
		if _, ok := out[t]; !ok {
			out[t] = topicMeta{err: kerr.UnknownTopicOrPartition}
		}
	}
	return out, nil
}

// checkTopics returns an error wrapping bus.ErrUnknownTopic unless every
// topic exists.
func (b *Bus) checkTopics(ctx context.Context, topics []string) error {
	meta, err := b.metadata(ctx, true, topics...)
	if err != nil {
		return fmt.Errorf("kafka: describe topics: %w", err)
	}
	for _, t := range topics {
		if err := meta[t].err; isUnknownTopic(err) {
			return unknownTopic("subscribe to", t, err)
		} else if err != nil {
			return fmt.Errorf("kafka: subscribe to %s: %w", t, err)
		}
	}
	return nil
}

// EnsureTopics implements bus.Admin with kadm. Topics are created with the
// ReplicationFactor and MinInsyncReplicas options; only partitions and
// retention.ms of existing topics are brought in line. A topic with more
// partitions than asked reports "drift" (its retention is still updated,
// and said so in Detail). When partitions and retention both change, the
// action is "partitions increased" and Detail names both.
//
// EnsureTopics returns once brokers' metadata shows the created or grown
// topics, so a Publish right after uses every partition.
func (b *Bus) EnsureTopics(ctx context.Context, want []bus.TopicConfig) ([]bus.TopicChange, error) {
	if err := b.alive(); err != nil {
		return nil, err
	}
	if len(want) == 0 {
		return nil, nil
	}
	names := make([]string, len(want))
	for i, w := range want {
		if w.Name == "" || w.Partitions < 1 {
			return nil, fmt.Errorf("kafka: topic %q: want a name and at least 1 partition, got %d", w.Name, w.Partitions)
		}
		if slices.Contains(names[:i], w.Name) {
			return nil, fmt.Errorf("kafka: topic %s named twice", w.Name)
		}
		names[i] = w.Name
	}
	meta, err := b.metadata(ctx, true, names...)
	if err != nil {
		return nil, fmt.Errorf("kafka: describe topics: %w", err)
	}
	changes := make([]bus.TopicChange, len(want))
	var missing []int
	for i, w := range want {
		changes[i].Topic = w.Name
		if err := meta[w.Name].err; isUnknownTopic(err) {
			missing = append(missing, i)
		} else if err != nil {
			return nil, fmt.Errorf("kafka: describe topic %s: %w", w.Name, err)
		}
	}

	existed, err := b.createTopics(ctx, want, missing, changes)
	if err != nil {
		return nil, err
	}
	if len(existed) > 0 {
		// Created by someone else since we looked: treat them as existing.
		more, err := b.metadata(ctx, true, existed...)
		if err != nil {
			return nil, fmt.Errorf("kafka: describe topics: %w", err)
		}
		for t, m := range more {
			if m.err != nil {
				return nil, fmt.Errorf("kafka: topic %s, created concurrently, is not usable yet: %w", t, m.err)
			}
			meta[t] = m
		}
	}

	var existing []string
	for i, w := range want {
		if changes[i].Action == "" {
			existing = append(existing, w.Name)
		}
	}
	retention, err := b.retentions(ctx, existing...)
	if err != nil {
		return nil, err
	}
	rets := map[string]int64{} // retentions altered
	for i, w := range want {
		if changes[i].Action != "" {
			continue
		}
		altered, err := b.alterTopic(ctx, w, int32(len(meta[w.Name].leaders)), retention[w.Name], &changes[i])
		if err != nil {
			return nil, err
		}
		if altered {
			rets[w.Name] = retentionMillis(w.Retention)
		}
	}

	parts := map[string]int32{} // topics created or grown
	for i, w := range want {
		if a := changes[i].Action; a == "created" || a == "partitions increased" {
			parts[w.Name] = w.Partitions
		}
	}
	if err := b.awaitApplied(ctx, parts, rets); err != nil {
		return nil, err
	}
	return changes, nil
}

// createTopics creates the topics want[i] for i in missing, setting their
// changes. It returns the topics that turned out to exist already.
func (b *Bus) createTopics(ctx context.Context, want []bus.TopicConfig, missing []int, changes []bus.TopicChange) (existed []string, err error) {
	// One CreateTopics request per distinct partition count and retention.
	type shape struct {
		partitions int32
		retention  int64
	}
	groups := map[shape][]int{}
	for _, i := range missing {
		s := shape{want[i].Partitions, retentionMillis(want[i].Retention)}
		groups[s] = append(groups[s], i)
	}
	for s, idx := range groups {
		configs := map[string]*string{
			"retention.ms": kmsg.StringPtr(strconv.FormatInt(s.retention, 10)),
			// Keep the producer's timestamp whatever the broker default:
			// Publish reports it as the message's Timestamp.
			"message.timestamp.type": kmsg.StringPtr("CreateTime"),
		}
		if b.cfg.minISR > 0 {
			configs["min.insync.replicas"] = kmsg.StringPtr(strconv.Itoa(b.cfg.minISR))
		}
		names := make([]string, len(idx))
		for j, i := range idx {
			names[j] = want[i].Name
		}
		resp, err := b.adm.CreateTopics(ctx, s.partitions, b.cfg.replicationFactor, configs, names...)
		if err != nil {
			return nil, fmt.Errorf("kafka: create topics %s: %w", strings.Join(names, ", "), err)
		}
		for _, i := range idx {
			r, err := resp.On(want[i].Name, nil)
			if err == nil {
				err = r.Err
			}
			switch {
			case errors.Is(err, kerr.TopicAlreadyExists):
				existed = append(existed, want[i].Name)
			case err != nil:
				return nil, fmt.Errorf("kafka: create topic %s: %w%s", want[i].Name, err, errMessage(r.ErrMessage))
			default:
				changes[i].Action = "created"
				changes[i].Detail = fmt.Sprintf("%d partitions, retention %s", s.partitions, retentionString(s.retention))
			}
		}
	}
	return existed, nil
}

// alterTopic brings an existing topic with have partitions and haveRet
// retention.ms to w, recording what it did in ch. It reports whether it
// altered the retention.
func (b *Bus) alterTopic(ctx context.Context, w bus.TopicConfig, have int32, haveRet int64, ch *bus.TopicChange) (retAltered bool, err error) {
	var details []string
	ch.Action = "unchanged"
	switch {
	case have > w.Partitions:
		ch.Action = "drift"
		details = append(details, fmt.Sprintf("has %d partitions, want %d: partitions are never shrunk", have, w.Partitions))
	case have < w.Partitions:
		resp, err := b.adm.UpdatePartitions(ctx, int(w.Partitions), w.Name)
		if err == nil {
			var r kadm.CreatePartitionsResponse
			r, err = resp.On(w.Name, nil)
			if err == nil && r.Err != nil {
				err = fmt.Errorf("%w%s", r.Err, errMessage(r.ErrMessage))
			}
		}
		if err != nil {
			return false, fmt.Errorf("kafka: add partitions to %s: %w", w.Name, err)
		}
		ch.Action = "partitions increased"
		details = append(details, fmt.Sprintf("%d -> %d", have, w.Partitions))
	}
	if wantRet := retentionMillis(w.Retention); wantRet != haveRet {
		v := strconv.FormatInt(wantRet, 10)
		resp, err := b.adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &v}}, w.Name)
		if err == nil {
			var r kadm.AlterConfigsResponse
			r, err = resp.On(w.Name, nil)
			if err == nil && r.Err != nil {
				err = fmt.Errorf("%w%s", r.Err, errMessage(r.ErrMessage))
			}
		}
		if err != nil {
			return false, fmt.Errorf("kafka: set retention of %s: %w", w.Name, err)
		}
		retAltered = true
		if ch.Action == "unchanged" {
			ch.Action = "retention updated"
		}
		details = append(details, fmt.Sprintf("retention %s -> %s", retentionString(haveRet), retentionString(wantRet)))
	}
	ch.Detail = strings.Join(details, "; ")
	return retAltered, nil
}

// awaitApplied waits until a broker shows each topic in parts with its
// partitions, all with a leader, and each topic in rets with its
// retention.ms. Kafka answers CreateTopics, CreatePartitions and
// IncrementalAlterConfigs once the controller has decided, before brokers
// know: a Publish in between would fail with an unknown topic or pick a
// partition among too few, and Topics would show the old retention.
func (b *Bus) awaitApplied(ctx context.Context, parts map[string]int32, rets map[string]int64) error {
	if len(parts) == 0 && len(rets) == 0 {
		return nil
	}
	ready := func() (bool, error) {
		if len(parts) > 0 {
			meta, err := b.metadata(ctx, true, slices.Collect(maps.Keys(parts))...)
			if err != nil {
				return false, fmt.Errorf("kafka: describe topics: %w", err)
			}
			for t, n := range parts {
				m := meta[t]
				if m.err != nil || int32(len(m.leaders)) < n {
					return false, nil
				}
				for _, l := range m.leaders {
					if l < 0 {
						return false, nil
					}
				}
			}
		}
		if len(rets) > 0 {
			have, err := b.retentions(ctx, slices.Collect(maps.Keys(rets))...)
			if err != nil {
				return false, err
			}
			for t, ms := range rets {
				if have[t] != ms {
					return false, nil
				}
			}
		}
		return true, nil
	}
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		ok, err := ready()
		if err != nil {
			return err
		}
		if ok {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("kafka: waiting for brokers to apply topic changes: %w", ctx.Err())
		case <-t.C:
		}
	}
	return b.awaitProducerView(ctx, parts)
}

// awaitProducerView returns once the producer's own view of each grown
// topic it already knew shows the new partition count, so a Publish right
// after routes keys over every partition. Its view is refreshed
// asynchronously (ForceMetadataRefresh only asks); a topic it never
// produced to is loaded fresh at its first Publish.
func (b *Bus) awaitProducerView(ctx context.Context, parts map[string]int32) error {
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		stale := false
		for t, n := range parts {
			if known, _, _ := b.cl.PartitionLeader(t, 0); known < 0 {
				continue
			}
			if last, _, _ := b.cl.PartitionLeader(t, n-1); last < 0 {
				stale = true
			}
		}
		if !stale {
			return nil
		}
		b.cl.ForceMetadataRefresh()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("kafka: waiting for the producer to see grown topics: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// retentions returns retention.ms of each topic.
func (b *Bus) retentions(ctx context.Context, topics ...string) (map[string]int64, error) {
	out := make(map[string]int64, len(topics))
	if len(topics) == 0 {
		return out, nil
	}
	rcs, err := b.adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("kafka: describe topic configs: %w", err)
	}
	for _, t := range topics {
		rc, err := rcs.On(t, nil)
		if err == nil {
			err = rc.Err
		}
		if err != nil {
			return nil, fmt.Errorf("kafka: describe config of %s: %w", t, err)
		}
		i := slices.IndexFunc(rc.Configs, func(c kadm.Config) bool { return c.Key == "retention.ms" })
		if i < 0 {
			return nil, fmt.Errorf("kafka: topic %s has no retention.ms", t)
		}
		ms, err := strconv.ParseInt(rc.Configs[i].MaybeValue(), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("kafka: topic %s: retention.ms: %w", t, err)
		}
		out[t] = ms
	}
	return out, nil
}

// Topics implements bus.Admin: every topic but Kafka's internal ones
// (names starting with "__"), with its partitions and retention.ms.
func (b *Bus) Topics(ctx context.Context) ([]bus.TopicConfig, error) {
	if err := b.alive(); err != nil {
		return nil, err
	}
	meta, err := b.metadata(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("kafka: list topics: %w", err)
	}
	var names []string
	for t, m := range meta {
		if m.err == nil && !m.internal && !strings.HasPrefix(t, "__") {
			names = append(names, t)
		}
	}
	ret, err := b.retentions(ctx, names...)
	if err != nil {
		return nil, err
	}
	out := make([]bus.TopicConfig, 0, len(names))
	for _, t := range names {
		r := time.Duration(ret[t]) * time.Millisecond
		if ret[t] < 0 {
			r = 0
		}
		out = append(out, bus.TopicConfig{Name: t, Partitions: int32(len(meta[t].leaders)), Retention: r})
	}
	slices.SortFunc(out, func(a, b bus.TopicConfig) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// retentionMillis is retention.ms for a bus retention: -1 keeps forever.
func retentionMillis(d time.Duration) int64 {
	if d <= 0 {
		return -1
	}
	return max(d.Milliseconds(), 1)
}

func retentionString(ms int64) string {
	if ms < 0 {
		return "forever"
	}
	return (time.Duration(ms) * time.Millisecond).String()
}

func errMessage(m string) string {
	if m == "" {
		return ""
	}
	return ": " + m
}

// Health asks a broker for the metadata of every topic and counts brokers,
// under-replicated and offline partitions: one metadata request.
func (b *Bus) Health(ctx context.Context) (bus.ClusterHealth, error) {
	if err := b.alive(); err != nil {
		return bus.ClusterHealth{}, err
	}
	md, err := b.adm.Metadata(ctx)
	if err != nil {
		return bus.ClusterHealth{}, fmt.Errorf("kafka: cluster metadata: %w", err)
	}
	h := bus.ClusterHealth{Brokers: len(md.Brokers)}
	for _, t := range md.Topics {
		for _, p := range t.Partitions {
			h.Partitions++
			if len(p.ISR) < len(p.Replicas) {
				h.UnderReplicatedPartitions++
			}
			if p.Leader < 0 {
				h.OfflinePartitions++
			}
		}
	}
	return h, nil
}
