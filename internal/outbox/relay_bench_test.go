package outbox_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/bus/embedded"
	"github.com/eventmart/eventmart/bus/kafka"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// The outbox relay's targets: ≥ 20k events/s, and p99 commit-to-publish
// under 50 ms at 5k events/s. Both run on SQLite with the embedded log,
// and on PostgreSQL with Kafka when EVENTMART_TEST_POSTGRES and
// EVENTMART_TEST_KAFKA name servers:
//
//	go test -run '^$' -bench Relay -benchtime 20000x ./internal/outbox/

type setup struct {
	name string
	db   *sqldb.DB
	bus  bus.Bus
}

func setups(b *testing.B) []setup {
	ctx := context.Background()
	dir := b.TempDir()
	db, err := sqldb.Open(ctx, "bench", "", dir)
	if err != nil {
		b.Fatal(err)
	}
	eb, err := embedded.Open(filepath.Join(dir, "eventlog.db"))
	if err != nil {
		b.Fatal(err)
	}
	out := []setup{{"sqlite+embedded", db, eb}}
	if pg, brokers := os.Getenv("EVENTMART_TEST_POSTGRES"), os.Getenv("EVENTMART_TEST_KAFKA"); pg != "" && brokers != "" {
		pdb, err := sqldb.Open(ctx, fmt.Sprintf("bench%d", time.Now().UnixNano()%1e6), pg, "")
		if err != nil {
			b.Fatal(err)
		}
		kb, err := kafka.Open(ctx, []string{brokers})
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, setup{"postgres+kafka", pdb, kb})
	}
	for _, s := range out {
		if err := s.db.Migrate(ctx, sqldb.Migration{Name: "outbox.sql", SQL: outbox.Migration}); err != nil {
			b.Fatal(err)
		}
		topic := bus.TopicConfig{Name: string(event.TopicOrder), Partitions: 20, Retention: event.Year}
		if _, err := s.bus.EnsureTopics(ctx, []bus.TopicConfig{topic}); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.bus.Close(); s.db.Close() })
	}
	return out
}

func orderEvent(b *testing.B, i int) *event.Envelope {
	e, err := event.New("order-service", event.FromRequest(fmt.Sprint("bench-", i), event.Metadata{UserID: "u1"}), &event.OrderConfirmed{
		OrderID: fmt.Sprintf("order-%d", i), UserID: "u1", PaymentID: "p1", TotalCents: 1200, Currency: "EUR",
	})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkRelayThroughput: b.N events committed to the outbox (100 per
// transaction), then relayed: the figure is the relay's events/s.
func BenchmarkRelayThroughput(b *testing.B) {
	for _, s := range setups(b) {
		b.Run(s.name, func(b *testing.B) {
			ctx := context.Background()
			for i := 0; i < b.N; i += 100 {
				err := s.db.InTx(ctx, func(tx *sqldb.Tx) error {
					var envs []*event.Envelope
					for j := i; j < min(i+100, b.N); j++ {
						envs = append(envs, orderEvent(b, j))
					}
					return outbox.Add(ctx, tx, envs...)
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			r := outbox.NewRelay(s.db, s.bus, slog.New(slog.NewTextHandler(io.Discard, nil)))
			b.ResetTimer()
			start := time.Now()
			for relayed := 0; relayed < b.N; {
				n, err := r.RelayOnce(ctx)
				if err != nil {
					b.Fatal(err)
				}
				relayed += n
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// timedPublisher notes when each message was acknowledged by the bus.
type timedPublisher struct {
	bus.Publisher
	mu    sync.Mutex
	acked map[string]time.Time // by eventId
}

func (p *timedPublisher) Publish(ctx context.Context, msgs ...*bus.Message) error {
	err := p.Publisher.Publish(ctx, msgs...)
	now := time.Now()
	p.mu.Lock()
	for _, m := range msgs {
		p.acked[m.Header(eventmsg.HeaderEventID)] = now
	}
	p.mu.Unlock()
	return err
}

// BenchmarkRelayLatencyAt5k commits events at up to 5k/s (one per
// transaction, from 16 goroutines, as a busy service does) while the relay runs
// as in production (woken by Notify, polling every 100 ms), and reports
// the commit-to-publish latency's p50 and p99. b.N is the number of events.
func BenchmarkRelayLatencyAt5k(b *testing.B) {
	for _, s := range setups(b) {
		b.Run(s.name, func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pub := &timedPublisher{Publisher: s.bus, acked: map[string]time.Time{}}
			r := outbox.NewRelay(s.db, pub, slog.New(slog.NewTextHandler(io.Discard, nil)))
			done := make(chan struct{})
			go func() { r.Run(ctx); close(done) }()
			// 16 request handlers commit concurrently, paced together at
			// 5k/s: single-event transactions, as a busy service makes.
			var mu sync.Mutex
			committed := make(map[string]time.Time, b.N)
			work := make(chan int)
			var wg sync.WaitGroup
			for w := 0; w < 16; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range work {
						e := orderEvent(b, i)
						if err := s.db.InTx(ctx, func(tx *sqldb.Tx) error { return outbox.Add(ctx, tx, e) }); err != nil {
							b.Error(err)
							return
						}
						now := time.Now()
						mu.Lock()
						committed[e.EventID] = now
						mu.Unlock()
						r.Notify()
					}
				}()
			}
			b.ResetTimer()
			start := time.Now()
			tick := time.NewTicker(200 * time.Microsecond)
			for i := 0; i < b.N; i++ {
				<-tick.C
				work <- i
			}
			tick.Stop()
			close(work)
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "commits/s")
			for {
				pub.mu.Lock()
				n := len(pub.acked)
				pub.mu.Unlock()
				if n >= b.N {
					break
				}
				time.Sleep(10 * time.Millisecond) // waiting for the relay to drain
			}
			b.StopTimer()
			cancel()
			<-done
			lat := make([]time.Duration, 0, b.N)
			for id, c := range committed {
				lat = append(lat, pub.acked[id].Sub(c))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
