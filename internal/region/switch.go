package region

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// HeartbeatsTopic is where MirrorMaker's heartbeat connector writes on the
// target, every second as deploy/scripts/mirror.sh configures it: while
// records arrive there, replication runs.
const HeartbeatsTopic = "heartbeats"

// Switch moves the primary role from one region to another: failover
// (to the standby, the old primary usually gone) and failback (back to a
// region re-seeded from the current primary). Every step can be run again:
// a switch that crashed midway is finished by running it once more.
type Switch struct {
	// To is the cluster of the region to promote; required.
	To *kgo.Client
	// From is the cluster of the region to demote; nil when unknown. With
	// Fence, failing to reach it is reported and ignored (failover: it is
	// usually down); otherwise it is an error (failback).
	From  *kgo.Client
	Fence bool
	// SourceAlias is MirrorMaker's alias of From's cluster: the
	// checkpoints read are on To, in <SourceAlias>.checkpoints.internal.
	SourceAlias string
	// CatchUp: before stopping replication, wait (at most CatchUpTimeout)
	// until To holds every record of Topics that From holds (failback).
	CatchUp        bool
	CatchUpTimeout time.Duration
	Topics         []string
	// StopReplication stops MirrorMaker (From to To); nil: it is stopped
	// by other means. Either way the switch goes on only once no
	// heartbeat arrived on To for HeartbeatQuiet.
	StopReplication func(context.Context) error
	HeartbeatQuiet  time.Duration
	// Database is To's region's PostgreSQL, a hot standby of From's:
	// promoted once replication has stopped, before the role record lets
	// the services write; nil: no replicated database (nothing to do).
	Database *Database
	By       string // recorded with the roles, e.g. "eventmart region failover"
	// Progress receives a line per step and per consumer group.
	Progress func(format string, args ...any)
	Now      func() time.Time
}

// GroupResult is what translating one consumer group's offsets did.
type GroupResult struct {
	Group     string
	Skipped   string // why nothing was committed, e.g. the group is active in To's region
	Moved     int    // partitions committed forward to the checkpoint
	UpToDate  int    // partitions already at or past it
	Re        int64  // records at most re-read: upstream minus downstream offsets
	Committed map[string]map[int32]int64
}

// Result is what a switch did, with the duration of each step.
type Result struct {
	Groups []GroupResult
	Steps  []Step
}

// Step is one step of a switch and how long it took.
type Step struct {
	Name string
	Took time.Duration
}

// Run runs the steps in order: fence the old primary, catch up (failback),
// stop replication, promote the database, translate every group's
// offsets, promote.
func (s Switch) Run(ctx context.Context) (Result, error) {
	if s.Progress == nil {
		s.Progress = func(string, ...any) {}
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.HeartbeatQuiet <= 0 {
		s.HeartbeatQuiet = 3 * time.Second
	}
	var res Result
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"fence the old primary", s.fence},
		{"catch up", s.catchUp},
		{"stop replication", s.stopReplication},
		{"promote the database", s.promoteDatabase},
		{"translate consumer-group offsets", func(ctx context.Context) error {
			gs, err := s.translate(ctx)
			res.Groups = gs
			return err
		}},
		{"promote", func(ctx context.Context) error {
			return SetRole(ctx, s.To, State{Role: Primary, At: s.Now().UTC(), By: s.By})
		}},
	}
	for i, st := range steps {
		start := time.Now()
		s.Progress("[%d/%d] %s…", i+1, len(steps), st.name)
		if err := st.fn(ctx); err != nil {
			return res, fmt.Errorf("region: %s: %w", st.name, err)
		}
		took := time.Since(start)
		res.Steps = append(res.Steps, Step{st.name, took})
		s.Progress("[%d/%d] %s: done in %s", i+1, len(steps), st.name, took.Round(time.Millisecond))
	}
	return res, nil
}

func (s Switch) fence(ctx context.Context) error {
	if s.From == nil {
		s.Progress("      no old primary named: not fenced (make sure it takes no writes)")
		return nil
	}
	// Failover: a few seconds, the old primary is usually gone; failback:
	// longer, but bounded (a client retries a missing broker for ever).
	within := 30 * time.Second
	if s.Fence {
		within = 5 * time.Second
	}
	fctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	err := SetRole(fctx, s.From, State{Role: Standby, At: s.Now().UTC(), By: s.By})
	if err != nil && s.Fence && ctx.Err() == nil {
		s.Progress("      old primary unreachable, not fenced (expected when its region is down): %v", err)
		return nil
	}
	if err == nil {
		s.Progress("      old primary set to standby: it refuses writes")
	}
	return err
}

func (s Switch) promoteDatabase(ctx context.Context) error {
	if s.Database == nil {
		s.Progress("      no database named: skipped")
		return nil
	}
	return s.Database.Promote(ctx, s.Progress)
}

