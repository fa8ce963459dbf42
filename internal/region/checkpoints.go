package region

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Checkpoint is one record of MirrorMaker 2's checkpoints topic
// (<source alias>.checkpoints.internal, on the target cluster): the
// group's committed offset on the source (Upstream) and where the same
// record is on the target (Downstream, rounded down to the last offset sync:
// a consumer resuming there re-reads up to offset.lag.max records).
type Checkpoint struct {
	Group      string
	Topic      string
	Partition  int32
	Upstream   int64
	Downstream int64
}

// CheckpointsTopic is the name of the checkpoints topic of replication from
// the cluster aliased source.
func CheckpointsTopic(source string) string { return source + ".checkpoints.internal" }

// decodeCheckpoint decodes Kafka's Checkpoint key (group, topic: int16
// length-prefixed strings; partition: int32) and value (int16 version 0,
// then int64 upstream offset, int64 downstream offset, string metadata), as
// org.apache.kafka.connect.mirror.Checkpoint serializes them.
func decodeCheckpoint(key, value []byte) (Checkpoint, error) {
	var c Checkpoint
	k := reader{b: key}
	c.Group, c.Topic, c.Partition = k.str(), k.str(), k.i32()
	v := reader{b: value}
	if version := v.i16(); version != 0 && v.err == nil {
		return c, fmt.Errorf("checkpoint version %d: only 0 is known", version)
	}
	c.Upstream, c.Downstream = v.i64(), v.i64()
	_ = v.str() // metadata
	if err := errors.Join(k.err, v.err); err != nil {
		return c, fmt.Errorf("checkpoint: %w", err)
	}
	return c, nil
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil || n < 0 || len(r.b) < n {
		if r.err == nil {
			r.err = errors.New("truncated")
		}
		return make([]byte, max(n, 0))
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) i16() int16 { return int16(binary.BigEndian.Uint16(r.take(2))) }
func (r *reader) i32() int32 { return int32(binary.BigEndian.Uint32(r.take(4))) }
func (r *reader) i64() int64 { return int64(binary.BigEndian.Uint64(r.take(8))) }
func (r *reader) str() string {
	n := r.i16()
	return string(r.take(int(n)))
}

// ReadCheckpoints reads the whole checkpoints topic of replication from
// source on the cluster cl talks to, and returns the last checkpoint of
// every group, topic and partition.
func ReadCheckpoints(ctx context.Context, cl *kgo.Client, source string) ([]Checkpoint, error) {
	topic := CheckpointsTopic(source)
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("region: %s: %w", topic, err)
	}
	parts := map[int32]kgo.Offset{}
	want := map[int32]int64{}
	var missing error
	ends.Each(func(o kadm.ListedOffset) {
		switch {
		case o.Err != nil:
			missing = o.Err
		case o.Offset > 0:
			parts[o.Partition] = kgo.NewOffset().AtStart()
			want[o.Partition] = o.Offset
		}
	})
	if errors.Is(missing, kerr.UnknownTopicOrPartition) {
		return nil, fmt.Errorf("region: no %s on this cluster: is MirrorMaker replicating from %s to it? (%w)", topic, source, missing)
	}
	if missing != nil {
		return nil, fmt.Errorf("region: %s: %w", topic, missing)
	}
	if len(parts) == 0 {
		return nil, nil
	}
	rd, err := kgo.NewClient(kgo.SeedBrokers(seeds(cl)...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
	if err != nil {
		return nil, fmt.Errorf("region: %w", err)
	}
	defer rd.Close()
	type key struct {
		group, topic string
		partition    int32
	}
	last := map[key]Checkpoint{}
	var order []key
	var bad error
	for len(want) > 0 {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("region: reading %s: %w", topic, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { bad = err })
		if bad != nil {
			return nil, fmt.Errorf("region: reading %s: %w", topic, bad)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset+1 >= want[r.Partition] {
				delete(want, r.Partition)
			}
			c, err := decodeCheckpoint(r.Key, r.Value)
			if err != nil {
				bad = err
				return
			}
			k := key{c.Group, c.Topic, c.Partition}
			if _, seen := last[k]; !seen {
				order = append(order, k)
			}
			last[k] = c
		})
		if bad != nil {
			return nil, fmt.Errorf("region: %s: %w", topic, bad)
		}
	}
	out := make([]Checkpoint, 0, len(order))
	for _, k := range order {
		out = append(out, last[k])
	}
	return out, nil
}
