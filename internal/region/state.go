// Package region is cross-region replication's control plane: the role a
// region's Kafka cluster says its Eventmart has (primary or standby, kept in
// a topic of that cluster, so every process of the region reads the same),
// MirrorMaker 2's checkpoints decoded, and the steps of a failover and a
// failback (docs/regions.md).
package region

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Topic holds a region's role: one partition, the last record wins. Its
// name is outside MirrorMaker's replicated set (*-events), so each region
// keeps its own.
const Topic = "eventmart-region"

// Role is what a region's Eventmart does.
type Role string

const (
	// Primary accepts writes and runs every service's consumers and
	// background work.
	Primary Role = "primary"
	// Standby builds the read models it can from the replicated topics and
	// serves reads; writes are refused until it is promoted.
	Standby Role = "standby"
)

// ParseRole parses EVENTMART_REGION_ROLE.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case Primary, Standby:
		return r, nil
	}
	return "", fmt.Errorf("region role %q: want primary or standby", s)
}

// State is one record of Topic.
type State struct {
	Role Role      `json:"role"`
	At   time.Time `json:"at"`
	By   string    `json:"by"` // what set it, e.g. "eventmart region failover"
}

// SetRole records st as the role of the cluster cl talks to, creating Topic
// if missing; it returns once the record is acknowledged by every in-sync
// replica. Setting the role it already has writes it again: harmless.
func SetRole(ctx context.Context, cl *kgo.Client, st State) error {
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"retention.ms": ptr("-1")}, Topic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("region: create %s: %w", Topic, err)
	}
	if resp.Err != nil && !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("region: create %s: %w", Topic, resp.Err)
	}
	v, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("region: %w", err)
	}
	// A topic just created may not be known to the partition's leader for
	// a moment: retried until ctx ends.
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		err = cl.ProduceSync(ctx, &kgo.Record{Topic: Topic, Key: []byte("role"), Value: v}).FirstErr()
		if err == nil || ctx.Err() != nil || !kerr.IsRetriable(err) && !errors.Is(err, kerr.UnknownTopicOrPartition) {
			break
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
	if err != nil {
		return fmt.Errorf("region: set role %s: %w", st.Role, err)
	}
	return nil
}

// How Watch waits. A fetch returns as soon as a role is recorded, so the
// broker may hold it long: an idle watch then costs one request per
// watchWait. A missing topic is looked for every watchMissing (franz-go
// refreshes metadata that often while a consumed topic is unknown): the
// topic is created with the others by eventmart topics apply, so that is
// only until then.
const (
	watchWait    = 10 * time.Second
	watchMissing = time.Second
)

// Watch reads Topic of the cluster at brokers from its start until ctx
// ends, calling fn with the role recorded last when it started (the
// backlog: a history of switches is not replayed, which would promote a
// starting standby, then demote it) and then with each state recorded
// after, in order; a missing topic is waited for. The client's errors are
// retried (a region whose broker is down keeps its last known role).
func Watch(ctx context.Context, brokers []string, fn func(State)) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID("eventmart-region-watch"),
		kgo.ConsumeTopics(Topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.MetadataMinAge(watchMissing), kgo.FetchMaxWait(watchWait))
	if err != nil {
		return fmt.Errorf("region: watch: %w", err)
	}
	defer cl.Close()
	// Records before backlog are the history: only the last state among
	// them is applied, once the last of them is read. Unknown (the broker
	// down at start): every record is applied.
	var backlog int64
	if ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, Topic); err == nil {
		if o, ok := ends.Lookup(Topic, 0); ok && o.Err == nil {
			backlog = o.Offset
		}
	}
	var last *State
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachRecord(func(r *kgo.Record) {
			var st State
			if json.Unmarshal(r.Value, &st) == nil && (st.Role == Primary || st.Role == Standby) {
				last = &st
			}
			if r.Offset+1 < backlog || last == nil {
				return
			}
			fn(*last)
			last = nil
		})
	}
}

// CurrentRole reads the last role recorded in the cluster cl talks to;
// ok is false when none was.
func CurrentRole(ctx context.Context, cl *kgo.Client) (st State, ok bool, err error) {
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, Topic)
	if err != nil {
		return st, false, fmt.Errorf("region: %w", err)
	}
	o, found := ends.Lookup(Topic, 0)
	if !found || errors.Is(o.Err, kerr.UnknownTopicOrPartition) || o.Offset == 0 {
		return st, false, nil
	}
	if o.Err != nil {
		return st, false, fmt.Errorf("region: %w", o.Err)
	}
	rd, err := kgo.NewClient(kgo.SeedBrokers(seeds(cl)...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		Topic: {0: kgo.NewOffset().At(o.Offset - 1)},
	}))
	if err != nil {
		return st, false, fmt.Errorf("region: %w", err)
	}
	defer rd.Close()
	for {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return st, false, fmt.Errorf("region: read role: %w", err)
		}
		var got bool
		fs.EachRecord(func(r *kgo.Record) {
			if json.Unmarshal(r.Value, &st) == nil {
				got = true
			}
		})
		if got {
			return st, true, nil
		}
	}
}

func seeds(cl *kgo.Client) []string {
	v := cl.OptValue(kgo.SeedBrokers)
	s, _ := v.([]string)
	return s
}

func ptr(s string) *string { return &s }
