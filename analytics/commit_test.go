package analytics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/sqldb"
	"github.com/eventmart/eventmart/internal/stream"
	"github.com/eventmart/eventmart/internal/stream/cep"
	"github.com/eventmart/eventmart/internal/testenv"
)

// orderTopics are the topics the orders of orderFlow go to, 3 partitions each.
var orderTopics = []string{string(event.TopicOrder), string(event.TopicInventory), string(event.TopicPayment)}

// Which events of an order orderFlow returns.
const (
	placed = 1 << iota // OrderCreated, InventoryReserved, PaymentProcessed or PaymentFailed
	ended              // OrderShipped, or OrderCancelled after PaymentFailed
)

// orderFlow returns the messages of n orders as the bus would hand them
// over, from order first on: per order OrderCreated, InventoryReserved,
// PaymentProcessed (one in five PaymentFailed, for three customers, so
// FraudSuspected fires) and OrderShipped (or OrderCancelled), of them
// those that steps (placed|ended) names, keyed by order, with offsets
// from next's (advanced) and log times a millisecond apart from t0.
func orderFlow(tb testing.TB, first, n int, steps int, t0 time.Time, next map[stream.Partition]int64) []*bus.Message {
	tb.Helper()
	var msgs []*bus.Message
	add := func(topic, key string, p event.Payload) {
		e, err := event.New("test", event.Origin{}, p)
		if err != nil {
			tb.Fatal(err)
		}
		m, err := eventmsg.Encode(context.Background(), e)
		if err != nil {
			tb.Fatal(err)
		}
		h := fnv.New32a()
		h.Write([]byte(key))
		part := stream.Partition{Topic: topic, Number: int32(h.Sum32() % 3)}
		m.Topic, m.Key, m.Partition, m.Offset = topic, []byte(key), part.Number, next[part]
		m.Timestamp = t0.Add(time.Duration(len(msgs)) * time.Millisecond)
		next[part]++
		msgs = append(msgs, m)
	}
	for i := first; i < first+n; i++ {
		order, user := fmt.Sprint("o", i), fmt.Sprint("u", i%7)
		declined := i%5 == 0
		if steps&placed != 0 {
			add(orderTopics[0], order, &event.OrderCreated{OrderID: order, Customer: event.Customer{UserID: user}, Currency: []string{"EUR", "USD"}[i%2],
				TotalCents: int64(100 + i), Lines: []event.OrderLine{{ProductID: fmt.Sprint("p", i%5), Quantity: 1, UnitPriceCents: int64(100 + i)}}})
			add(orderTopics[1], order, &event.InventoryReserved{OrderID: order, Lines: []event.Line{{ProductID: fmt.Sprint("p", i%5), Quantity: 1}},
				Levels: []event.StockLevel{{ProductID: fmt.Sprint("p", i%5), Available: int64(i % 4)}}})
			if declined {
				add(orderTopics[2], order, &event.PaymentFailed{PaymentID: order, OrderID: order, UserID: fmt.Sprint("u", i%3), Code: "card-declined"})
			} else {
				add(orderTopics[2], order, &event.PaymentProcessed{PaymentID: order, OrderID: order, UserID: user, AmountCents: int64(100 + i), Currency: "EUR"})
			}
		}
		if steps&ended != 0 {
			if declined {
				add(orderTopics[0], order, &event.OrderCancelled{OrderID: order, UserID: user, ReasonCode: "payment-failed"})
			} else {
				add(orderTopics[0], order, &event.OrderShipped{OrderID: order, UserID: user})
			}
		}
	}
	return msgs
}

// byPartition splits msgs into one batch per partition, as the consumer
// group hands them over.
func byPartition(msgs []*bus.Message) [][]*bus.Message {
	at := map[stream.Partition]int{}
	var out [][]*bus.Message
	for _, m := range msgs {
		p := stream.Partition{Topic: m.Topic, Number: m.Partition}
		i, ok := at[p]
		if !ok {
			i = len(out)
			at[p] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], m)
	}
	return out
}

