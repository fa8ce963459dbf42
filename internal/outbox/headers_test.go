package outbox_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// TestRelayPublishesTheHeadersAdded: the relay publishes a row's headers
// as eventmsg.Encode made them, whatever they hold (a record key that is
// not UTF-8, a NUL), and the headers column is json.Marshal's, which every
// release reads.
func TestRelayPublishesTheHeadersAdded(t *testing.T) {
	onEachDB(t, testRelayPublishesTheHeadersAdded)
}

func testRelayPublishesTheHeadersAdded(t *testing.T, db *sqldb.DB) {
	ctx := context.Background()
	var want []*bus.Message
	for _, key := range []string{"order-1", "ordre-é-1", "bad-\xff-utf8", "nul-\x00-key", ""} {
		e, err := event.New("test-service", event.FromRequest("corr-"+key, event.Metadata{UserID: "u1"}), &event.InventoryAdjusted{ProductID: "p1", Delta: 3})
		if err != nil {
			t.Fatal(err)
		}
		e.Key = key
		m, err := eventmsg.Encode(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, m)
		if err := db.InTx(ctx, func(tx *sqldb.Tx) error { return outbox.Add(ctx, tx, e) }); err != nil {
			t.Fatal(err)
		}
	}
	cols, err := sqldb.List(ctx, db, `SELECT headers FROM outbox ORDER BY id`, nil, func(r sqldb.Scanner) (string, error) {
		var s string
		return s, r.Scan(&s)
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, col := range cols {
		if b, err := json.Marshal(want[i].Headers); err != nil || col != string(b) {
			t.Errorf("row %d (key %q): headers column\n%s\nwant json.Marshal's\n%s", i, want[i].Key, col, b)
		}
	}
	pub := &recorder{got: make(chan struct{}, 1)}
	if n, err := outbox.NewRelay(db, pub, slog.New(slog.NewTextHandler(io.Discard, nil))).RelayOnce(ctx); err != nil || n != len(want) {
		t.Fatalf("relayed %d, %v; want %d", n, err, len(want))
	}
	for i, m := range pub.msgs {
		if !reflect.DeepEqual(m.Headers, want[i].Headers) || string(m.Value) != string(want[i].Value) || string(m.Key) != string(want[i].Key) {
			t.Errorf("published %d:\n%+v\nwant\n%+v", i, m.Headers, want[i].Headers)
		}
	}
}

// TestRelayReadsRowsOfThePreviousRelease: rows an earlier release wrote
// (headers through json.Marshal of []bus.Header, values in base64) may
// wait in the outbox across an upgrade: the relay publishes them with
// their headers, in order with rows written since.
func TestRelayReadsRowsOfThePreviousRelease(t *testing.T) {
	onEachDB(t, testRelayReadsRowsOfThePreviousRelease)
}

func testRelayReadsRowsOfThePreviousRelease(t *testing.T, db *sqldb.DB) {
	ctx := context.Background()
	var want []*bus.Message
	for i := range 3 {
		e, err := event.New("test-service", event.FromRequest("corr", event.Metadata{}), &event.InventoryAdjusted{ProductID: "p1", Delta: int64(i)})
		if err != nil {
			t.Fatal(err)
		}
		m, err := eventmsg.Encode(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, m)
		err = db.InTx(ctx, func(tx *sqldb.Tx) error {
			if i == 1 {
				return outbox.Add(ctx, tx, e) // this release's row, between two old ones
			}
			// What Add wrote before: the headers as JSON.
			hdr, err := json.Marshal(m.Headers)
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO outbox (topic, msg_key, value, headers, created_at) VALUES (?, ?, ?, ?, ?)`,
				m.Topic, m.Key, m.Value, string(hdr), time.Now().UnixMilli())
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	pub := &recorder{got: make(chan struct{}, 1)}
	if n, err := outbox.NewRelay(db, pub, slog.New(slog.NewTextHandler(io.Discard, nil))).RelayOnce(ctx); err != nil || n != len(want) {
		t.Fatalf("relayed %d, %v; want %d", n, err, len(want))
	}
	for i, m := range pub.msgs {
		if !reflect.DeepEqual(m.Headers, want[i].Headers) || string(m.Value) != string(want[i].Value) {
			t.Errorf("published %d:\n%+v\nwant\n%+v", i, m.Headers, want[i].Headers)
		}
	}
}

// TestRelayFailsOnMalformedHeaders: a headers column that is not the JSON
// of headers fails the read, naming the row, rather than publishing wrong
// headers.
func TestRelayFailsOnMalformedHeaders(t *testing.T) {
	for _, col := range []string{"9:eventType", "x", "[{", "12", `[{"Key":"a","Value":"!!"}]`, `[{"Key":"a","Value":"YQ=="}`, `[{"Key":"a","Value":"YQ=="}]x`} {
		t.Run(col, func(t *testing.T) {
			db := outboxDB(t)
			ctx := context.Background()
			if _, err := db.Exec(ctx, `INSERT INTO outbox (topic, msg_key, value, headers, created_at) VALUES (?, ?, ?, ?, ?)`,
				"order-events", []byte("k"), []byte("{}"), col, time.Now().UnixMilli()); err != nil {
				t.Fatal(err)
			}
			pub := &recorder{got: make(chan struct{}, 1)}
			if n, err := outbox.NewRelay(db, pub, slog.New(slog.NewTextHandler(io.Discard, nil))).RelayOnce(ctx); err == nil {
				t.Fatalf("relayed %d rows with headers %q, want an error", n, col)
			}
		})
	}
}
