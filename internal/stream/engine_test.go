package stream_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/internal/stream"
)

var t0 = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

var p0 = stream.Partition{Topic: "order-events", Number: 0}
var p1 = stream.Partition{Topic: "order-events", Number: 1}

// rec is a record of p0 at t0+sec; offsets are assigned by feed.
func rec(key string, sec float64) stream.Record {
	return stream.Record{Partition: p0, Key: key, Time: at(sec), EventType: "OrderCreated"}
}

func countOp(t *testing.T, name string, w stream.Windows) stream.Operator {
	t.Helper()
	op, err := stream.NewAggregate(stream.Aggregation[stream.CountSum]{Name: name, Windows: w,
		Aggregator: stream.CountSumAggregator{Value: func(r *stream.Record) int64 { return int64(r.Time.Sub(t0) / time.Second) }}})
	if err != nil {
		t.Fatal(err)
	}
	return op
}

// show renders a result as "key [start,end) count/sum", times in seconds after t0.
func show(r stream.Result) string {
	s := func(x time.Time) string { return fmt.Sprint(x.Sub(t0).Seconds()) }
	return fmt.Sprintf("%s %s [%s,%s) %v", r.Operator, r.Key, s(r.Start), s(r.End), r.Value)
}

// feed processes records one by one (offsets set per partition) and
// returns every result and the late count per operator.
func feed(t *testing.T, e *stream.Engine, recs []stream.Record) ([]string, map[string]int) {
	t.Helper()
	offsets := map[stream.Partition]int64{}
	var got []string
	late := map[string]int{}
	for _, r := range recs {
		r.Offset = offsets[r.Partition]
		offsets[r.Partition]++
		out, err := e.Process([]stream.Record{r})
		if err != nil {
			t.Fatal(err)
		}
		for _, res := range out.Results {
			got = append(got, show(res))
		}
		for k, n := range out.Late {
			late[k] += n
		}
	}
	return got, late
}

func TestWindows(t *testing.T) {
	tests := []struct {
		name    string
		windows stream.Windows
		recs    []stream.Record
		want    []string
		late    int
	}{
		{
			name:    "tumbling: emitted only when closed, out of order inside grace applied",
			windows: stream.TumblingWindows(10*time.Second, 5*time.Second),
			recs: []stream.Record{rec("a", 1), rec("b", 2), rec("a", 11), rec("a", 9) /* inside grace */, rec("a", 14),
				rec("a", 15) /* closes [0,10) */, rec("a", 3) /* beyond grace */, rec("b", 26)},
			want: []string{"w a [0,10) {2 10}", "w b [0,10) {1 2}", "w a [10,20) {3 40}"},
			late: 1,
		},
		{
			name:    "tumbling without grace: the window closes at its end",
			windows: stream.TumblingWindows(10*time.Second, 0),
			recs:    []stream.Record{rec("a", 1), rec("a", 9.999), rec("a", 10), rec("a", 9.5)},
			want:    []string{"w a [0,10) {2 10}"},
			late:    1,
		},
		{
			name:    "hopping: a record counts in every window that overlaps it",
			windows: stream.HoppingWindows(10*time.Second, 5*time.Second, 0),
			recs:    []stream.Record{rec("a", 1), rec("a", 7), rec("a", 12), rec("a", 30)},
			want:    []string{"w a [-5,5) {1 1}", "w a [0,10) {2 8}", "w a [5,15) {2 19}", "w a [10,20) {1 12}"},
		},
		{
			name:    "hopping: late for the older window only",
			windows: stream.HoppingWindows(10*time.Second, 5*time.Second, 0),
			recs:    []stream.Record{rec("a", 1), rec("a", 11), rec("a", 8), rec("a", 40)},
			// 8 is in [0,10) (closed at 10: late) and [5,15) (open: applied).
			want: []string{"w a [-5,5) {1 1}", "w a [0,10) {1 1}", "w a [5,15) {2 19}", "w a [10,20) {1 11}"},
			late: 1,
		},
		{
			name:    "session: a record within the gap of two sessions merges them",
			windows: stream.SessionWindows(5*time.Second, 10*time.Second),
			recs: []stream.Record{rec("a", 1), rec("a", 10), rec("a", 3), rec("a", 6) /* bridges [1,3] and [10,10] */, rec("b", 4),
				rec("a", 30)},
			want: []string{"w b [4,4) {1 4}", "w a [1,10) {4 20}"},
		},
		{
			name:    "session: late beyond grace of the record's own time; closes after end+gap+grace",
			windows: stream.SessionWindows(5*time.Second, 2*time.Second),
			recs:    []stream.Record{rec("a", 10), rec("a", 20), rec("a", 17.5) /* 20 > 17.5+2: late */, rec("a", 18.5), rec("a", 27), rec("a", 27.01)},
			want:    []string{"w a [10,10) {1 10}", "w a [18.5,20) {2 38}"},
			late:    1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := stream.New([]stream.Partition{p0}, countOp(t, "w", tc.windows))
			if err != nil {
				t.Fatal(err)
			}
			got, late := feed(t, e, tc.recs)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("results:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if late["w"] != tc.late {
				t.Errorf("late = %d, want %d", late["w"], tc.late)
			}
		})
	}
}