// flowProcessor returns a processor over orderTopics on a fresh database
// (PostgreSQL with EVENTMART_TEST_SERVICES_DB=postgres), with the standard
// rules and no bus (handle and commit need none).
func flowProcessor(tb testing.TB) *processor {
	tb.Helper()
	var parts []stream.Partition
	for _, t := range orderTopics {
		for n := range int32(3) {
			parts = append(parts, stream.Partition{Topic: t, Number: n})
		}
	}
	return flowProcessorOver(tb, orderTopics, parts)
}

// flowProcessorOver is flowProcessor reading parts of topics.
func flowProcessorOver(tb testing.TB, topics []string, parts []stream.Partition) *processor {
	tb.Helper()
	prefix := "an" + strings.ReplaceAll(event.NewID(), "-", "")[:12]
	dsn := ""
	if os.Getenv("EVENTMART_TEST_SERVICES_DB") == "postgres" {
		dsn = testenv.Postgres(tb)
	}
	db := openDB(tb, "flow", prefix, dsn, tb.TempDir())
	p := &processor{db: db, log: slog.New(slog.DiscardHandler), now: time.Now, grace: time.Second, topics: topics, parts: parts}
	if err := p.start(context.Background(), cep.StandardRules(time.Hour)); err != nil {
		tb.Fatal(err)
	}
	return p
}

// commitTogether hands p msgs as the consumer group would, one batch per
// partition, queued up so that they are committed together (one group
// commit, see processor.handle).
func commitTogether(tb testing.TB, p *processor, msgs []*bus.Message) {
	tb.Helper()
	var bs []*queued
	for _, batch := range byPartition(msgs) {
		recs := make([]stream.Record, len(batch))
		for i, m := range batch {
			recs[i] = Record(m)
		}
		bs = append(bs, &queued{recs: recs, done: make(chan error, 1)})
	}
	p.mu.Lock()
	p.processQueued(context.Background(), bs)
	p.mu.Unlock()
	for _, b := range bs {
		if err := <-b.done; err != nil {
			tb.Fatal(err)
		}
	}
}

// sameState fails unless the stored state is the engine's.
func sameState(t *testing.T, p *processor) {
	t.Helper()
	stored, err := loadState(context.Background(), p.db)
	if err != nil {
		t.Fatal(err)
	}
	cmpEntry := func(a, b stream.StateEntry) int {
		return strings.Compare(a.Operator+"\x00"+a.Key+"\x00"+a.Window, b.Operator+"\x00"+b.Key+"\x00"+b.Window)
	}
	want := p.eng.Snapshot()
	slices.SortFunc(stored, cmpEntry)
	slices.SortFunc(want, cmpEntry)
	if !slices.EqualFunc(stored, want, func(a, b stream.StateEntry) bool { return cmpEntry(a, b) == 0 && bytes.Equal(a.Value, b.Value) }) {
		t.Fatalf("stored state (%d entries) differs from the engine's (%d entries)", len(stored), len(want))
	}
}

