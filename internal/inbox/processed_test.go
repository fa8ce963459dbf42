package inbox_test

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/deadletter"
	"github.com/eventmart/eventmart/internal/sqldb"
	"github.com/eventmart/eventmart/internal/testenv"
)

// TestBatchRecordsItsEventsInOneStatement: a batch of fresh events costs
// one lookup of their ids and one insert of them, besides the handlers'
// own statements; the same event twice in a batch, and the batch
// redelivered, have no second effect.
func TestBatchRecordsItsEventsInOneStatement(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var batch []*bus.Message
	for _, p := range []string{"p1", "p2", "p3", "p4", "p5"} {
		batch = append(batch, f.msg(p))
	}
	twice := *batch[0]
	batch = append(batch, &twice)
	before := f.c.DB.Stats()
	if err := f.c.Handle(ctx, batch); err != nil {
		t.Fatal(err)
	}
	// 1 lookup, 5 effects, 1 insert of the 5 ids.
	if got := f.c.DB.Stats().Sub(before); got.Statements != 7 || got.Commits != 1 {
		t.Errorf("a batch of 5 events and a duplicate: %+v, want 7 statements and 1 commit", got)
	}
	if err := f.c.Handle(ctx, batch); err != nil { // redelivered
		t.Fatal(err)
	}
	for _, p := range []string{"p1", "p2", "p3", "p4", "p5"} {
		if n := f.effects(p); n != 1 {
			t.Errorf("%s applied %d times, want 1", p, n)
		}
	}
}

// TestConsumersRacingForABatchApplyItOnce: two members of a group on one
// PostgreSQL database handle the same batch at once (a rebalance hands its
// partition over while the old member is still applying it). The member
// that commits second finds the ids taken when it inserts them: its
// transaction rolls back and fails, and the redelivered batch is a
// duplicate. Each event's effect commits once.
func TestConsumersRacingForABatchApplyItOnce(t *testing.T) {
	db := postgresDB(t)
	old, taking := newFixtureOn(t, db), newFixtureOn(t, db)
	// The old member's handler of p2 waits inside its transaction until
	// the new member has committed the batch.
	entered, release := make(chan struct{}), make(chan struct{})
	h := old.c.Handlers["ProductCreated"]
	old.c.Handlers["ProductCreated"] = func(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p event.Payload) error {
		if p.(*event.ProductCreated).ProductID == "p2" {
			close(entered)
			<-release
		}
		return h(ctx, tx, e, p)
	}
	batch := []*bus.Message{old.msg("p1"), old.msg("p2"), old.msg("p3")}
	ctx := context.Background()
	var wg sync.WaitGroup
	var oldErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		oldErr = old.c.Handle(ctx, batch)
	}()
	<-entered
	if err := taking.c.Handle(ctx, batch); err != nil {
		t.Fatalf("the new member: %v", err)
	}
	close(release)
	wg.Wait()
	if !sqldb.IsUniqueViolation(oldErr) {
		t.Fatalf("the old member's batch: %v, want it failed on the ids the new member committed", oldErr)
	}
	if err := old.c.Handle(ctx, batch); err != nil { // redelivered to the old member
		t.Fatal(err)
	}
	for _, p := range []string{"p1", "p2", "p3"} {
		if n := old.effects(p); n != 1 {
			t.Errorf("%s applied %d times, want 1", p, n)
		}
	}
}

