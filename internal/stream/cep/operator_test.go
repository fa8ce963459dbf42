package cep_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/internal/stream"
	"github.com/eventmart/eventmart/internal/stream/cep"
)

var t0 = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

var (
	orders   = stream.Partition{Topic: "order-events", Number: 0}
	payments = stream.Partition{Topic: "payment-events", Number: 0}
)

// ev is an event at t0+min minutes with the given id and payload.
func ev(p stream.Partition, min float64, typ, id string, payload map[string]any) stream.Record {
	b, _ := json.Marshal(payload)
	return stream.Record{Partition: p, Time: t0.Add(time.Duration(min * float64(time.Minute))), EventType: typ, EventID: id, Payload: b}
}

// show renders a detection as "Type key evidence... @minutes".
func show(r stream.Result) string {
	d := r.Value.(cep.Detection)
	s := fmt.Sprintf("%s %s %s @%v", d.Type, d.Key, strings.Join(d.Evidence, ","), d.At.Sub(t0).Minutes())
	if d.Holders > 0 {
		s += fmt.Sprintf(" holders=%d", d.Holders)
	}
	return s
}

type harness struct {
	t       *testing.T
	e       *stream.Engine
	offsets map[stream.Partition]int64
	got     []string
	late    int
}

func newHarness(t *testing.T, rules []cep.Rule, grace time.Duration, parts ...stream.Partition) *harness {
	t.Helper()
	op, err := cep.New("patterns", rules, grace)
	if err != nil {
		t.Fatal(err)
	}
	e, err := stream.New(parts, op)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, e: e, offsets: map[stream.Partition]int64{}}
}

func (h *harness) take(out stream.Output) {
	for _, r := range out.Results {
		h.got = append(h.got, show(r))
	}
	h.late += out.Late["patterns"]
}

func (h *harness) feed(recs ...stream.Record) {
	h.t.Helper()
	for _, r := range recs {
		r.Offset = h.offsets[r.Partition]
		h.offsets[r.Partition]++
		out, err := h.e.Process([]stream.Record{r})
		if err != nil {
			h.t.Fatal(err)
		}
		h.take(out)
	}
}

func (h *harness) idle(p stream.Partition, min float64) {
	h.t.Helper()
	out, err := h.e.Idle(p, t0.Add(time.Duration(min*float64(time.Minute))))
	if err != nil {
		h.t.Fatal(err)
	}
	h.take(out)
}

func (h *harness) expect(want ...string) {
	h.t.Helper()
	if strings.Join(h.got, "\n") != strings.Join(want, "\n") {
		h.t.Fatalf("detections:\n%s\nwant:\n%s", strings.Join(h.got, "\n"), strings.Join(want, "\n"))
	}
}

func failed(min float64, id, user string) stream.Record {
	return ev(payments, min, "PaymentFailed", id, map[string]any{"orderId": "o-" + id, "userId": user, "code": "card-declined"})
}

func TestFraudSuspectedFiresOncePerThreeFailures(t *testing.T) {
	h := newHarness(t, cep.StandardRules(time.Hour), 0, payments)
	h.feed(failed(0, "f1", "u1"), failed(1, "f2", "u1"), failed(1.5, "g1", "u2"))
	h.feed(failed(2, "f2", "u1")) // the same event again under a new offset: not a third failure
	h.feed(failed(3, "f3", "u1"))
	h.idle(payments, 3.1)
	h.expect("FraudSuspected u1 f1,f2,f3 @3")
	h.feed(failed(4, "f4", "u1"), failed(5, "f5", "u1")) // two more: no second detection yet
	h.feed(failed(6, "f6", "u1"))
	h.feed(failed(20, "g2", "u2"), failed(25, "g3", "u2")) // u2: three, but over 23.5 minutes
	h.feed(failed(40, "h", "u3"))
	h.expect("FraudSuspected u1 f1,f2,f3 @3", "FraudSuspected u1 f4,f5,f6 @6")
}

func TestOrderSlaBreachedTimesOutOnTheWatermark(t *testing.T) {
	h := newHarness(t, cep.StandardRules(30*time.Minute), time.Minute, orders)
	created := func(min float64, id string) stream.Record {
		return ev(orders, min, "OrderCreated", "c-"+id, map[string]any{"orderId": id, "totalCents": 1000})
	}
	h.feed(created(0, "o1"), created(1, "o2"), created(2, "o3"), created(3, "o4"))
	h.feed(ev(orders, 10, "OrderShipped", "s-o1", map[string]any{"orderId": "o1"}))
	h.feed(ev(orders, 32, "OrderCancelled", "x-o3", map[string]any{"orderId": "o3"})) // exactly at the SLA: in time
	h.feed(ev(orders, 31.5, "OrderShipped", "s-o4", map[string]any{"orderId": "o4"})) // out of order, inside the grace
	h.idle(orders, 32)
	h.expect() // o2's deadline (31) is passed in event time, but not yet by watermark - grace (31)
	h.idle(orders, 32.01)
	h.expect("OrderSlaBreached o2 c-o2 @31")
	h.feed(ev(orders, 20, "OrderShipped", "s-o2", map[string]any{"orderId": "o2"})) // beyond the grace: dropped
	h.idle(orders, 600)
	h.expect("OrderSlaBreached o2 c-o2 @31")
	if h.late != 1 {
		t.Errorf("late = %d, want 1", h.late)
	}
}