func count(t *testing.T, db *sqldb.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCommitWritesABatchInAFewStatements: a commit writes what its
// batches changed with a few statements whatever their size (the entries
// changed, the windows closed, the detections made and their events), and
// the stored state is then exactly the engine's: of an entry changed
// several times in a commit (an order's state created and deleted again)
// the last change is stored. Batches handed over again (a redelivery)
// write nothing, and a detection stored already is not stored or emitted
// again.
func TestCommitWritesABatchInAFewStatements(t *testing.T) {
	p := flowProcessor(t)
	ctx := context.Background()
	next := map[stream.Partition]int64{}
	t0 := time.Now().Add(-3 * time.Hour).Truncate(time.Hour)
	written := func(fn func()) sqldb.Stats {
		before := p.db.Stats()
		fn()
		return p.db.Stats().Sub(before)
	}

	// Fewer than maxRows entries of each kind change in each commit below,
	// so each kind of write is one statement: state upserts, state
	// deletions, closed windows, detections and their events.
	const most = 5

	// 45 orders (180 events) in one commit: each order's join and rule
	// state is created and deleted again within it.
	first := orderFlow(t, 0, 45, placed|ended, t0, next)
	st := written(func() { commitTogether(t, p, first) })
	if st.Commits != 1 || st.Statements > most {
		t.Errorf("a commit of %d events: %d commits, %d statements; want 1 commit of at most %d", len(first), st.Commits, st.Statements, most)
	}
	sameState(t, p)

	// Orders created in one commit and shipped or cancelled in the next,
	// two minutes later: the second deletes their state, closes the first
	// minute and fires FraudSuspected (the first minute's declines).
	created := orderFlow(t, 45, 45, placed, t0.Add(2*time.Minute), next)
	shipped := orderFlow(t, 45, 45, ended, t0.Add(3*time.Minute), next)
	commitTogether(t, p, created)
	sameState(t, p)
	stored, _ := loadState(ctx, p.db)
	st = written(func() { commitTogether(t, p, shipped) })
	if st.Commits != 1 || st.Statements > most {
		t.Errorf("a commit of %d events: %d commits, %d statements; want 1 commit of at most %d", len(shipped), st.Commits, st.Statements, most)
	}
	sameState(t, p)
	joins := func(es []stream.StateEntry) (n int) {
		for _, e := range es {
			if e.Operator == opShipTime {
				n++
			}
		}
		return n
	}
	if after, _ := loadState(ctx, p.db); joins(stored) != 45 || joins(after) != 0 {
		t.Errorf("%d orders waiting to ship stored before they shipped, %d after; want 45 and 0", joins(stored), joins(after))
	}
	if count(t, p.db, "analytics_windows") == 0 {
		t.Error("no window closed")
	}
	if count(t, p.db, "analytics_detections") == 0 || count(t, p.db, "outbox") == 0 {
		t.Fatal("no detection stored and emitted: the commits' detection path was not exercised")
	}

	// The same batches again: nothing is written.
	dets, events := count(t, p.db, "analytics_detections"), count(t, p.db, "outbox")
	st = written(func() { commitTogether(t, p, append(append([]*bus.Message{}, created...), shipped...)) })
	if st.Statements != 0 {
		t.Errorf("a redelivery ran %d statements, want none", st.Statements)
	}
	sameState(t, p)

	// A detection made again (an engine restored from older state): not
	// stored nor emitted twice.
	ds, err := listDetections(ctx, p.db, "", 0, 1)
	if err != nil || len(ds) == 0 {
		t.Fatalf("%d detections listed: %v", len(ds), err)
	}
	var again []Detection
	err = p.db.InTx(ctx, func(tx *sqldb.Tx) error {
		again, err = saveDetections(ctx, tx, []Detection{ds[0], ds[0]})
		return err
	})
	if err != nil || len(again) != 0 {
		t.Errorf("a stored detection saved again: stored %v (%v), want none", again, err)
	}
	if d, e := count(t, p.db, "analytics_detections"), count(t, p.db, "outbox"); d != dets || e != events {
		t.Errorf("%d detections and %d outbox rows after the redelivery, want %d and %d", d, e, dets, events)
	}
}

// TestIdlePassWithoutResultsWaitsForTheNextCommit: an idle pass that makes
// no result (it releases buffered events into the rules' state, nothing
// matches, no window closes) writes nothing; an engine restored from the
// database then (a crash) comes to the same state by repeating the pass;
// the next commit writes the pass's changes with its own, so the stored
// state is the engine's again; and a pass that closes a window commits it
// at once.
func TestIdlePassWithoutResultsWaitsForTheNextCommit(t *testing.T) {
	p := flowProcessor(t)
	ctx := context.Background()
	next := map[stream.Partition]int64{}
	ends := func() map[stream.Partition]int64 {
		m := map[stream.Partition]int64{}
		for _, part := range p.parts {
			m[part] = next[part]
		}
		return m
	}
	written := func(fn func()) sqldb.Stats {
		before := p.db.Stats()
		fn()
		return p.db.Stats().Sub(before)
	}
	idle := func(p *processor, at time.Time) {
		if err := p.declareIdle(ctx, ends(), at); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now().Add(-3 * time.Hour).Truncate(time.Minute).Add(10 * time.Second)
	commitTogether(t, p, orderFlow(t, 1, 4, placed, t0, next)) // orders 1 to 4: none declined
	stored, err := loadState(ctx, p.db)
	if err != nil {
		t.Fatal(err)
	}

	if st := written(func() { idle(p, t0.Add(5*time.Second)) }); st.Statements != 0 {
		t.Errorf("an idle pass without results ran %d statements, want none", st.Statements)
	}
	if p.eng.Watermark() != t0.Add(5*time.Second).UnixNano() || len(p.idled) == 0 {
		t.Fatalf("watermark %v, %d changes waiting: the pass should have released the buffered events", time.Unix(0, p.eng.Watermark()), len(p.idled))
	}
	if after, _ := loadState(ctx, p.db); fmt.Sprint(after) != fmt.Sprint(stored) {
		t.Fatal("the stored state changed without a commit")
	}

	restarted := &processor{db: p.db, log: p.log, now: time.Now, grace: p.grace, topics: p.topics, parts: p.parts}
	if err := restarted.start(ctx, p.rules); err != nil {
		t.Fatal(err)
	}
	idle(restarted, t0.Add(5*time.Second))
	if got, want := fmt.Sprint(restarted.eng.Snapshot()), fmt.Sprint(p.eng.Snapshot()); got != want {
		t.Errorf("restored from the database and idle again, the engine's state differs:\n%s\nwant\n%s", got, want)
	}

	st := written(func() { commitTogether(t, p, orderFlow(t, 1, 4, ended, t0.Add(6*time.Second), next)) })
	if st.Commits != 1 || len(p.idled) != 0 {
		t.Errorf("the next batch: %d commits, %d changes still waiting; want 1 and none", st.Commits, len(p.idled))
	}
	sameState(t, p)

	st = written(func() { idle(p, t0.Add(2*time.Minute)) })
	if st.Commits != 1 || count(t, p.db, "analytics_windows") == 0 {
		t.Errorf("an idle pass closing the first minute: %d commits, %d windows stored; want 1 and the window", st.Commits, count(t, p.db, "analytics_windows"))
	}
	sameState(t, p)
}

// TestGroupCommitRejectedBatchFailsAlone: the batches of a group commit go
// through the engine together, but one it rejects (a record of a
// partition it does not read) fails alone; the others are committed.
func TestGroupCommitRejectedBatchFailsAlone(t *testing.T) {
	p := flowProcessor(t)
	next := map[stream.Partition]int64{}
	var bs []*queued
	for _, batch := range byPartition(orderFlow(t, 1, 4, placed, time.Now().Add(-time.Hour), next)) {
		recs := make([]stream.Record, len(batch))
		for i, m := range batch {
			recs[i] = Record(m)
		}
		bs = append(bs, &queued{recs: recs, done: make(chan error, 1)})
	}
	bad := Record(orderFlow(t, 5, 1, placed, time.Now().Add(-time.Hour), map[stream.Partition]int64{})[0])
	bad.Partition.Topic = "unread-events"
	bs = append(bs[:1], append([]*queued{{recs: []stream.Record{bad}, done: make(chan error, 1)}}, bs[1:]...)...)
	p.mu.Lock()
	p.processQueued(context.Background(), bs)
	p.mu.Unlock()
	for i, b := range bs {
		err := <-b.done
		if (i == 1) != errors.Is(err, stream.ErrUnknownPartition) {
			t.Errorf("batch %d of %d: %v", i, len(bs), err)
		}
	}
	for part, n := range next {
		if p.offset[part] != n-1 {
			t.Errorf("%s: offset %d committed, want %d", part, p.offset[part], n-1)
		}
	}
	sameState(t, p)
}
