package analytics

import (
	"context"
	"testing"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/stream"
)

func TestShipBucket(t *testing.T) {
	for _, c := range []struct{ ms, want int64 }{{-5, 0}, {0, 0}, {15, 15}, {16, 17}, {17, 17}, {31, 31}, {32, 35}, {33, 35}, {36, 39},
		{1000, 1023}, {1024, 1151}, {90_000, 90_111}} {
		if got := shipBucket(c.ms); got != c.want {
			t.Errorf("shipBucket(%d) = %d, want %d", c.ms, got, c.want)
		}
		if got := shipBucket(c.ms); got < c.ms || float64(got) > 1.125*float64(max(c.ms, 1)) {
			t.Errorf("shipBucket(%d) = %d: not within [ms, ms·1.125]", c.ms, got)
		}
	}
	// 20 orders: 10 shipped in 1 s, 9 in 2 s, 1 in 60 s.
	st := shipTimesOf(map[int64]int64{shipBucket(1000): 10, shipBucket(2000): 9, shipBucket(60_000): 1})
	if st != (ShipTimes{Count: 20, P50Ms: 1023, P95Ms: 2047}) {
		t.Errorf("quantiles %+v", st)
	}
	if st := shipTimesOf(map[int64]int64{shipBucket(1000): 10, shipBucket(60_000): 1}); st.P95Ms != shipBucket(60_000) {
		t.Errorf("p95 of 11 with one slow: %+v, want the slow one's bucket", st)
	}
}

// TestOrderToShippedWindows: the delay from OrderCreated to OrderShipped
// (event times) lands in the shipment's window; a cancelled order's state
// is dropped (a later OrderShipped of it counts nothing), an order shipped
// later than ShipHorizon is not counted, and once the watermark passes the
// horizon no order's state is left.
func TestOrderToShippedWindows(t *testing.T) {
	part := stream.Partition{Topic: string(event.TopicOrder), Number: 0}
	eng, err := NewEngine([]stream.Partition{part}, nil, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	var off int64
	rec := func(at time.Duration, p event.Payload) stream.Record {
		e, err := event.New("test", event.Origin{}, p)
		if err != nil {
			t.Fatal(err)
		}
		m, err := eventmsg.Encode(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		m.Partition, m.Offset, m.Timestamp = 0, off, t0.Add(at)
		off++
		return Record(m)
	}
	created := func(id string) *event.OrderCreated {
		return &event.OrderCreated{OrderID: id, Currency: "EUR", TotalCents: 100}
	}
	var results []stream.Result
	process := func(rs ...stream.Record) {
		out, err := eng.Process(rs)
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, out.Results...)
	}
	process(rec(0, created("o1")), rec(0, created("o2")), rec(0, created("o3")), rec(0, created("slow")), rec(0, created("lost")),
		rec(10*time.Second, &event.OrderCancelled{OrderID: "o3"}))
	process(rec(30*time.Second, &event.OrderShipped{OrderID: "o1"}), rec(45*time.Second, &event.OrderShipped{OrderID: "o2"}),
		rec(50*time.Second, &event.OrderShipped{OrderID: "o3"})) // cancelled: no delay
	process(rec(ShipHorizon+time.Hour, &event.OrderShipped{OrderID: "slow"})) // beyond the horizon
	if _, err := eng.Idle(part, t0.Add(ShipHorizon+3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	var first Window
	for _, r := range results {
		if r.Operator == opMinute && r.Start.Equal(t0) {
			first = window(r.Start, r.End, false, r.Value.(Counters))
		}
		if r.Operator == opMinute && r.Start.After(t0) {
			if w := window(r.Start, r.End, false, r.Value.(Counters)); w.OrderToShipped != (ShipTimes{}) {
				t.Errorf("window %s: %+v, want no order → shipped time (beyond the horizon)", w.Start, w.OrderToShipped)
			}
		}
	}
	if want := (ShipTimes{Count: 2, P50Ms: shipBucket(30_000), P95Ms: shipBucket(45_000)}); first.OrderToShipped != want {
		t.Errorf("first minute: %+v, want %+v", first.OrderToShipped, want)
	}
	for _, e := range eng.Snapshot() {
		if e.Operator == opShipTime {
			t.Errorf("state of order %q kept past the horizon", e.Key)
		}
	}
}
