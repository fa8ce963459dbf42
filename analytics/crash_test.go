package analytics

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/bus/embedded"
	"github.com/eventmart/eventmart/bus/kafka"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/sqldb"
	"github.com/eventmart/eventmart/internal/stream"
	"github.com/eventmart/eventmart/internal/stream/cep"
	"github.com/eventmart/eventmart/internal/testenv"
)

// The crash test's child process reads these.
const (
	envChild  = "ANALYTICS_CRASH_CHILD"  // the data directory
	envDriver = "ANALYTICS_CRASH_DRIVER" // embedded or kafka
	envTopics = "ANALYTICS_CRASH_TOPICS" // comma-separated
	envDB     = "ANALYTICS_CRASH_DB"     // "" (SQLite) or a postgres:// URL
)

// crashBatch is how many records of one partition the crash test hands
// the processor at a time: small, so the run is many commits long.
const crashBatch = 3

// TestCrashEquivalenceEmbedded and TestCrashEquivalenceKafka: a processor
// killed with SIGKILL in the middle of a window (of every window: the
// events span a few seconds) and started again on its database, handed
// the records from a little before the offsets it stored (as its consumer
// group would: its commits trail), ends with the same closed windows and
// the same detections as a run that was never interrupted.
func TestCrashEquivalenceEmbedded(t *testing.T) { crashEquivalence(t, "embedded") }

func TestCrashEquivalenceKafka(t *testing.T) { crashEquivalence(t, "kafka") }

