package apptests

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/audit"
	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/deadletter"
)

// TestMalformedRecordsOnEveryTopicAreDeadLettered publishes every kind of
// bad record onto every topic, ahead of good events: each consumer group
// concerned dead-letters each one with its reason at once (no retries),
// nobody crashes, the good events are applied and every group's lag
// returns to zero. The audit service consumes every type, so every bad
// record is in its dead-letter queue.
func TestMalformedRecordsOnEveryTopicAreDeadLettered(t *testing.T) {
	h := apptest.Start(t, append(all(), audit.Def()))
	admin := h.Token("admin-1", "admin")
	ctx := context.Background()
	want := map[string][]apptest.PoisonRecord{} // by topic
	for _, ts := range event.Topics {
		recs := apptest.Poison(ts.Name, "emb")
		want[string(ts.Name)] = recs
		for _, r := range recs {
			if err := h.Bus.Publish(ctx, r.Msg); err != nil {
				t.Fatalf("publish %s to %s: %v", r.Kind, ts.Name, err)
			}
		}
	}
	// A good flow after the poison still goes through.
	var p struct{ ID string }
	h.JSON("POST", "/api/v1/products", admin, map[string]any{"sku": "AFTER", "name": "Mug", "priceCents": 500, "currency": "EUR"}, 201, &p)
	h.Eventually("stock set after the poison", func() bool {
		status, _, _ := h.Do("PUT", "/api/v1/inventory/"+p.ID, admin, map[string]int{"onHand": 3})
		return status == 200
	})
	h.Eventually("the catalog sees the stock", func() bool {
		var got struct{ Availability struct{ Available int64 } }
		h.JSON("GET", "/api/v1/products/"+p.ID, "", nil, 200, &got)
		return got.Availability.Available == 3
	})

	for svc, c := range h.App.Consumers() {
		// A group dead-letters what it would handle, and what no group
		// can route (no type, or one the catalog lacks); a record whose
		// header names another group's type is not its business.
		var expect []apptest.PoisonRecord
		for _, topic := range c.Topics() {
			for _, r := range want[topic] {
				typ := event.Type(r.Msg.Header(eventmsg.HeaderEventType))
				_, known := event.Lookup(typ)
				if _, handled := c.Handlers[typ]; handled || !known {
					expect = append(expect, r)
				}
			}
		}
		var list struct{ DeadLetters []deadletter.DeadLetter }
		h.Eventually(fmt.Sprintf("%d dead letters in %s", len(expect), svc), func() bool {
			h.JSON("GET", "/api/v1/admin/dlq/"+svc+"?status=dead&limit=500", admin, nil, 200, &list)
			return len(list.DeadLetters) >= len(expect)
		})
		if len(list.DeadLetters) != len(expect) {
			t.Errorf("%s: %d dead letters, want %d", svc, len(list.DeadLetters), len(expect))
		}
		for _, r := range expect {
			i := slices.IndexFunc(list.DeadLetters, func(d deadletter.DeadLetter) bool {
				return d.Topic == r.Msg.Topic && d.Key == string(r.Msg.Key)
			})
			if i < 0 {
				t.Errorf("%s: no dead letter for %s on %s", svc, r.Kind, r.Msg.Topic)
				continue
			}
			d := list.DeadLetters[i]
			if !d.Permanent || d.Attempts != 1 || d.Group != c.Group || !strings.Contains(d.Error, r.Reason) || value(d) != string(r.Msg.Value) {
				t.Errorf("%s: dead letter of %s on %s: permanent %v, attempts %d, group %s, error %q (want it to say %q), value kept %v",
					svc, r.Kind, r.Msg.Topic, d.Permanent, d.Attempts, d.Group, d.Error, r.Reason, value(d) == string(r.Msg.Value))
			}
		}
		h.Eventually("no lag in "+c.Group, func() bool {
			lags, err := h.Bus.Lag(ctx, c.Group, c.Topics())
			if err != nil {
				t.Fatal(err)
			}
			return totalLag(lags) == 0
		})
	}
}

func totalLag(lags []bus.PartitionLag) (n int64) {
	for _, l := range lags {
		n += l.Lag
	}
	return n
}

// value is the record a dead letter kept, decoded.
func value(d deadletter.DeadLetter) string {
	if d.ValueBase64 == "" {
		return d.Value
	}
	b, err := base64.StdEncoding.DecodeString(d.ValueBase64)
	if err != nil {
		return "undecodable valueBase64: " + err.Error()
	}
	return string(b)
}
