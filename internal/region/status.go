package region

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
)

// Replication is what a region's Kafka cluster shows of the replication
// into it, read from the cluster alone: the role recorded there, whether
// MirrorMaker writes its heartbeats, and when it last wrote a checkpoint
// (consumer-group offsets translated) and an offset sync. `eventmart region
// status` prints it; GET /api/v1/admin/region (the console's Region tab)
// includes it.
type Replication struct {
	// Role is the role recorded in the cluster (Topic); nil: none was,
	// each process follows EVENTMART_REGION_ROLE.
	Role *State `json:"role"`
	// MirrorMaker is "running" (a heartbeat written within
	// RunningWithin), "stopped" (heartbeats, but none that recent) or
	// "absent" (no heartbeats topic: nothing replicates into this
	// cluster, as in a primary).
	MirrorMaker string `json:"mirrorMaker"`
	Heartbeats  *Tail  `json:"heartbeats"`
	// Checkpoints are MirrorMaker's <source alias>.checkpoints.internal
	// topics; OffsetSyncs its mm2-offset-syncs.<alias>.internal ones (on
	// this cluster: offset-syncs.topic.location=target).
	Checkpoints []Tail `json:"checkpoints"`
	OffsetSyncs []Tail `json:"offsetSyncs"`
}

// Tail is the newest end of one of MirrorMaker's topics.
type Tail struct {
	Topic   string `json:"topic"`
	Records int64  `json:"records"` // end offsets summed over its partitions
	// Last is the newest record's timestamp and AgeSeconds how long ago
	// that was when read; nil when the topic is empty.
	Last       *time.Time `json:"last,omitempty"`
	AgeSeconds *float64   `json:"ageSeconds,omitempty"`
}

// RunningWithin is how recent MirrorMaker's last heartbeat must be for it
// to count as running: it writes one a second (deploy/scripts/mirror.sh),
// and a switch waits this long without one before it goes on.
const RunningWithin = 3 * time.Second

// ReadReplication reads the replication state of the cluster cl talks to,
// at now. It lists the cluster's topics, their end offsets and newest
// timestamps (Kafka 3.0+), and the role record: a few requests, nothing
// consumed in a group.
func ReadReplication(ctx context.Context, cl *kgo.Client, now time.Time) (Replication, error) {
	rep := Replication{MirrorMaker: "absent", Checkpoints: []Tail{}, OffsetSyncs: []Tail{}}
	adm := kadm.NewClient(cl)
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return rep, fmt.Errorf("region: list topics: %w", err)
	}
	var names []string
	for _, name := range topics.Names() {
		if name == HeartbeatsTopic || isCheckpoints(name) || isOffsetSyncs(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if len(names) > 0 {
		ends, err := adm.ListEndOffsets(ctx, names...)
		if err != nil {
			return rep, fmt.Errorf("region: end offsets: %w", err)
		}
		newest, err := adm.ListMaxTimestampOffsets(ctx, names...)
		if err != nil {
			return rep, fmt.Errorf("region: newest records: %w", err)
		}
		for _, name := range names {
			t := Tail{Topic: name}
			var ms int64 = -1
			for _, o := range ends[name] {
				if o.Err == nil && o.Offset > 0 {
					t.Records += o.Offset
				}
			}
			for _, o := range newest[name] {
				if o.Err == nil && o.Offset >= 0 && o.Timestamp > ms {
					ms = o.Timestamp
				}
			}
			if ms >= 0 && t.Records > 0 {
				last := time.UnixMilli(ms).UTC()
				age := max(now.Sub(last).Seconds(), 0)
				t.Last, t.AgeSeconds = &last, &age
			}
			switch {
			case name == HeartbeatsTopic:
				rep.Heartbeats = &t
				rep.MirrorMaker = "stopped"
				if t.Last != nil && now.Sub(*t.Last) <= RunningWithin {
					rep.MirrorMaker = "running"
				}
			case isCheckpoints(name):
				rep.Checkpoints = append(rep.Checkpoints, t)
			default:
				rep.OffsetSyncs = append(rep.OffsetSyncs, t)
			}
		}
	}
	st, ok, err := CurrentRole(ctx, cl)
	if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
		return rep, err
	}
	if ok {
		rep.Role = &st
	}
	return rep, nil
}

func isCheckpoints(topic string) bool { return strings.HasSuffix(topic, ".checkpoints.internal") }

func isOffsetSyncs(topic string) bool {
	return strings.HasPrefix(topic, "mm2-offset-syncs.") && strings.HasSuffix(topic, ".internal")
}