func TestFollowedByWithFilters(t *testing.T) {
	rules := []cep.Rule{{Name: "BigOrderDeclined", Kind: cep.FollowedBy, Within: cep.Duration(5 * time.Minute),
		First: cep.Step{EventType: "OrderCreated", Key: "orderId", Where: []cep.Condition{
			{Path: "totalCents", Op: "ge", Value: 10000}, {Path: "customer.country", Op: "ne", Value: "DE"}}},
		Then: []cep.Step{{EventType: "PaymentFailed", Key: "orderId"}}}}
	h := newHarness(t, rules, 0, orders, payments)
	order := func(min float64, id string, cents int, country string) stream.Record {
		return ev(orders, min, "OrderCreated", "c-"+id, map[string]any{"orderId": id, "totalCents": cents, "customer": map[string]any{"country": country}})
	}
	fail := func(min float64, order string) stream.Record {
		return ev(payments, min, "PaymentFailed", "f-"+order, map[string]any{"orderId": order})
	}
	h.feed(order(0, "big", 20000, "FR"), order(0, "small", 500, "FR"), order(1, "de", 20000, "DE"), order(1, "slow", 20000, "FR"))
	h.feed(fail(2, "big"), fail(2, "small"), fail(2, "de"), fail(6.5, "slow"))
	h.feed(fail(3, "big")) // a second failure of a matched order: the match fired already
	h.idle(orders, 10)
	h.idle(payments, 10)
	h.expect("BigOrderDeclined big c-big,f-big @2")
}

func TestStockoutWithDemand(t *testing.T) {
	h := newHarness(t, cep.StandardRules(time.Hour), 0, orders)
	cart := func(min float64, id, cartID string, products ...string) stream.Record {
		items := []map[string]any{}
		for _, p := range products {
			items = append(items, map[string]any{"productId": p, "quantity": 1})
		}
		return ev(orders, min, "CartUpdated", id, map[string]any{"cartId": cartID, "userId": "u-" + cartID, "items": items})
	}
	level := func(p string, available int) map[string]any {
		return map[string]any{"productId": p, "onHand": available, "reserved": 0, "available": available, "version": 1}
	}
	h.feed(cart(0, "e1", "c1", "p1", "p2"), cart(1, "e2", "c2", "p1"), cart(2, "e3", "c3", "p2"))
	h.feed(cart(3, "e4", "c2")) // c2 checked out: it no longer holds p1
	h.feed(ev(orders, 4, "InventoryAdjusted", "shipped", map[string]any{"productId": "p1", "delta": -1, "reason": "shipped", "level": level("p1", 0)}))
	h.feed(ev(orders, 5, "InventoryReserved", "r1", map[string]any{"orderId": "o1", "levels": []any{level("p1", 0), level("p2", 3), level("p3", 0)}}))
	h.feed(ev(orders, 6, "InventoryAdjusted", "a1", map[string]any{"productId": "p2", "delta": -5, "reason": "set", "level": level("p2", 0)}))
	h.feed(ev(orders, 72*60+2.5, "InventoryAdjusted", "a2", map[string]any{"productId": "p2", "delta": -1, "reason": "set", "level": level("p2", 0)})) // holds expired
	h.idle(orders, 80*60)
	h.expect("StockoutWithDemand p1 e1,r1 @5 holders=1", "StockoutWithDemand p2 e1,e3,a1 @6 holders=2")
}

