package apptests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/catalog"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/app"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/service"
)

// BenchmarkRebuildAvailability replays b.N inventory events (1,000
// products, versions rising) into a fresh availability table of the
// catalog and swaps it in: the target is ≥ 100k events/s.
//
//	go test -run '^$' -bench RebuildAvailability -benchtime 200000x ./internal/app/apptests/
func BenchmarkRebuildAvailability(b *testing.B) {
	h := apptest.Start(b, []service.Def{catalog.Def()})
	ctx := context.Background()
	var msgs []*bus.Message
	flush := func() {
		if err := h.Bus.Publish(ctx, msgs...); err != nil {
			b.Fatal(err)
		}
		msgs = msgs[:0]
	}
	for i := 0; i < b.N; i++ {
		pid := fmt.Sprintf("product-%04d", i%1000)
		e, err := event.New("inventory-service", event.FromRequest(fmt.Sprint("bench-", i), event.Metadata{}), &event.InventoryAdjusted{
			ProductID: pid, Delta: 1, Level: event.StockLevel{ProductID: pid, OnHand: int64(i), Available: int64(i), Version: int64(i + 1)},
		})
		if err != nil {
			b.Fatal(err)
		}
		m, err := eventmsg.Encode(ctx, e)
		if err != nil {
			b.Fatal(err)
		}
		if msgs = append(msgs, m); len(msgs) == 1000 {
			flush()
		}
	}
	if len(msgs) > 0 {
		flush()
	}
	// The live consumer applies them first: the rebuild is measured alone.
	h.Eventually("the catalog's consumer caught up", func() bool {
		lags, err := h.Bus.Lag(ctx, "catalog-service", []string{string(event.TopicInventory)})
		return err == nil && totalLag(lags) == 0
	})
	admin := h.Token("admin-1", "admin")
	b.ResetTimer()
	start := time.Now()
	var body struct{ Rebuilt []app.RebuildResult }
	h.JSON("POST", "/api/v1/admin/rebuild/catalog", admin, nil, 200, &body)
	elapsed := time.Since(start)
	b.StopTimer()
	if r := body.Rebuilt[0]; r.Applied+r.CaughtUp < int64(b.N) {
		b.Fatalf("rebuild applied %d of %d events", r.Applied+r.CaughtUp, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}
