package inbox_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/deadletter"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// fixture is a consumer over a SQLite database with a handler whose
// behaviour per product id the test controls, and a clock it moves.
type fixture struct {
	t       testing.TB
	c       *inbox.Consumer
	mu      sync.Mutex
	now     time.Time
	fail    map[string]error // productId -> error to return
	panics  map[string]bool
	applied map[string]int // productId -> times its effect committed
	offset  int64
}

func newFixture(t testing.TB) *fixture {
	db, err := sqldb.Open(context.Background(), "t", "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return newFixtureOn(t, db)
}

// newFixtureOn is newFixture on db, migrated here.
func newFixtureOn(t testing.TB, db *sqldb.DB) *fixture {
	err := db.Migrate(context.Background(),
		sqldb.Migration{Name: "1", SQL: outbox.Migration}, sqldb.Migration{Name: "2", SQL: inbox.Migration},
		sqldb.Migration{Name: "3", SQL: deadletter.Migration},
		sqldb.Migration{Name: "4", SQL: `CREATE TABLE effects (product_id TEXT NOT NULL)`})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), fail: map[string]error{}, panics: map[string]bool{}, applied: map[string]int{}}
	f.c = &inbox.Consumer{
		Group: "test-service", DB: db, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now: func() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now },
		Handlers: map[event.Type]inbox.Func{
			"ProductCreated": func(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p event.Payload) error {
				id := p.(*event.ProductCreated).ProductID
				f.mu.Lock()
				err, panics := f.fail[id], f.panics[id]
				f.mu.Unlock()
				if panics {
					panic("handler bug")
				}
				if err != nil {
					return err
				}
				_, err = tx.Exec(ctx, `INSERT INTO effects (product_id) VALUES (?)`, id)
				return err
			},
		},
	}
	return f
}

func (f *fixture) msg(productID string) *bus.Message { return f.msgWithID(productID, "") }

// msgWithID is msg with event id id ("": a new one, as event.New gives).
func (f *fixture) msgWithID(productID, id string) *bus.Message {
	e, err := event.New("catalog-service", event.Origin{}, &event.ProductCreated{ProductID: productID})
	if err != nil {
		f.t.Fatal(err)
	}
	if id != "" {
		e.EventID = id
	}
	m, err := eventmsg.Encode(context.Background(), e)
	if err != nil {
		f.t.Fatal(err)
	}
	f.offset++
	m.Partition, m.Offset = 0, f.offset
	return m
}