func crashEquivalence(t *testing.T, driver string) {
	if dir := os.Getenv(envChild); dir != "" {
		if os.Getenv(envDriver) == driver {
			crashChild(t, dir)
		}
		return
	}
	dir := t.TempDir()
	prefix := "an" + strings.ReplaceAll(event.NewID(), "-", "")[:12]
	topics := []string{prefix + "-orders", prefix + "-payments", prefix + "-inventory"}
	dsn := ""
	if os.Getenv("EVENTMART_TEST_SERVICES_DB") == "postgres" {
		dsn = testenv.Postgres(t)
	}
	b := openBus(t, driver, dir)
	var cfgs []bus.TopicConfig
	for _, tp := range topics {
		cfgs = append(cfgs, bus.TopicConfig{Name: tp, Partitions: 3})
	}
	if _, err := b.EnsureTopics(context.Background(), cfgs); err != nil {
		t.Fatal(err)
	}
	publishMix(t, b, topics, 600)
	want := fullRun(t, b, topics, openDB(t, "reference", prefix, dsn, dir), false)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// The child processes until it is killed, a few commits in.
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashEquivalence", "-test.count=1")
	cmd.Env = append(os.Environ(), envChild+"="+dir, envDriver+"="+driver, envTopics+"="+strings.Join(topics, ","), envDB+"="+dsn,
		"ANALYTICS_CRASH_PREFIX="+prefix)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	for n := 0; n < 10 && lines.Scan(); {
		if lines.Text() == "committed" {
			n++
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	b = openBus(t, driver, dir)
	defer b.Close()
	db := openDB(t, "crashed", prefix, dsn, dir)
	entries, err := loadState(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	done, total := 0, 0
	for _, e := range entries {
		if e.Operator == "" {
			done += int(decodeOffset(e.Value)) + 1
		}
	}
	for _, tp := range topics {
		offs, _ := b.Offsets(context.Background(), tp)
		for _, o := range offs {
			total += int(o.End)
		}
	}
	if done == 0 || done >= total {
		t.Fatalf("the child had committed %d of %d records when killed; want it killed midway", done, total)
	}
	t.Logf("killed after committing %d of %d records", done, total)
	got := fullRun(t, b, topics, db, true)
	if got != want {
		t.Errorf("after SIGKILL and restart:\n%s\nuninterrupted:\n%s", got, want)
	}
}

func dropDatabase(t testing.TB, base, name string) {
	conn, err := pgx.Connect(context.Background(), base)
	if err != nil {
		t.Errorf("drop %s: %v", name, err)
		return
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Errorf("drop %s: %v", name, err)
	}
}

func openBus(t *testing.T, driver, dir string) bus.Bus {
	t.Helper()
	switch driver {
	case "kafka":
		b, err := kafka.Open(context.Background(), testenv.Kafka(t))
		if err != nil {
			t.Fatal(err)
		}
		return b
	default:
		b, err := embedded.Open(filepath.Join(dir, "eventlog.db"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// openDB opens (creating it) the analytics database name, migrated.
func openDB(t testing.TB, name, prefix, dsn, dir string) *sqldb.DB {
	t.Helper()
	ctx := context.Background()
	if dsn != "" {
		dsn = strings.Replace(dsn, "/postgres?", "/"+prefix+"?", 1)
	}
	db, err := sqldb.Open(ctx, name, dsn, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Close()
		if dsn != "" && os.Getenv(envChild) == "" {
			dropDatabase(t, testenv.Postgres(t), prefix+"_"+name)
		}
	})
	ms, err := sqldb.ReadMigrations(Def().Migrations, "")
	if err != nil {
		t.Fatal(err)
	}
	platform := []sqldb.Migration{{Name: "platform-0001_outbox.sql", SQL: outbox.Migration}} // detections' events
	if err := db.Migrate(ctx, append(platform, ms...)...); err != nil {
		t.Fatal(err)
	}
	return db
}

// publishMix publishes n events over the topics: orders in two
// currencies, payments (a third of them declined, for a handful of
// customers, so FraudSuspected fires), stock reservations.
func publishMix(t *testing.T, b bus.Bus, topics []string, n int) {
	t.Helper()
	var msgs []*bus.Message
	for i := range n {
		var p event.Payload
		topic := topics[i%3]
		order := fmt.Sprint("o", i)
		switch i % 3 {
		case 0:
			p = &event.OrderCreated{OrderID: order, Customer: event.Customer{UserID: fmt.Sprint("u", i%7)}, Currency: []string{"EUR", "USD"}[i%2],
				TotalCents: int64(100 + i), Lines: []event.OrderLine{{ProductID: fmt.Sprint("p", i%5), Quantity: 1, UnitPriceCents: int64(100 + i)}}}
		case 1:
			if i%2 == 1 {
				p = &event.PaymentFailed{PaymentID: order, OrderID: order, UserID: fmt.Sprint("u", i%4), Code: "card-declined"}
			} else {
				p = &event.PaymentProcessed{PaymentID: order, OrderID: order, UserID: fmt.Sprint("u", i%4), AmountCents: int64(i), Currency: "EUR"}
			}
		default:
			p = &event.InventoryReserved{OrderID: order, Lines: []event.Line{{ProductID: fmt.Sprint("p", i%5), Quantity: 1}},
				Levels: []event.StockLevel{{ProductID: fmt.Sprint("p", i%5), Available: int64(i % 4)}}}
		}
		e, err := event.New("test", event.Origin{}, p)
		if err != nil {
			t.Fatal(err)
		}
		m, err := eventmsg.Encode(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		m.Topic = topic
		msgs = append(msgs, m)
		if len(msgs) == 20 { // several appends, so the log times differ
			if err := b.Publish(context.Background(), msgs...); err != nil {
				t.Fatal(err)
			}
			msgs = nil
		}
	}
	if err := b.Publish(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	// Then a third of the orders ship and a third are cancelled, in
	// appends of their own (later log times): the order → shipped join's
	// state lives across the crash.
	msgs = nil
	for i := 0; i < n; i += 3 {
		order := fmt.Sprint("o", i)
		var p event.Payload
		switch i % 9 {
		case 0:
			p = &event.OrderShipped{OrderID: order, UserID: fmt.Sprint("u", i%7)}
		case 3:
			p = &event.OrderCancelled{OrderID: order, UserID: fmt.Sprint("u", i%7), ReasonCode: "payment-failed"}
		default:
			continue
		}
		e, err := event.New("test", event.Origin{}, p)
		if err != nil {
			t.Fatal(err)
		}
		m, err := eventmsg.Encode(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		m.Topic = topics[0]
		if err := b.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
}

// crashProcessor returns a processor over topics with the standard rules.
func crashProcessor(t testing.TB, b bus.Bus, topics []string, db *sqldb.DB) *processor {
	t.Helper()
	parts, err := Partitions(context.Background(), b, topics)
	if err != nil {
		t.Fatal(err)
	}
	p := &processor{db: db, bus: b, log: slog.New(slog.DiscardHandler), now: time.Now, grace: time.Second, topics: topics, parts: parts}
	if err := p.start(context.Background(), cep.StandardRules(time.Hour)); err != nil {
		t.Fatal(err)
	}
	return p
}

// feed hands p the records of its partitions from the offsets in from
// (nil: from the start), crashBatch at a time per partition, partitions
// taking turns; committed is called after each batch. It returns the
// latest record time.
func feed(t testing.TB, b bus.Bus, p *processor, from map[stream.Partition]int64, committed func()) int64 {
	t.Helper()
	ctx := context.Background()
	next := map[stream.Partition]int64{}
	for k, v := range from {
		next[k] = v
	}
	var last int64
	for more := true; more; {
		more = false
		for _, part := range p.parts {
			msgs, err := b.Read(ctx, part.Topic, part.Number, next[part], crashBatch)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) == 0 {
				continue
			}
			more = true
			next[part] = msgs[len(msgs)-1].Offset + 1
			for _, m := range msgs {
				last = max(last, m.Timestamp.UnixNano())
			}
			if err := p.handle(ctx, msgs); err != nil {
				t.Fatal(err)
			}
			if committed != nil {
				committed()
			}
		}
	}
	return last
}

// fullRun feeds every record to a processor on db, then declares every
// partition idle two hours past the last record (closing every window
// and timing out every pattern), and returns the closed windows and the
// detections as text.
func fullRun(t testing.TB, b bus.Bus, topics []string, db *sqldb.DB, resume bool) string {
	t.Helper()
	p := crashProcessor(t, b, topics, db)
	var from map[stream.Partition]int64
	if resume {
		// Where a consumer group would resume: a little before the stored
		// offsets (its commits trail), never from the start.
		from = map[stream.Partition]int64{}
		for part, off := range p.offset {
			from[part] = max(0, off-1)
		}
	}
	last := feed(t, b, p, from, nil)
	for _, part := range p.parts { // the time of the last record, read or not
		if msgs, _ := b.Read(context.Background(), part.Topic, part.Number, 0, 1<<20); len(msgs) > 0 {
			last = max(last, msgs[len(msgs)-1].Timestamp.UnixNano())
		}
	}
	end := time.Unix(0, last).Add(2 * time.Hour)
	p.mu.Lock()
	var outs []stream.Output
	for _, part := range p.parts {
		out, err := p.eng.Idle(part, end)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, out)
	}
	if err := p.commit(context.Background(), outs); err != nil {
		t.Fatal(err)
	}
	p.mu.Unlock()
	return dump(t, db)
}

func dump(t testing.TB, db *sqldb.DB) string {
	t.Helper()
	ctx := context.Background()
	var sb strings.Builder
	ws, err := sqldb.List(ctx, db, `SELECT size, start_ms, counters FROM analytics_windows ORDER BY size, start_ms`, nil,
		func(r sqldb.Scanner) (string, error) {
			var size, counters string
			var start int64
			err := r.Scan(&size, &start, &counters)
			return fmt.Sprintf("window %s %d %s", size, start, counters), err
		})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := sqldb.List(ctx, db, `SELECT event_id, rule, match_key, at_ms, evidence FROM analytics_detections ORDER BY event_id`, nil,
		func(r sqldb.Scanner) (string, error) {
			var id, rule, key, ev string
			var at int64
			err := r.Scan(&id, &rule, &key, &at, &ev)
			return fmt.Sprintf("detection %s %s %s %d %s", id, rule, key, at, ev), err
		})
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) == 0 || len(ds) == 0 {
		t.Fatalf("%d windows and %d detections: the run should have both", len(ws), len(ds))
	}
	if !strings.Contains(strings.Join(ws, "\n"), cShipDelay) {
		t.Fatalf("no order → shipped times in the windows:\n%s", strings.Join(ws, "\n"))
	}
	for _, l := range append(ws, ds...) {
		sb.WriteString(l + "\n")
	}
	return sb.String()
}

// crashChild processes until killed, saying "committed" after each commit.
func crashChild(t *testing.T, dir string) {
	driver, topics := os.Getenv(envDriver), strings.Split(os.Getenv(envTopics), ",")
	b := openBus(t, driver, dir)
	db := openDB(t, "crashed", os.Getenv("ANALYTICS_CRASH_PREFIX"), os.Getenv(envDB), dir)
	p := crashProcessor(t, b, topics, db)
	feed(t, b, p, nil, func() { fmt.Println("committed") })
	// Not killed yet (a fast machine): wait for it, never finishing the run.
	os.Stdin.Read(make([]byte, 1))
	t.Fatal("the crash test's child was not killed")
}