func (s Switch) catchUp(ctx context.Context) error {
	if !s.CatchUp {
		s.Progress("      skipped (failover does not wait for the old primary)")
		return nil
	}
	if s.From == nil {
		return errors.New("catching up needs the cluster to copy from")
	}
	deadline := time.Now().Add(s.CatchUpTimeout)
	for {
		behind, err := recordsBehind(ctx, kadm.NewClient(s.From), kadm.NewClient(s.To), s.Topics)
		if err != nil {
			return err
		}
		if behind == 0 {
			s.Progress("      every record of %d topics is here", len(s.Topics))
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d records still to copy after %s: is MirrorMaker replicating to this region?", behind, s.CatchUpTimeout)
		}
		s.Progress("      %d records still to copy", behind)
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// recordsBehind sums, over every partition of topics, how many more
// records from's log has than to's.
func recordsBehind(ctx context.Context, from, to *kadm.Client, topics []string) (int64, error) {
	fe, err := from.ListEndOffsets(ctx, topics...)
	if err != nil {
		return 0, err
	}
	te, err := to.ListEndOffsets(ctx, topics...)
	if err != nil {
		return 0, err
	}
	var behind int64
	var bad error
	fe.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			bad = o.Err
			return
		}
		t, ok := te.Lookup(o.Topic, o.Partition)
		switch {
		case !ok || t.Err != nil:
			behind += o.Offset
		case o.Offset > t.Offset:
			behind += o.Offset - t.Offset
		}
	})
	return behind, bad
}

func (s Switch) stopReplication(ctx context.Context) error {
	if s.StopReplication != nil {
		if err := s.StopReplication(ctx); err != nil {
			return err
		}
	}
	adm := kadm.NewClient(s.To)
	end := func() (int64, error) {
		ends, err := adm.ListEndOffsets(ctx, HeartbeatsTopic)
		if err != nil {
			return 0, err
		}
		var sum int64
		var bad error
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err != nil && !errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
				bad = o.Err
			}
			sum += o.Offset
		})
		return sum, bad
	}
	before, err := end()
	if err != nil {
		return err
	}
	select {
	case <-time.After(s.HeartbeatQuiet):
	case <-ctx.Done():
		return ctx.Err()
	}
	after, err := end()
	if err != nil {
		return err
	}
	if after != before {
		return fmt.Errorf("MirrorMaker still writes heartbeats into this region (%d in %s): stop it first (deploy/scripts/mirror.sh stop)", after-before, s.HeartbeatQuiet)
	}
	s.Progress("      no heartbeat for %s: replication has stopped", s.HeartbeatQuiet)
	return nil
}

// translate commits, for every consumer group MirrorMaker checkpointed and
// that has no member in To's region, the checkpoints' downstream offsets
// where they are ahead of the group's committed ones; it never moves a
// group back, so it may run any number of times.
func (s Switch) translate(ctx context.Context) ([]GroupResult, error) {
	cps, err := ReadCheckpoints(ctx, s.To, s.SourceAlias)
	if err != nil {
		return nil, err
	}
	byGroup := map[string][]Checkpoint{}
	var groups []string
	for _, c := range cps {
		if _, ok := byGroup[c.Group]; !ok {
			groups = append(groups, c.Group)
		}
		byGroup[c.Group] = append(byGroup[c.Group], c)
	}
	slices.Sort(groups)
	if len(groups) == 0 {
		s.Progress("      no checkpoints yet: every group starts where its committed offsets (if any) are")
		return nil, nil
	}
	adm := kadm.NewClient(s.To)
	described, err := adm.DescribeGroups(ctx, groups...)
	if err != nil {
		return nil, err
	}
	fetched := adm.FetchManyOffsets(ctx, groups...)
	var out []GroupResult
	for _, g := range groups {
		r := GroupResult{Group: g, Committed: map[string]map[int32]int64{}}
		if d, ok := described[g]; ok && len(d.Members) > 0 {
			r.Skipped = fmt.Sprintf("%d member(s) consume in this region: it keeps its own offsets", len(d.Members))
			s.Progress("      %-24s skipped: %s", g, r.Skipped)
			out = append(out, r)
			continue
		}
		have := fetched[g]
		if have.Err != nil && !errors.Is(have.Err, kerr.GroupIDNotFound) {
			return out, fmt.Errorf("offsets of %s: %w", g, have.Err)
		}
		commit := kadm.Offsets{}
		for _, c := range byGroup[g] {
			r.Re += max(c.Upstream-c.Downstream, 0)
			if o, ok := have.Fetched.Lookup(c.Topic, c.Partition); ok && o.Err == nil && o.At >= c.Downstream {
				r.UpToDate++
				continue
			}
			commit.Add(kadm.Offset{Topic: c.Topic, Partition: c.Partition, At: c.Downstream, LeaderEpoch: -1})
			if r.Committed[c.Topic] == nil {
				r.Committed[c.Topic] = map[int32]int64{}
			}
			r.Committed[c.Topic][c.Partition] = c.Downstream
			r.Moved++
		}
		if len(commit) > 0 {
			resp, err := adm.CommitOffsets(ctx, g, commit)
			if err == nil {
				err = resp.Error()
			}
			if err != nil {
				return out, fmt.Errorf("commit %s: %w", g, err)
			}
		}
		s.Progress("      %-24s %d partition(s) moved to their checkpoint, %d already there", g, r.Moved, r.UpToDate)
		out = append(out, r)
	}
	return out, nil
}