func (f *fixture) effects(productID string) int {
	var n int
	f.c.DB.QueryRow(context.Background(), `SELECT COUNT(*) FROM effects WHERE product_id = ?`, productID).Scan(&n)
	return n
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func TestPoisonRecordIsDeadLetteredAndTheBatchGoesOn(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	garbage := &bus.Message{Topic: "catalog-events", Partition: 0, Offset: 99, Key: []byte("k"), Value: []byte("\x00not json"),
		Headers: []bus.Header{{Key: "eventType", Value: []byte("ProductCreated")}}}
	unknownVersion := f.msg("p-v9")
	unknownVersion.Value = []byte(strings.Replace(string(unknownVersion.Value), `"v1"`, `"v9"`, 1))
	bad := f.msg("p-bad")
	f.fail["p-bad"] = inbox.Permanent(errors.New("sku is empty"))
	ok := f.msg("p-ok")
	if err := f.c.Handle(ctx, []*bus.Message{garbage, unknownVersion, bad, ok}); err != nil {
		t.Fatalf("Handle = %v, want the batch to succeed", err)
	}
	if f.effects("p-ok") != 1 || f.effects("p-bad") != 0 {
		t.Error("good record not applied, or failed record's effects kept")
	}
	dl, err := f.c.DeadLetters().List(ctx, deadletter.StatusDead, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != 3 {
		t.Fatalf("%d dead letters, want 3: %+v", len(dl), dl)
	}
	for i, want := range []string{"invalid envelope", "unsupported event version", "sku is empty"} {
		if !strings.Contains(dl[i].Error, want) || !dl[i].Permanent || dl[i].Attempts != 1 || dl[i].Group != "test-service" {
			t.Errorf("dead letter %d = %+v, want permanent with %q", i, dl[i], want)
		}
	}
	if dl[0].Offset != 99 || dl[0].Value != "\x00not json" || dl[0].Topic != "catalog-events" {
		t.Errorf("original record not kept: %+v", dl[0])
	}
	if s := f.c.Stats(); s.DeadLettered != 3 {
		t.Errorf("stats %+v", s)
	}
}

// MaxAttempts counts every attempt: with EVENTMART_RETRY_ATTEMPTS=2 a
// failing record is dead after its second attempt, in place, not after the
// three in-place attempts and a delayed one.
func TestMaxAttemptsBelowInPlaceRetries(t *testing.T) {
	f := newFixture(t)
	f.c.MaxAttempts = 2
	ctx := context.Background()
	flaky, ok := f.msg("p-flaky"), f.msg("p-ok")
	f.fail["p-flaky"] = errors.New("warehouse API timeout")
	batch := []*bus.Message{flaky, ok}
	if err := f.c.Handle(ctx, batch); err == nil {
		t.Fatal("attempt 1 succeeded, want the batch redelivered")
	}
	if err := f.c.Handle(ctx, batch); err != nil {
		t.Fatalf("attempt 2 = %v, want the record dead-lettered and the batch applied", err)
	}
	if f.effects("p-ok") != 1 {
		t.Fatal("the rest of the batch was not applied")
	}
	dl, _ := f.c.DeadLetters().List(ctx, "", 10, 0)
	if len(dl) != 1 || dl[0].Attempts != 2 || dl[0].Permanent {
		t.Fatalf("dead letters %+v, want one after 2 attempts", dl)
	}
	f.advance(time.Hour)
	if n, err := f.c.RetryDue(ctx); err != nil || n != 0 {
		t.Fatalf("%d delayed retries (%v), want none: nothing was parked", n, err)
	}
}

func TestTransientFailureRetriesInPlaceThenParksThenDeadLetters(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	flaky, ok := f.msg("p-flaky"), f.msg("p-ok")
	f.fail["p-flaky"] = errors.New("warehouse API timeout")
	batch := []*bus.Message{flaky, ok}
	for i := 1; i <= inbox.DefaultInPlaceRetries-1; i++ {
		if err := f.c.Handle(ctx, batch); err == nil {
			t.Fatalf("attempt %d succeeded, want the batch redelivered", i)
		}
	}
	if f.effects("p-ok") != 0 {
		t.Fatal("a failed batch committed effects")
	}
	// The third failure parks the record: the partition moves on.
	if err := f.c.Handle(ctx, batch); err != nil {
		t.Fatalf("third attempt = %v, want the record parked", err)
	}
	if f.effects("p-ok") != 1 {
		t.Fatal("the rest of the batch was not applied")
	}
	// Delayed retries fail until MaxAttempts, then the record is dead.
	for attempt := inbox.DefaultInPlaceRetries + 1; attempt <= inbox.DefaultMaxAttempts; attempt++ {
		if n, err := f.c.RetryDue(ctx); err != nil || n != 0 {
			t.Fatalf("retried %d before its time, %v", n, err)
		}
		f.advance(time.Hour)
		if n, err := f.c.RetryDue(ctx); err != nil || n != 1 {
			t.Fatalf("attempt %d: retried %d, %v", attempt, n, err)
		}
	}
	dl, _ := f.c.DeadLetters().List(ctx, "", 10, 0)
	if len(dl) != 1 || dl[0].Attempts != inbox.DefaultMaxAttempts || dl[0].Permanent || !strings.Contains(dl[0].Error, "warehouse API timeout") {
		t.Fatalf("dead letters %+v", dl)
	}

	// Fixed and redriven: applied exactly once.
	f.mu.Lock()
	delete(f.fail, "p-flaky")
	f.mu.Unlock()
	if n, err := f.c.DeadLetters().Redrive(ctx, nil); err != nil || n != 1 {
		t.Fatalf("Redrive = %d, %v", n, err)
	}
	if _, err := f.c.DeadLetters().Redrive(ctx, []int64{dl[0].ID}); err == nil {
		t.Error("redriving a redriven letter succeeded")
	}
	if n, err := f.c.RetryDue(ctx); err != nil || n != 1 {
		t.Fatalf("redriven retry: %d, %v", n, err)
	}
	if f.effects("p-flaky") != 1 {
		t.Fatal("redriven event not applied")
	}
	if n, _ := f.c.DeadLetters().Redrive(ctx, nil); n != 0 {
		t.Error("nothing should be left to redrive")
	}
	// Redelivered after all (an offset commit lost): no second effect.
	if err := f.c.Handle(ctx, batch); err != nil || f.effects("p-flaky") != 1 || f.effects("p-ok") != 1 {
		t.Fatalf("redelivery had a second effect (err %v)", err)
	}
}

func TestPanickingHandlerIsAnErrorNotACrash(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.panics["p-panic"] = true
	m := f.msg("p-panic")
	for i := 0; i < inbox.DefaultInPlaceRetries; i++ {
		f.c.Handle(ctx, []*bus.Message{m})
	}
	var parked int
	f.c.DB.QueryRow(ctx, `SELECT COUNT(*) FROM retry_queue`).Scan(&parked)
	if parked != 1 {
		t.Fatalf("%d parked, want the panicking record parked", parked)
	}
}

// A record whose payload does not match its event type's schema (here: a
// producer that sent priceCents as a string and an extra field) never
// reaches the handler: it goes to the dead-letter queue at once, with the
// schema's reasons.
func TestSchemaViolationIsDeadLetteredWithTheReason(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	bad := f.msg("p-schema")
	bad.Value = []byte(strings.Replace(string(bad.Value), `"priceCents":0`, `"priceCents":"12","colour":"red"`, 1))
	if _, err := eventmsg.Decode(bad); err != nil {
		t.Fatalf("the envelope itself must be valid: %v", err)
	}
	ok := f.msg("p-ok")
	if err := f.c.Handle(ctx, []*bus.Message{bad, ok}); err != nil {
		t.Fatalf("Handle = %v", err)
	}
	if f.effects("p-schema") != 0 || f.effects("p-ok") != 1 {
		t.Error("the invalid record was applied, or the valid one was not")
	}
	dl, err := f.c.DeadLetters().List(ctx, deadletter.StatusDead, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1: %+v", len(dl), dl)
	}
	for _, want := range []string{"ProductCreated v1 does not match its schema", "at '/priceCents': got string, want integer", "'colour' not allowed"} {
		if !strings.Contains(dl[0].Error, want) {
			t.Errorf("dead letter reason %q lacks %q", dl[0].Error, want)
		}
	}
	if !dl[0].Permanent || dl[0].Attempts != 1 || dl[0].Value != string(bad.Value) {
		t.Errorf("dead letter = %+v", dl[0])
	}
}

// TestCombinedRoundCountsAFailureOnce: batches of two partitions that
// queue while a transaction runs are applied together; when one of them
// fails, each is applied again alone, and the failing record's attempt is
// counted once, not once per try of the same delivery.
func TestCombinedRoundCountsAFailureOnce(t *testing.T) {
	f := newFixture(t)
	f.c.InPlaceRetries = 5
	handler := f.c.Handlers["ProductCreated"]
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	f.c.Handlers["ProductCreated"] = func(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p event.Payload) error {
		if p.(*event.ProductCreated).ProductID == "slow" {
			once.Do(func() { close(entered) })
			<-release
		}
		return handler(ctx, tx, e, p)
	}
	f.fail["bad"] = errors.New("transient")
	ctx := context.Background()
	slow, good, bad := f.msg("slow"), f.msg("good"), f.msg("bad")
	good.Partition, bad.Partition = 1, 2
	errs := make(chan error, 3)
	go func() { errs <- f.c.Handle(ctx, []*bus.Message{slow}) }()
	<-entered // the leader is inside its transaction
	go func() { errs <- f.c.Handle(ctx, []*bus.Message{good}) }()
	go func() { errs <- f.c.Handle(ctx, []*bus.Message{bad}) }()
	for f.c.Queued() != 2 {
		runtime.Gosched()
	}
	close(release)
	var failed int
	for range 3 {
		if err := <-errs; err != nil {
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("%d batches failed, want the bad one", failed)
	}
	if got := f.c.Stats().Retried; got != 1 {
		t.Fatalf("the failing record's attempts counted %d times, want 1", got)
	}
	if f.effects("good") != 1 || f.effects("slow") != 1 || f.effects("bad") != 0 {
		t.Fatalf("effects: good %d, slow %d, bad %d", f.effects("good"), f.effects("slow"), f.effects("bad"))
	}
}

// TestParkRolledBackByALaterFailureKeepsItsCount: a record reaching the
// in-place limit is parked, but a later record of its batch fails in
// place and rolls the park back; at the redeliveries the first record
// fails again. It is parked with InPlaceRetries attempts all the same, so
// the delayed retries still end at MaxAttempts.
func TestParkRolledBackByALaterFailureKeepsItsCount(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	first, later := f.msg("p-first"), f.msg("p-later")
	f.fail["p-first"] = errors.New("down")
	batch := []*bus.Message{first}
	for i := 1; i < inbox.DefaultInPlaceRetries; i++ {
		f.c.Handle(ctx, batch)
	}
	// Now with a later record that fails too: p-first reaches the limit,
	// p-later rolls the batch back, twice, then is parked as well.
	f.fail["p-later"] = errors.New("down too")
	batch = append(batch, later)
	for i := 1; i < inbox.DefaultInPlaceRetries; i++ {
		if err := f.c.Handle(ctx, batch); err == nil {
			t.Fatalf("redelivery %d succeeded, want p-later to fail it", i)
		}
	}
	if err := f.c.Handle(ctx, batch); err != nil {
		t.Fatalf("both records should be parked now: %v", err)
	}
	for attempt := inbox.DefaultInPlaceRetries + 1; attempt <= inbox.DefaultMaxAttempts; attempt++ {
		f.advance(time.Hour)
		if n, err := f.c.RetryDue(ctx); err != nil || n != 2 {
			t.Fatalf("attempt %d: retried %d, %v", attempt, n, err)
		}
	}
	dl, _ := f.c.DeadLetters().List(ctx, "", 10, 0)
	if len(dl) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dl))
	}
	for _, d := range dl {
		if d.Attempts != inbox.DefaultMaxAttempts {
			t.Errorf("%s dead after %d attempts, want %d", d.EventID, d.Attempts, inbox.DefaultMaxAttempts)
		}
	}
}