// TestDetectionsIndependentOfBatchingInterleavingAndRestore runs the
// standard rules over random events on three partitions (payments keyed
// by order, matched by customer across partitions) in many batchings and
// interleavings, some restored mid-way from stored changes.
func TestDetectionsIndependentOfBatchingInterleavingAndRestore(t *testing.T) {
	parts := []stream.Partition{orders, payments, {Topic: "payment-events", Number: 1}}
	rng := rand.New(rand.NewPCG(7, 9))
	perPart := make([][]stream.Record, len(parts))
	id := 0
	for i, p := range parts {
		clock := 0.0
		for off := range 400 {
			clock += rng.Float64()
			min := clock - rng.Float64()*2
			if rng.IntN(25) == 0 {
				min -= 20 // beyond the grace
			}
			id++
			order := fmt.Sprintf("o%d", rng.IntN(60))
			var r stream.Record
			switch {
			case p == orders && rng.IntN(3) == 0:
				r = ev(p, min, "OrderCreated", fmt.Sprint("e", id), map[string]any{"orderId": order})
			case p == orders:
				typ := []string{"OrderShipped", "OrderCancelled", "CartUpdated", "InventoryReserved"}[rng.IntN(4)]
				r = ev(p, min, typ, fmt.Sprint("e", id), map[string]any{"orderId": order, "cartId": fmt.Sprint("c", rng.IntN(5)),
					"items":  []any{map[string]any{"productId": fmt.Sprint("p", rng.IntN(3)), "quantity": 1}},
					"levels": []any{map[string]any{"productId": fmt.Sprint("p", rng.IntN(3)), "available": rng.IntN(2)}}})
			default:
				r = ev(p, min, "PaymentFailed", fmt.Sprint("e", id), map[string]any{"orderId": order, "userId": fmt.Sprint("u", rng.IntN(8))})
			}
			r.Offset = int64(off)
			perPart[i] = append(perPart[i], r)
		}
	}
	want := runPatterns(t, parts, interleave(rng, perPart), -1)
	kinds := map[string]int{}
	for _, w := range want {
		kinds[strings.Fields(w)[0]]++
	}
	if kinds["FraudSuspected"] < 3 || kinds["OrderSlaBreached"] < 3 || kinds["StockoutWithDemand"] < 3 {
		t.Fatalf("the stream should give every kind of detection: %v", kinds)
	}
	for i := range 30 {
		batches := interleave(rng, perPart)
		restoreAt := -1
		if i%2 == 0 {
			restoreAt = rng.IntN(len(batches))
		}
		got := runPatterns(t, parts, batches, restoreAt)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("run %d (restore after batch %d): %d detections differ from the first run's %d", i, restoreAt, len(got), len(want))
		}
	}
}

func runPatterns(t *testing.T, parts []stream.Partition, batches [][]stream.Record, restoreAt int) []string {
	t.Helper()
	newEngine := func() *stream.Engine {
		op, err := cep.New("patterns", cep.StandardRules(15*time.Minute), 3*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		e, err := stream.New(parts, op)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := newEngine()
	var store stream.MemoryStore
	var got []string
	take := func(out stream.Output) {
		for _, r := range out.Results {
			got = append(got, show(r))
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
			if fmt.Sprint(e.Snapshot()) != fmt.Sprint(store.Entries()) {
				t.Fatal("snapshot and stored changes differ")
			}
			e = newEngine()
			if err := e.Restore(store.Entries()); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, p := range parts {
		out, err := e.Idle(p, t0.Add(1000*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		take(out)
	}
	if store.Len() != len(parts) {
		t.Errorf("once every match expired the store holds %d entries, want only the %d partitions'", store.Len(), len(parts))
	}
	return got
}

// interleave merges the partitions' records keeping each partition's
// order, and cuts the result into random batches.
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

func TestRestoreWithChangedRules(t *testing.T) {
	sla := cep.StandardRules(time.Hour)[1]
	fraud := cep.StandardRules(time.Hour)[0]
	fraud.Detection, fraud.DryRun = "FraudTrial", true
	h := newHarness(t, []cep.Rule{sla, fraud}, 0, payments)
	var store stream.MemoryStore
	for i, r := range []stream.Record{
		ev(payments, 0, "OrderCreated", "c1", map[string]any{"orderId": "o1"}),
		failed(1, "f1", "u1"), failed(2, "f2", "u1"),
	} {
		r.Offset = int64(i)
		out, err := h.e.Process([]stream.Record{r})
		if err != nil {
			t.Fatal(err)
		}
		store.Apply(out.Changes)
	}
	// The SLA rule is gone: its pending order is deleted with the next
	// changes; the fraud rule keeps its two failures.
	op, err := cep.New("patterns", []cep.Rule{fraud}, 0)
	if err != nil {
		t.Fatal(err)
	}
	e, err := stream.New([]stream.Partition{payments}, op)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Restore(store.Entries()); err != nil {
		t.Fatal(err)
	}
	third := failed(3, "f3", "u1")
	third.Offset = 3
	out, err := e.Process([]stream.Record{third})
	if err != nil {
		t.Fatal(err)
	}
	store.Apply(out.Changes)
	out, err = e.Idle(payments, t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	store.Apply(out.Changes)
	if len(out.Results) != 1 {
		t.Fatalf("results %v", out.Results)
	}
	d := out.Results[0].Value.(cep.Detection)
	if d.Type != "FraudTrial" || d.Rule != "FraudSuspected" || !d.DryRun || strings.Join(d.Evidence, ",") != "f1,f2,f3" {
		t.Errorf("detection %+v", d)
	}
	if store.Len() != 1 {
		t.Errorf("store holds %v, want only the partition's entry", store.Entries())
	}
}