// TestBatchOfUnwantedEventsCostsNoTransaction: a batch holding only event
// types no handler here wants (another service's events on a shared topic)
// is consumed without a transaction, and a batch that mixes them with a
// wanted one costs what the wanted one alone does.
func TestBatchOfUnwantedEventsCostsNoTransaction(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	unwanted := func() *bus.Message {
		e, err := event.New("catalog-service", event.Origin{}, &event.ProductDiscontinued{ProductID: "gone"})
		if err != nil {
			t.Fatal(err)
		}
		m, err := eventmsg.Encode(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	before := f.c.DB.Stats()
	if err := f.c.Handle(ctx, []*bus.Message{unwanted(), unwanted()}); err != nil {
		t.Fatal(err)
	}
	if got := f.c.DB.Stats().Sub(before); got.Statements != 0 || got.Commits != 0 {
		t.Errorf("a batch of unwanted events: %+v, want no statement and no commit", got)
	}
	before = f.c.DB.Stats()
	if err := f.c.Handle(ctx, []*bus.Message{unwanted(), f.msg("p1")}); err != nil {
		t.Fatal(err)
	}
	// 1 lookup, 1 effect, 1 insert of the id.
	if got := f.c.DB.Stats().Sub(before); got.Statements != 3 || got.Commits != 1 || f.effects("p1") != 1 {
		t.Errorf("an unwanted and a wanted event: %+v and %d effects, want 3 statements, 1 commit, 1 effect", got, f.effects("p1"))
	}
}

// postgresDB opens a fresh PostgreSQL database for the test (skipped
// without EVENTMART_TEST_POSTGRES), dropped when it ends.
func postgresDB(t *testing.T) *sqldb.DB {
	base := testenv.Postgres(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	prefix := "t" + strings.ReplaceAll(event.NewID(), "-", "")[:20]
	u.Path = "/" + prefix
	db, err := sqldb.Open(context.Background(), "inbox", u.String(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Close()
		if conn, err := pgx.Connect(context.Background(), base); err == nil {
			conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{prefix + "_inbox"}.Sanitize()+" WITH (FORCE)")
			conn.Close(context.Background())
		}
	})
	return db
}

// TestEventsWantsTurnsDownCostNoTransaction: events the consumer's Wants
// turns down are consumed without a transaction and without a
// processed-event record, on SQLite and PostgreSQL; a batch mixing them
// with a wanted one costs what the wanted one alone does; and a turned-down
// event redelivered once it is wanted is applied, once.
func TestEventsWantsTurnsDownCostNoTransaction(t *testing.T) {
	for _, dbName := range []string{"sqlite", "postgres"} {
		t.Run(dbName, func(t *testing.T) {
			var f *fixture
			if dbName == "postgres" {
				f = newFixtureOn(t, postgresDB(t))
			} else {
				f = newFixture(t)
			}
			ctx := context.Background()
			var mu sync.Mutex
			wanted := map[string]bool{"p1": true}
			f.c.Wants = func(ctx context.Context, e *event.Envelope, p event.Payload) bool {
				mu.Lock()
				defer mu.Unlock()
				return wanted[p.(*event.ProductCreated).ProductID]
			}
			skipped := []*bus.Message{f.msg("p2"), f.msg("p3")}
			before := f.c.DB.Stats()
			if err := f.c.Handle(ctx, skipped); err != nil {
				t.Fatal(err)
			}
			if got := f.c.DB.Stats().Sub(before); got.Statements != 0 || got.Commits != 0 {
				t.Errorf("a batch of turned-down events: %+v, want no statement and no commit", got)
			}
			before = f.c.DB.Stats()
			if err := f.c.Handle(ctx, []*bus.Message{skipped[0], f.msg("p1"), skipped[1]}); err != nil {
				t.Fatal(err)
			}
			// 1 lookup of p1's id, 1 effect, 1 insert of the id.
			if got := f.c.DB.Stats().Sub(before); got.Statements != 3 || got.Commits != 1 || f.effects("p1") != 1 {
				t.Errorf("turned-down events and a wanted one: %+v and %d effects, want 3 statements, 1 commit, 1 effect", got, f.effects("p1"))
			}
			var recorded int
			if err := f.c.DB.QueryRow(ctx, `SELECT COUNT(*) FROM processed_events`).Scan(&recorded); err != nil {
				t.Fatal(err)
			}
			if recorded != 1 || f.effects("p2") != 0 || f.effects("p3") != 0 {
				t.Errorf("%d events recorded processed, p2 and p3 applied %d and %d times; want p1 alone recorded and the others not applied",
					recorded, f.effects("p2"), f.effects("p3"))
			}
			mu.Lock()
			wanted["p2"] = true // what Wants reads changed: p2 is wanted now
			mu.Unlock()
			for range 2 { // redelivered, twice
				if err := f.c.Handle(ctx, skipped); err != nil {
					t.Fatal(err)
				}
			}
			if f.effects("p2") != 1 || f.effects("p3") != 0 {
				t.Errorf("redelivered once p2 is wanted: p2 applied %d times, p3 %d; want 1 and 0", f.effects("p2"), f.effects("p3"))
			}
		})
	}
}

// TestOwnDeduplicationKeepsNoProcessedEvents: a consumer whose handlers
// recognise what they applied before (OwnDeduplication) neither looks up
// nor records processed events: a batch costs its handlers' statements
// only, and a redelivered event reaches its handler again.
func TestOwnDeduplicationKeepsNoProcessedEvents(t *testing.T) {
	f := newFixture(t)
	f.c.OwnDeduplication = true
	ctx := context.Background()
	batch := []*bus.Message{f.msg("p1"), f.msg("p2")}
	before := f.c.DB.Stats()
	if err := f.c.Handle(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if got := f.c.DB.Stats().Sub(before); got.Statements != 2 || got.Commits != 1 {
		t.Errorf("a batch of 2 events: %+v, want their 2 effects' statements and 1 commit", got)
	}
	if err := f.c.Handle(ctx, batch[:1]); err != nil { // redelivered
		t.Fatal(err)
	}
	if n := f.effects("p1"); n != 2 {
		t.Errorf("p1 redelivered reached its handler %d times, want 2 (the handler's own guard decides)", n)
	}
	var rows int
	if err := f.c.DB.QueryRow(ctx, `SELECT COUNT(*) FROM processed_events`).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("%d processed-event rows (%v), want none", rows, err)
	}
}

// TestRecordsOfAnUnwantedTypeAreNotDecoded: WantsType turns a type down
// before its records are decoded — even one that would not decode is
// consumed as ignored, without its handler, a transaction or a dead
// letter; once the type is wanted, its records are decoded and applied.
func TestRecordsOfAnUnwantedTypeAreNotDecoded(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var mu sync.Mutex
	wantsProducts := false
	f.c.WantsType = func(_ context.Context, typ event.Type) bool {
		mu.Lock()
		defer mu.Unlock()
		return typ != "ProductCreated" || wantsProducts
	}
	garbled := f.msg("p-garbled")
	garbled.Value = []byte("\x00not json")
	batch := []*bus.Message{f.msg("p1"), garbled}
	before := f.c.DB.Stats()
	if err := f.c.Handle(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if got := f.c.DB.Stats().Sub(before); got.Statements != 0 || got.Commits != 0 {
		t.Errorf("a batch of an unwanted type: %+v, want no statement and no commit (no dead letter either)", got)
	}
	if f.effects("p1") != 0 {
		t.Error("an event of an unwanted type was applied")
	}
	mu.Lock()
	wantsProducts = true
	mu.Unlock()
	if err := f.c.Handle(ctx, []*bus.Message{batch[0]}); err != nil { // redelivered, wanted now
		t.Fatal(err)
	}
	if f.effects("p1") != 1 {
		t.Errorf("p1 redelivered once its type is wanted: applied %d times, want 1", f.effects("p1"))
	}
}

// TestEnvelopeOnlyHandlersGetNoPayload: a consumer whose handlers read
// envelopes only (EnvelopeOnly) hands them a nil payload, undecoded: an
// event whose payload breaks its schema reaches the handler as it was
// published; an envelope that does not decode, or of a version the
// catalog lacks, is still dead-lettered.
func TestEnvelopeOnlyHandlersGetNoPayload(t *testing.T) {
	f := newFixture(t)
	f.c.EnvelopeOnly = true
	got := map[string]bool{} // a batch rolled back is applied again: a set
	f.c.Handlers["ProductCreated"] = func(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p event.Payload) error {
		if p != nil {
			t.Errorf("%s: payload %T, want none", e.EventID, p)
		}
		got[string(e.Data)] = true
		return nil
	}
	ctx := context.Background()
	offSchema := f.msg("p-schema")
	offSchema.Value = []byte(strings.Replace(string(offSchema.Value), `"priceCents":0`, `"priceCents":"12"`, 1))
	garbled := f.msg("p-garbled")
	garbled.Value = []byte("\x00not json")
	unsupported := f.msg("p-v9")
	unsupported.Value = []byte(strings.Replace(string(unsupported.Value), `"v1"`, `"v9"`, 1))
	if err := f.c.Handle(ctx, []*bus.Message{offSchema, garbled, unsupported}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[`{"productId":"p-schema","sku":"","name":"","priceCents":"12","currency":""}`] {
		t.Errorf("handled %v, want the off-schema payload alone, as published", got)
	}
	dl, err := f.c.DeadLetters().List(ctx, deadletter.StatusDead, 10, 0)
	if err != nil || len(dl) != 2 {
		t.Fatalf("dead letters %+v (%v), want the garbled record and the unsupported version", dl, err)
	}
	for _, d := range dl {
		if d.Value != string(garbled.Value) && !strings.Contains(d.Error, "unsupported event version") {
			t.Errorf("dead letter %+v: want the garbled record or the unsupported version", d)
		}
	}
}