// Groups reading one record with a memo (the embedded log's tail) get the
// same envelope and payload, decoded once for them all; a record without a
// memo (Kafka, a read from SQLite) is decoded by each group for itself.
func TestGroupsShareTheDecodedPayloadOfARecordWithAMemo(t *testing.T) {
	ctx := context.Background()
	type got struct {
		e *event.Envelope
		p event.Payload
	}
	seen := map[string][]got{} // productId -> what each group's handler got
	var mu sync.Mutex
	var groups []*inbox.Consumer
	for range 2 {
		f := newFixture(t)
		f.c.Handlers["ProductCreated"] = func(_ context.Context, _ *sqldb.Tx, e *event.Envelope, p event.Payload) error {
			mu.Lock()
			defer mu.Unlock()
			id := p.(*event.ProductCreated).ProductID
			seen[id] = append(seen[id], got{e, p})
			return nil
		}
		groups = append(groups, f.c)
	}
	f := newFixture(t) // only to build messages
	shared, plain := f.msg("p-shared"), f.msg("p-plain")
	bus.NewMemo(shared)
	for _, c := range groups {
		if err := c.Handle(ctx, []*bus.Message{shared, plain}); err != nil {
			t.Fatal(err)
		}
	}
	if s := seen["p-shared"]; len(s) != 2 || s[0].p != s[1].p || s[0].e != s[1].e {
		t.Errorf("record with a memo: the groups got %+v, want one envelope and payload twice", s)
	}
	if s := seen["p-plain"]; len(s) != 2 || s[0].p == s[1].p || s[0].e == s[1].e {
		t.Errorf("record without a memo: the groups got %+v, want each its own envelope and payload", s)
	}
}

// A consumer subscribes with its Linger; without one its batches are
// handed over at once.
func TestSubscribeOptionsCarryTheLinger(t *testing.T) {
	for _, d := range []time.Duration{0, 75 * time.Millisecond} {
		c := &inbox.Consumer{Group: "g", Linger: d}
		if got := bus.NewSubscribeConfig(c.SubscribeOptions()...).Linger; got != d {
			t.Errorf("Linger %v: subscribes with linger %v", d, got)
		}
	}
}