func TestWatermarkIsTheSlowestPartition(t *testing.T) {
	e, err := stream.New([]stream.Partition{p0, p1}, countOp(t, "w", stream.TumblingWindows(10*time.Second, 0)))
	if err != nil {
		t.Fatal(err)
	}
	r := func(p stream.Partition, off int64, sec float64) stream.Record {
		return stream.Record{Partition: p, Offset: off, Key: "k", Time: at(sec)}
	}
	out, err := e.Process([]stream.Record{r(p0, 0, 1), r(p0, 1, 25)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Results) != 0 || out.Watermark != stream.NoTime {
		t.Fatalf("p1 has no stream time yet, so nothing closes: %v watermark %d", out.Results, out.Watermark)
	}
	// p1 is behind: its record at 5 still counts although p0 is at 25.
	out, err = e.Process([]stream.Record{r(p1, 0, 5)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Results) != 0 || !time.Unix(0, out.Watermark).Equal(at(5)) {
		t.Fatalf("watermark %v, results %v", time.Unix(0, out.Watermark).Sub(t0), out.Results)
	}
	out, err = e.Process([]stream.Record{r(p1, 1, 12)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Results) != 1 || show(out.Results[0]) != "w k [0,10) {2 6}" {
		t.Fatalf("results %v", out.Results)
	}
	// A replayed offset is skipped, not counted twice.
	out, err = e.Process([]stream.Record{r(p1, 1, 12), r(p0, 1, 25)})
	if err != nil || out.Replayed != 2 {
		t.Fatalf("replayed %d, err %v", out.Replayed, err)
	}
	// An unknown partition rejects the batch before anything changes.
	_, err = e.Process([]stream.Record{r(p0, 2, 26), r(stream.Partition{Topic: "x"}, 0, 1)})
	if !errors.Is(err, stream.ErrUnknownPartition) {
		t.Fatalf("err = %v", err)
	}
	_, err = e.Process([]stream.Record{r(p0, 2, 26), {Partition: p0, Offset: 3}})
	if !errors.Is(err, stream.ErrNoEventTime) {
		t.Fatalf("err = %v", err)
	}
	out, err = e.Idle(p1, at(30))
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Results) != 1 || show(out.Results[0]) != "w k [10,20) {1 12}" {
		t.Fatalf("after idle: %v", out.Results)
	}
}

func TestInvalidConfiguration(t *testing.T) {
	for _, w := range []stream.Windows{
		stream.TumblingWindows(0, 0), stream.HoppingWindows(time.Second, 2*time.Second, 0),
		stream.SessionWindows(0, 0), stream.TumblingWindows(time.Second, -1), {},
	} {
		_, err := stream.NewAggregate(stream.Aggregation[stream.CountSum]{Name: "w", Windows: w, Aggregator: stream.CountSumAggregator{}})
		if !errors.Is(err, stream.ErrInvalidWindows) {
			t.Errorf("%+v: err = %v", w, err)
		}
	}
	op := countOp(t, "w", stream.TumblingWindows(time.Second, 0))
	if _, err := stream.New([]stream.Partition{p0}, op, op); !errors.Is(err, stream.ErrConfig) {
		t.Errorf("two operators of one name: %v", err)
	}
	if _, err := stream.New(nil, op); !errors.Is(err, stream.ErrConfig) {
		t.Errorf("no partitions: %v", err)
	}
}

// randomStream returns, per partition, records in offset order whose
// times wander forward with out-of-order jitter, some beyond any grace.
func randomStream(rng *rand.Rand, parts []stream.Partition, perPart int) [][]stream.Record {
	out := make([][]stream.Record, len(parts))
	for i, p := range parts {
		clock := 0.0
		for off := range perPart {
			clock += rng.Float64() * 2
			sec := clock - rng.Float64()*3
			if rng.IntN(20) == 0 {
				sec -= 30 // very late
			}
			out[i] = append(out[i], stream.Record{Partition: p, Offset: int64(off), Key: fmt.Sprintf("k%d", rng.IntN(5)),
				Time: at(float64(int(sec*1000)) / 1000), EventType: "T"})
		}
	}
	return out
}

// interleave merges the partitions' records in a random interleaving
// that keeps each partition's order, and cuts it into random batches.
func interleave(rng *rand.Rand, parts [][]stream.Record) [][]stream.Record {
	idx := make([]int, len(parts))
	var all []stream.Record
	for {
		var open []int
		for i := range parts {
			if idx[i] < len(parts[i]) {
				open = append(open, i)
			}
		}
		if len(open) == 0 {
			break
		}
		i := open[rng.IntN(len(open))]
		all = append(all, parts[i][idx[i]])
		idx[i]++
	}
	var batches [][]stream.Record
	for len(all) > 0 {
		n := min(len(all), 1+rng.IntN(40))
		batches = append(batches, all[:n])
		all = all[n:]
	}
	return batches
}

func newEngine(t *testing.T, parts []stream.Partition) *stream.Engine {
	t.Helper()
	e, err := stream.New(parts,
		countOp(t, "tumbling", stream.TumblingWindows(10*time.Second, 2*time.Second)),
		countOp(t, "hopping", stream.HoppingWindows(10*time.Second, 3*time.Second, time.Second)),
		countOp(t, "session", stream.SessionWindows(1500*time.Millisecond, 2*time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// run processes the batches, optionally restoring into a new engine from
// the stored changes after batch restoreAt, and finishes by idling every
// partition far ahead. It returns all results and the total late count.
func run(t *testing.T, parts []stream.Partition, batches [][]stream.Record, restoreAt int) ([]string, int) {
	t.Helper()
	e := newEngine(t, parts)
	var store stream.MemoryStore
	var got []string
	late := 0
	take := func(out stream.Output) {
		for _, r := range out.Results {
			got = append(got, show(r))
		}
		for _, n := range out.Late {
			late += n
		}
		store.Apply(out.Changes)
	}
	for i, b := range batches {
		out, err := e.Process(b)
		if err != nil {
			t.Fatal(err)
		}
		take(out)
		if i == restoreAt {
			snap := e.Snapshot()
			if fmt.Sprint(snap) != fmt.Sprint(store.Entries()) {
				t.Fatalf("snapshot and stored changes differ:\n%v\n%v", snap, store.Entries())
			}
			e = newEngine(t, parts)
			if err := e.Restore(store.Entries()); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, p := range parts {
		out, err := e.Idle(p, at(1e6))
		if err != nil {
			t.Fatal(err)
		}
		take(out)
	}
	if store.Len() != len(parts) {
		t.Errorf("after every window closed the store holds %d entries, want only the %d partitions'", store.Len(), len(parts))
	}
	return got, late
}

func TestResultsIndependentOfBatchingInterleavingAndRestore(t *testing.T) {
	parts := []stream.Partition{p0, p1, {Topic: "payment-events", Number: 0}}
	rng := rand.New(rand.NewPCG(12, 34))
	recs := randomStream(rng, parts, 300)
	want, wantLate := run(t, parts, interleave(rng, recs), -1)
	if len(want) < 100 || wantLate == 0 {
		t.Fatalf("the stream should close many windows and drop some records: %d results, %d late", len(want), wantLate)
	}
	for i := range 30 {
		batches := interleave(rng, recs)
		restoreAt := -1
		if i%2 == 0 {
			restoreAt = rng.IntN(len(batches))
		}
		got, late := run(t, parts, batches, restoreAt)
		if strings.Join(got, "\n") != strings.Join(want, "\n") || late != wantLate {
			t.Fatalf("run %d (restore after batch %d) differs: %d results, %d late; want %d, %d",
				i, restoreAt, len(got), late, len(want), wantLate)
		}
	}
}

// IdleAll over several partitions leaves the state, stores the changes and
// gives each operator's results of Idle on each in turn; a call that raises
// no stream time returns nothing; an unknown partition rejects it whole.
func TestIdleAllIsIdleOfEachInTurn(t *testing.T) {
	p2 := stream.Partition{Topic: "payment-events", Number: 0}
	parts := []stream.Partition{p0, p1, p2}
	rng := rand.New(rand.NewPCG(56, 78))
	recs := randomStream(rng, parts, 200)
	// Each partition's first half, so the idle calls below have records
	// in every operator's windows to close.
	var batch []stream.Record
	for _, rs := range recs {
		batch = append(batch, rs[:100]...)
	}
	byOperator := func(outs ...stream.Output) map[string][]string {
		m := map[string][]string{}
		for _, out := range outs {
			for _, r := range out.Results {
				m[r.Operator] = append(m[r.Operator], show(r))
			}
		}
		return m
	}
	eachInTurn, all := newEngine(t, parts), newEngine(t, parts)
	var storeEach, storeAll stream.MemoryStore
	for _, e := range []*stream.Engine{eachInTurn, all} {
		if _, err := e.Process(batch); err != nil {
			t.Fatal(err)
		}
	}
	results := 0
	for _, until := range []float64{100, 150, 1e6} {
		var outs []stream.Output
		for _, p := range parts {
			out, err := eachInTurn.Idle(p, at(until))
			if err != nil {
				t.Fatal(err)
			}
			storeEach.Apply(out.Changes)
			outs = append(outs, out)
		}
		out, err := all.IdleAll(parts, at(until))
		if err != nil {
			t.Fatal(err)
		}
		storeAll.Apply(out.Changes)
		want, got := byOperator(outs...), byOperator(out)
		results += len(out.Results)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("idle to %v: IdleAll's results\n%v\nIdle's in turn\n%v", until, got, want)
		}
		if fmt.Sprint(all.Snapshot()) != fmt.Sprint(eachInTurn.Snapshot()) || fmt.Sprint(storeAll.Entries()) != fmt.Sprint(storeEach.Entries()) {
			t.Fatalf("idle to %v: IdleAll's state differs from Idle's in turn", until)
		}
		if all.Watermark() != at(until).UnixNano() {
			t.Fatalf("watermark %d after IdleAll to %v", all.Watermark(), until)
		}
	}
	if results < 20 {
		t.Fatalf("the idle calls closed %d windows; the test needs many", results)
	}
	out, err := all.IdleAll(parts, at(1e6))
	if err != nil || len(out.Changes) != 0 || len(out.Results) != 0 {
		t.Errorf("IdleAll raising no stream time: %d changes, %d results, err %v; want none", len(out.Changes), len(out.Results), err)
	}
	before := fmt.Sprint(all.Snapshot())
	if _, err := all.IdleAll([]stream.Partition{p0, {Topic: "x"}}, at(2e6)); !errors.Is(err, stream.ErrUnknownPartition) {
		t.Errorf("IdleAll with an unknown partition: err = %v", err)
	}
	if fmt.Sprint(all.Snapshot()) != before {
		t.Error("IdleAll with an unknown partition changed the state")
	}
}
