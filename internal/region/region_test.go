package region

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventmart/eventmart/internal/testenv"
)

// encodeCheckpoint writes a checkpoint as org.apache.kafka.connect.mirror.Checkpoint
// serializes it (key: group, topic, partition; value: version 0, upstream,
// downstream, metadata).
func encodeCheckpoint(c Checkpoint) (key, value []byte) {
	str := func(b []byte, s string) []byte {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		return append(b, s...)
	}
	key = str(nil, c.Group)
	key = str(key, c.Topic)
	key = binary.BigEndian.AppendUint32(key, uint32(c.Partition))
	value = binary.BigEndian.AppendUint16(nil, 0)
	value = binary.BigEndian.AppendUint64(value, uint64(c.Upstream))
	value = binary.BigEndian.AppendUint64(value, uint64(c.Downstream))
	value = str(value, "")
	return key, value
}

func TestDecodeCheckpoint(t *testing.T) {
	want := Checkpoint{Group: "order-service", Topic: "payment-events", Partition: 11, Upstream: 1234, Downstream: 1230}
	k, v := encodeCheckpoint(want)
	got, err := decodeCheckpoint(k, v)
	if err != nil || got != want {
		t.Fatalf("decode = %+v, %v; want %+v", got, err, want)
	}
	if _, err := decodeCheckpoint(k[:len(k)-1], v); err == nil {
		t.Error("a truncated key decoded without error")
	}
	v[1] = 1 // version 1
	if _, err := decodeCheckpoint(k, v); err == nil {
		t.Error("an unknown version decoded without error")
	}
}

func client(t *testing.T) *kgo.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.Kafka(t)...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// The role recorded last is the one read back; a watch applies the last
// role recorded before it started (not the history before it: a standby
// starting must not be promoted, then demoted, by past switches), then
// each role recorded after, in order.
func TestRoleRecordedAndWatched(t *testing.T) {
	cl := client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	by := fmt.Sprintf("region test %d", time.Now().UnixNano())
	for _, r := range []Role{Standby, Primary} {
		if err := SetRole(ctx, cl, State{Role: r, At: time.Now().UTC(), By: by}); err != nil {
			t.Fatal(err)
		}
	}
	st, ok, err := CurrentRole(ctx, cl)
	if err != nil || !ok || st.Role != Primary || st.By != by {
		t.Fatalf("CurrentRole = %+v, %v, %v; want primary by %q", st, ok, err, by)
	}
	seen := make(chan State, 10)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- Watch(wctx, testenv.Kafka(t), func(s State) { seen <- s }) }()
	next := func() State {
		select {
		case s := <-seen:
			return s
		case err := <-done:
			t.Fatalf("Watch returned %v", err)
		case <-ctx.Done():
			t.Fatal("Watch did not report a role")
		}
		return State{}
	}
	if s := next(); s.Role != Primary || s.By != by {
		t.Fatalf("watch started with %+v, want only the last role recorded before it, primary by %q", s, by)
	}
	if err := SetRole(ctx, cl, State{Role: Standby, At: time.Now().UTC(), By: by + " again"}); err != nil {
		t.Fatal(err)
	}
	if s := next(); s.Role != Standby || s.By != by+" again" {
		t.Errorf("watched %+v after it started, want standby by %q", s, by+" again")
	}
	// The cluster is left primary, as other tests' processes on it expect.
	if err := SetRole(ctx, cl, State{Role: Primary, At: time.Now().UTC(), By: by + " last"}); err != nil {
		t.Fatal(err)
	}
	if s := next(); s.Role != Primary || s.By != by+" last" {
		t.Errorf("watched %+v, want primary by %q", s, by+" last")
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-seen:
		t.Errorf("watched %+v besides", s)
	default:
	}
}

// Translation commits the checkpoints' downstream offsets where they are
// ahead of a group's, never moves a group back, and changes nothing when
// run again.
func TestTranslateMovesGroupsForwardOnly(t *testing.T) {
	cl := client(t)
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	suffix := time.Now().UnixNano()
	alias := fmt.Sprintf("T%d", suffix)
	topic := fmt.Sprintf("region-test-%d", suffix)
	group := fmt.Sprintf("region-test-group-%d", suffix)
	for _, tp := range []struct {
		name  string
		parts int32
	}{{topic, 2}, {CheckpointsTopic(alias), 1}} {
		if _, err := adm.CreateTopic(ctx, tp.parts, -1, nil, tp.name); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { adm.DeleteTopics(context.Background(), tp.name) })
	}
	// Records to commit offsets within.
	for i := range 20 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Partition 0's group is behind its checkpoint, partition 1's ahead.
	have := kadm.Offsets{}
	have.Add(kadm.Offset{Topic: topic, Partition: 0, At: 2, LeaderEpoch: -1})
	have.Add(kadm.Offset{Topic: topic, Partition: 1, At: 9, LeaderEpoch: -1})
	if _, err := adm.CommitOffsets(ctx, group, have); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Checkpoint{
		{Group: group, Topic: topic, Partition: 0, Upstream: 5, Downstream: 3}, // superseded below
		{Group: group, Topic: topic, Partition: 0, Upstream: 8, Downstream: 7},
		{Group: group, Topic: topic, Partition: 1, Upstream: 6, Downstream: 6},
	} {
		k, v := encodeCheckpoint(c)
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: CheckpointsTopic(alias), Key: k, Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	sw := Switch{To: cl, SourceAlias: alias, Progress: t.Logf}
	for run := 1; run <= 2; run++ {
		res, err := sw.translate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var r *GroupResult
		for i := range res {
			if res[i].Group == group {
				r = &res[i]
			}
		}
		wantMoved := map[int]int{1: 1, 2: 0}[run]
		if r == nil || r.Moved != wantMoved || r.UpToDate != 2-wantMoved {
			t.Fatalf("run %d: result %+v, want %d partition(s) moved", run, r, wantMoved)
		}
		got, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		for p, want := range map[int32]int64{0: 7, 1: 9} {
			if o, _ := got.Lookup(topic, p); o.At != want {
				t.Errorf("run %d: partition %d committed at %d, want %d", run, p, o.At, want)
			}
		}
	}
}

