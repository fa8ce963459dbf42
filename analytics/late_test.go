package analytics

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/stream"
	"github.com/eventmart/eventmart/internal/testenv"
)

func TestLateEventsEmbedded(t *testing.T) { lateEvents(t, "embedded") }

func TestLateEventsKafka(t *testing.T) { lateEvents(t, "kafka") }

// lateEvents: events through the service's processor (its commits, its
// database, its metrics) out of order, inside and beyond the grace. Both
// buses stamp log times themselves (the embedded log monotonically per
// partition), so the late arrivals a Kafka producer with a lagging clock
// (CreateTime) would make are forged here: the test publishes real
// events, reads them back and rewrites their timestamps before handing
// them to the processor, as its consumer would.
//
// Grace 1s, one partition. Minute [T, T+1m) closes when the stream time
// reaches T+61s. An event at T+59s arriving after one at T+60.5s is inside
// the grace: counted in its window. An event at T+30s arriving after one
// at T+62s is beyond it: dropped by the minute windows (counted in
// eventmart_analytics_late_events_total) while the hour window, still
// open, counts it.
func lateEvents(t *testing.T, driver string) {
	if os.Getenv(envChild) != "" {
		return // the crash test's child process
	}
	dir := t.TempDir()
	prefix := "late" + strings.ReplaceAll(event.NewID(), "-", "")[:12]
	topic := prefix + "-orders"
	dsn := ""
	if os.Getenv("EVENTMART_TEST_SERVICES_DB") == "postgres" {
		dsn = testenv.Postgres(t)
	}
	b := openBus(t, driver, dir)
	defer b.Close()
	if _, err := b.EnsureTopics(context.Background(), []bus.TopicConfig{{Name: topic, Partitions: 1}}); err != nil {
		t.Fatal(err)
	}
	T := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	arrivals := []struct {
		order string
		at    time.Duration
	}{{"o1", 10 * time.Second}, {"o2", 60500 * time.Millisecond}, {"o3", 59 * time.Second}, {"o4", 62 * time.Second}, {"o5", 30 * time.Second}}
	for _, a := range arrivals {
		e, err := event.New("test", event.Origin{}, &event.OrderCreated{OrderID: a.order, Currency: "EUR", TotalCents: 100})
		if err != nil {
			t.Fatal(err)
		}
		m, err := eventmsg.Encode(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		m.Topic = topic
		if err := b.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := b.Read(context.Background(), topic, 0, 0, len(arrivals))
	if err != nil || len(msgs) != len(arrivals) {
		t.Fatalf("read back %d of %d events: %v", len(msgs), len(arrivals), err)
	}
	p := crashProcessor(t, b, []string{topic}, openDB(t, "late", prefix, dsn, dir))
	reg := prometheus.NewRegistry()
	if p.metrics, err = newMetrics(reg); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, m := range msgs {
		m.Timestamp = T.Add(arrivals[i].at)
		if err := p.handle(ctx, []*bus.Message{m}); err != nil {
			t.Fatal(err)
		}
	}
	p.mu.Lock()
	out, err := p.eng.Idle(p.parts[0], T.Add(3*time.Hour)) // closes every window
	if err == nil {
		err = p.commit(ctx, []stream.Output{out})
	}
	p.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}

	orders := func(size string) string {
		ws, err := closedWindows(ctx, p.db, size, T, T.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, w := range ws {
			s = append(s, fmt.Sprintf("%s:%d", w.start.Format("15:04"), w.c[cOrders+"|EUR"]))
		}
		return strings.Join(s, " ")
	}
	if got, want := orders(opMinute), "10:00:2 10:01:2"; got != want { // o1, o3 | o2, o4; o5 dropped
		t.Errorf("minute windows (start:orders) %q, want %q", got, want)
	}
	if got, want := orders(opHour), "10:00:5"; got != want {
		t.Errorf("hour windows %q, want %q: the hour was still open for the late event", got, want)
	}
	late := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "eventmart_analytics_late_events_total" {
			for _, m := range mf.GetMetric() {
				late[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	if late[opMinute] != 1 || late[opHour] != 0 {
		t.Errorf("eventmart_analytics_late_events_total by operator %v, want minute 1 (o5), hour 0", late)
	}
}
