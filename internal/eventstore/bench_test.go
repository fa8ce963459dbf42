package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/sqldb"
	"github.com/eventmart/eventmart/internal/testenv"
)

// onSQLite runs a benchmark on a fresh, migrated SQLite database.
func onSQLite(b *testing.B, fn func(b *testing.B, db *sqldb.DB)) {
	b.Run("sqlite", func(b *testing.B) {
		db, err := sqldb.Open(context.Background(), "es", "", b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		if err := db.Migrate(context.Background(), sqldb.Migration{Name: "eventstore.sql", SQL: eventstore.Migration}); err != nil {
			b.Fatal(err)
		}
		fn(b, db)
	})
}

// Appends of one event in a transaction each, to one stream and spread
// over 1,000 streams, on SQLite and (with EVENTMART_TEST_POSTGRES) on
// PostgreSQL.
func BenchmarkAppend(b *testing.B) {
	for _, streams := range []int{1, 1000} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			eachBenchDB(b, func(b *testing.B, db *sqldb.DB) {
				ctx := context.Background()
				versions := make([]int64, streams)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					s := i % streams
					err := db.InTx(ctx, func(tx *sqldb.Tx) error {
						v, err := eventstore.Append(ctx, tx, fmt.Sprintf("stream-%d", s), eventstore.Exactly(versions[s]), ev("Added", i))
						versions[s] = v
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			})
		})
	}
}