// Promoting a server that takes writes already (a failover re-run after a
// crash midway) leaves it as it is and says so; its URL's database name
// does not matter.
func TestPromoteAlreadyPromoted(t *testing.T) {
	url := testenv.Postgres(t)
	var said []string
	progress := func(format string, args ...any) { said = append(said, fmt.Sprintf(format, args...)) }
	d := Database{URL: url}
	for range 2 {
		if err := d.Promote(context.Background(), progress); err != nil {
			t.Fatal(err)
		}
	}
	if len(said) != 2 || said[0] != "      PostgreSQL already promoted: it accepts writes" {
		t.Errorf("progress %q, want twice that it is already promoted", said)
	}
	if err := (Database{URL: "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2"}).Promote(context.Background(), progress); err == nil {
		t.Error("promoting a server that does not answer succeeded")
	}
}

// ReadReplication finds MirrorMaker's heartbeats, checkpoints and offset
// syncs by their names, with their newest record's time: running while a
// heartbeat is recent, stopped once none is.
func TestReadReplication(t *testing.T) {
	cl := client(t)
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alias := fmt.Sprintf("R%d", time.Now().UnixNano())
	checkpoints, syncs := CheckpointsTopic(alias), "mm2-offset-syncs."+alias+".internal"
	for _, name := range []string{checkpoints, syncs} {
		if _, err := adm.CreateTopic(ctx, 1, -1, nil, name); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { adm.DeleteTopics(context.Background(), name) })
	}
	// The heartbeats topic has one name on every cluster; another test
	// may have made it already.
	if _, err := adm.CreateTopic(ctx, 1, -1, nil, HeartbeatsTopic); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Fatal(err)
	}
	beat := time.Now().Truncate(time.Millisecond)
	for _, r := range []*kgo.Record{
		{Topic: HeartbeatsTopic, Value: []byte("beat"), Timestamp: beat},
		{Topic: checkpoints, Value: []byte("c1"), Timestamp: beat.Add(-2 * time.Second)},
		{Topic: checkpoints, Value: []byte("c2"), Timestamp: beat.Add(-time.Second)},
	} {
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	find := func(ts []Tail, name string) *Tail {
		for i := range ts {
			if ts[i].Topic == name {
				return &ts[i]
			}
		}
		return nil
	}
	rep, err := ReadReplication(ctx, cl, beat.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if rep.MirrorMaker != "running" || rep.Heartbeats == nil || rep.Heartbeats.Last == nil || rep.Heartbeats.Last.Before(beat) {
		t.Errorf("a heartbeat 1 s old: mirrorMaker %q, heartbeats %+v; want running", rep.MirrorMaker, rep.Heartbeats)
	}
	if c := find(rep.Checkpoints, checkpoints); c == nil || c.Records != 2 || c.Last == nil || !c.Last.Equal(beat.Add(-time.Second)) || *c.AgeSeconds != 2 {
		t.Errorf("checkpoints %+v; want 2 records, the newest 2 s old", c)
	}
	if s := find(rep.OffsetSyncs, syncs); s == nil || s.Records != 0 || s.Last != nil {
		t.Errorf("offset syncs %+v; want the empty topic listed", s)
	}
	if find(rep.Checkpoints, syncs) != nil || find(rep.OffsetSyncs, checkpoints) != nil {
		t.Error("a checkpoints topic taken for offset syncs, or the reverse")
	}
	rep, err = ReadReplication(ctx, cl, time.Now().Add(RunningWithin+time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if rep.MirrorMaker != "stopped" {
		t.Errorf("no heartbeat for a minute: mirrorMaker %q, want stopped", rep.MirrorMaker)
	}
}

// Summary's quantiles are over a topic's last ages, its count over all.
func TestLagSummary(t *testing.T) {
	l := &Lag{}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := 1; i <= 1000; i++ {
		l.note("order-events", float64(i), at)
	}
	l.note("heartbeats", 0.5, at)
	got := l.Summary()
	want := []TopicLag{
		{Topic: "heartbeats", Count: 1, P50Seconds: 0.5, P99Seconds: 0.5, LastSeconds: 0.5, LastAt: at},
		// The last 512 ages: 489…1000.
		{Topic: "order-events", Count: 1000, P50Seconds: 744, P99Seconds: 995, LastSeconds: 1000, LastAt: at},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Summary = %+v\nwant      %+v", got, want)
	}
}