// Loading a 1,000-event stream, without a snapshot and with one at 1,000,
// on SQLite and (with EVENTMART_TEST_POSTGRES) on PostgreSQL.
func BenchmarkLoad1000(b *testing.B) {
	for _, every := range []int64{0, 100} {
		b.Run(fmt.Sprintf("snapshotEvery=%d", every), func(b *testing.B) {
			eachBenchDB(b, func(b *testing.B, db *sqldb.DB) {
				ctx := context.Background()
				agg := eventstore.Aggregate[counter]{SchemaVersion: 1, SnapshotEvery: every,
					Apply: func(s counter, e eventstore.Event) (counter, error) {
						var p struct{ N int }
						if err := json.Unmarshal(e.Data, &p); err != nil {
							return s, err
						}
						return counter{Sum: s.Sum + p.N, Events: s.Events + 1}, nil
					}}
				var s counter
				var v int64
				for i := 0; i < 1000; i += 10 {
					evs := make([]eventstore.Event, 10)
					for j := range evs {
						evs[j] = ev("Added", i+j)
					}
					err := db.InTx(ctx, func(tx *sqldb.Tx) (err error) {
						s, v, err = agg.Save(ctx, tx, "long", s, v, evs...)
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if s, v, err := agg.Load(ctx, db, "long"); err != nil || v != 1000 || s.Events != 1000 {
						b.Fatalf("load: %+v at %d, %v", s, v, err)
					}
				}
			})
		})
	}
}

// A hot stream under 16 concurrent writers, each command reading the
// stream's version and appending one event, retried on a conflict as the
// services do: in a fresh transaction (Retry, HTTP requests) and in place
// behind a savepoint (RetryInTx, inbox handlers). It reports the events
// appended per second, the conflicts per appended event (each conflict is
// one retry), the conflict rate (the share of appends that conflicted) and
// the largest number of tries one command needed. On SQLite writes are serial and no
// append conflicts; on PostgreSQL (when EVENTMART_TEST_POSTGRES names a
// server) they race.
func BenchmarkHotStream16Writers(b *testing.B) {
	for _, mode := range []string{"retry", "retryInTx"} {
		b.Run(mode, func(b *testing.B) {
			eachBenchDB(b, func(b *testing.B, db *sqldb.DB) {
				ctx := context.Background()
				const writers = 16
				var conflicts, maxTries atomic.Int64
				command := func(tx *sqldb.Tx, tries *int64) error {
					*tries++
					v, err := eventstore.StreamVersion(ctx, tx, "hot")
					if err != nil {
						return err
					}
					_, err = eventstore.Append(ctx, tx, "hot", eventstore.Exactly(v), ev("Incremented", int(v)))
					if errors.Is(err, eventstore.ErrConflict) {
						conflicts.Add(1)
					}
					return err
				}
				var next atomic.Int64
				var wg sync.WaitGroup
				errs := make(chan error, writers)
				b.ResetTimer()
				for w := 0; w < writers; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for next.Add(1) <= int64(b.N) {
							var tries int64
							var err error
							if mode == "retry" {
								err = eventstore.Retry(ctx, db, 10000, func(tx *sqldb.Tx) error { return command(tx, &tries) })
							} else {
								err = db.InTx(ctx, func(tx *sqldb.Tx) error {
									return eventstore.RetryInTx(ctx, tx, 10000, func() error { return command(tx, &tries) })
								})
							}
							if err != nil {
								errs <- err
								return
							}
							for m := maxTries.Load(); tries > m && !maxTries.CompareAndSwap(m, tries); m = maxTries.Load() {
							}
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				close(errs)
				for err := range errs {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
				b.ReportMetric(float64(conflicts.Load())/float64(b.N), "conflicts/event")
				b.ReportMetric(100*float64(conflicts.Load())/float64(int64(b.N)+conflicts.Load()), "conflict-%")
				b.ReportMetric(float64(maxTries.Load()), "max-tries")
			})
		})
	}
}

// eachBenchDB runs fn on a fresh SQLite database and, when the test server
// is named, a fresh PostgreSQL database.
func eachBenchDB(b *testing.B, fn func(b *testing.B, db *sqldb.DB)) {
	onSQLite(b, fn)
	if os.Getenv("EVENTMART_TEST_POSTGRES") == "" {
		return
	}
	b.Run("postgres", func(b *testing.B) {
		base := testenv.Postgres(b)
		u, err := url.Parse(base)
		if err != nil {
			b.Fatal(err)
		}
		prefix := "b" + strings.ReplaceAll(uuid.NewString(), "-", "")[:20]
		u.Path = "/" + prefix
		db, err := sqldb.Open(context.Background(), "es", u.String(), "")
		if err != nil {
			b.Fatal(err)
		}
		defer func() {
			db.Close()
			if conn, err := pgx.Connect(context.Background(), base); err == nil {
				conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{prefix + "_es"}.Sanitize()+" WITH (FORCE)")
				conn.Close(context.Background())
			}
		}()
		if err := db.Migrate(context.Background(), sqldb.Migration{Name: "eventstore.sql", SQL: eventstore.Migration}); err != nil {
			b.Fatal(err)
		}
		fn(b, db)
	})
}

// Decoding one stored event: Decode alone, through a catalog when the
// event is at its type's current version (the hot path: no upcasting),
// and through a one-step upcast.
func BenchmarkDecode(b *testing.B) {
	catalog := eventstore.NewCatalog("v1", eventstore.Upcaster{Type: "Renamed", From: "v1", To: "v2",
		Up: func(data json.RawMessage) (json.RawMessage, error) {
			return json.RawMessage(strings.Replace(string(data), `"n"`, `"amount"`, 1)), nil
		}})
	type payload struct{ N, Amount int }
	current, old := ev("Added", 7), ev("Renamed", 7)
	for _, c := range []struct {
		name   string
		decode func() (payload, error)
	}{
		{"decode", func() (payload, error) { return eventstore.Decode[payload](current, "v1") }},
		{"catalog-current", func() (payload, error) { return eventstore.DecodeFrom[payload](catalog, current) }},
		{"catalog-upcast", func() (payload, error) { return eventstore.DecodeFrom[payload](catalog, old) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if p, err := c.decode(); err != nil || p.N+p.Amount != 7 {
					b.Fatalf("%+v, %v", p, err)
				}
			}
		})
	}
}

// holds is a stock-like state: open holds by order, a map Apply writes in
// place.
type holds struct {
	Held map[string]int `json:"held"`
}

// Loading a stock-like stream (a snapshot every 100 events, 64 holds open,
// 50 events after the latest snapshot), with and without a Memory: a load
// alone, and a command's transaction (load, save one event, commit). With
// the memory, a load reads the events after the remembered version (none)
// instead of the snapshot and the 50 events after it.
func BenchmarkLoadMemory(b *testing.B) {
	apply := func(s holds, e eventstore.Event) (holds, error) {
		var p struct {
			Order string
			N     int
		}
		if err := json.Unmarshal(e.Data, &p); err != nil {
			return s, err
		}
		if s.Held == nil {
			s.Held = map[string]int{}
		}
		if p.N > 0 {
			s.Held[p.Order] = p.N
		} else {
			delete(s.Held, p.Order)
		}
		return s, nil
	}
	event := func(i int) eventstore.Event { // holds i, releases i-64
		if i%2 == 0 && i >= 128 {
			return eventstore.Event{ID: uuid.NewString(), Type: "Released", SchemaVersion: "v1", Data: json.RawMessage(fmt.Sprintf(`{"order":"o%d","n":0}`, (i-128)/2))}
		}
		return eventstore.Event{ID: uuid.NewString(), Type: "Held", SchemaVersion: "v1", Data: json.RawMessage(fmt.Sprintf(`{"order":"o%d","n":%d}`, i/2, 1+i%3))}
	}
	for _, remember := range []bool{false, true} {
		b.Run(fmt.Sprintf("memory=%v", remember), func(b *testing.B) {
			eachBenchDB(b, func(b *testing.B, db *sqldb.DB) {
				ctx := context.Background()
				agg := eventstore.Aggregate[holds]{SchemaVersion: 1, SnapshotEvery: 100, Apply: apply,
					Clone: func(s holds) holds { s.Held = maps.Clone(s.Held); return s }}
				if remember {
					agg.Memory = eventstore.NewMemory[holds](0)
				}
				next := 0
				command := func() error {
					return db.InTx(ctx, func(tx *sqldb.Tx) error {
						s, v, err := agg.Load(ctx, tx, "stock-1")
						if err != nil {
							return err
						}
						_, _, err = agg.Save(ctx, tx, "stock-1", s, v, event(next))
						next++
						return err
					})
				}
				for next < 250 { // snapshot at 200, 50 events after it
					if err := command(); err != nil {
						b.Fatal(err)
					}
				}
				b.Run("load", func(b *testing.B) {
					b.ReportAllocs()
					for i := 0; i < b.N; i++ {
						if s, v, err := agg.Load(ctx, db, "stock-1"); err != nil || v != 250 || len(s.Held) != 64 {
							b.Fatalf("load: %d holds at %d, %v", len(s.Held), v, err)
						}
					}
				})
				b.Run("command", func(b *testing.B) {
					b.ReportAllocs()
					for i := 0; i < b.N; i++ {
						if err := command(); err != nil {
							b.Fatal(err)
						}
					}
				})
			})
		})
	}
}

// A batch's LoadMany of 64 order-like streams (never snapshotted, 4 events
// each, the first carrying the order), with and without a Memory that
// remembers them: with it, the query asks for the events after each
// remembered version and none is decoded.
func BenchmarkLoadManyMemory(b *testing.B) {
	type order struct {
		ID, Status string
		Lines      []struct{ SKU, Name string }
	}
	apply := func(s order, e eventstore.Event) (order, error) {
		if e.Type == "Placed" {
			return s, json.Unmarshal(e.Data, &s)
		}
		var p struct{ Status string }
		if err := json.Unmarshal(e.Data, &p); err != nil {
			return s, err
		}
		s.Status = p.Status
		return s, nil
	}
	for _, remember := range []bool{false, true} {
		b.Run(fmt.Sprintf("memory=%v", remember), func(b *testing.B) {
			eachBenchDB(b, func(b *testing.B, db *sqldb.DB) {
				ctx := context.Background()
				agg := eventstore.Aggregate[order]{SchemaVersion: 1, Apply: apply}
				if remember {
					agg.Memory = eventstore.NewMemory[order](0)
				}
				streams := make([]string, 64)
				for i := range streams {
					streams[i] = fmt.Sprintf("order-%d", i)
					placed := fmt.Sprintf(`{"id":"%d","status":"PENDING","lines":[{"sku":"MUG-1","name":"Mug"},{"sku":"TEA-1","name":"Tea"}]}`, i)
					evs := []eventstore.Event{{ID: uuid.NewString(), Type: "Placed", SchemaVersion: "v1", Data: json.RawMessage(placed)}}
					for _, st := range []string{"CONFIRMED", "LABELLED", "SHIPPED"} {
						evs = append(evs, eventstore.Event{ID: uuid.NewString(), Type: "Moved", SchemaVersion: "v1", Data: json.RawMessage(`{"status":"` + st + `"}`)})
					}
					err := db.InTx(ctx, func(tx *sqldb.Tx) error {
						_, _, err := agg.Save(ctx, tx, streams[i], order{}, 0, evs...)
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					err := db.InTx(ctx, func(tx *sqldb.Tx) error {
						got, err := agg.LoadMany(ctx, tx, streams)
						if err == nil && (len(got) != 64 || got["order-7"].Version != 4 || got["order-7"].State.Status != "SHIPPED") {
							err = fmt.Errorf("loaded %d streams, order-7 %+v", len(got), got["order-7"])
						}
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
