package webhook_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/app"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/webhook"
)

// BenchmarkDeadEndpointMemory measures the memory of the webhook service
// with 1,000 endpoints, one of them dead (connections refused) for an hour
// of traffic, the hour simulated with the service's clock: every simulated
// minute, 60 OrderCreated events are published and the clock moves on a
// minute, once the live endpoints got them; the dead endpoint's retries
// (5s, 5m, 30m of the default schedule) fall due as the clock passes them.
// 999 endpoints want event types the traffic does not carry (matched in
// memory, they cost no row), the live one and the dead one want
// OrderCreated. Reported: the Go heap live after a GC, at the start (1,000
// endpoints registered), after 30 simulated minutes and at the end; its
// largest value after any simulated minute; goroutines at the end; the
// dead endpoint's queue and attempts.
//
//	go test -run '^$' -bench DeadEndpointMemory -benchtime 1x ./webhook/
func BenchmarkDeadEndpointMemory(b *testing.B) {
	for range b.N {
		deadEndpointHour(b)
	}
}

func deadEndpointHour(b *testing.B) {
	var got atomic.Int64
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer live.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	dead := "http://" + l.Addr().String() + "/hooks"
	l.Close() // nothing listens there any more: every connection is refused

	var now atomic.Int64
	now.Store(time.Now().UnixMilli())
	clock := func() time.Time { return time.UnixMilli(now.Load()) }
	h := apptest.Start(b, []service.Def{webhook.Def()}, apptest.Settings(map[string]string{"EVENTMART_WEBHOOK_ALLOW": "127.0.0.0/8"}),
		func(c *app.Config) { c.Now = clock })
	h.Events.Forget() // the harness's recording of every event is not the service's memory
	deadEP := create(h, dead, "OrderCreated")
	create(h, live.URL, "OrderCreated")
	for i := range 998 {
		create(h, fmt.Sprintf("%s/idle/%d", live.URL, i), "ProductCreated")
	}
	start := liveHeap()
	peak, half := start, uint64(0)
	const minutes, perMinute = 60, 60
	for m := range minutes {
		payloads := make([]event.Payload, perMinute)
		for i := range payloads {
			payloads[i] = orderCreated(fmt.Sprintf("o-%d-%d", m, i))
		}
		h.Publish("order-service", origin, payloads...)
		want := int64((m + 1) * perMinute)
		h.Eventually(fmt.Sprintf("minute %d delivered to the live endpoint", m), func() bool { return got.Load() >= want })
		now.Add(time.Minute.Milliseconds())
		heap := liveHeap()
		peak = max(peak, heap)
		if m+1 == minutes/2 {
			half = heap
		}
	}
	// The dead endpoint's retries due by the end of the hour are made (one
	// at a time, each a transaction: it trails the clock).
	var pending, attempts int
	caughtUp := func() bool {
		pending, attempts = 0, 0
		for _, d := range pendingDeliveries(h, deadEP.ID) {
			if d.NextAttemptAt == nil || !d.NextAttemptAt.After(clock()) {
				return false
			}
			pending, attempts = pending+1, attempts+d.Attempts
		}
		return true
	}
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	for deadline := time.Now().Add(10 * time.Minute); !caughtUp(); <-poll.C {
		if time.Now().After(deadline) {
			b.Fatalf("the dead endpoint's due retries not made in 10 minutes: %d pending, %d attempts", pending, attempts)
		}
		peak = max(peak, liveHeap())
	}
	end := liveHeap()
	b.ReportMetric(float64(start)/(1<<20), "heap-start-MiB")
	b.ReportMetric(float64(half)/(1<<20), "heap-30min-MiB")
	b.ReportMetric(float64(end)/(1<<20), "heap-end-MiB")
	b.ReportMetric(float64(peak)/(1<<20), "heap-peak-MiB")
	b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
	b.ReportMetric(float64(pending), "dead-pending")
	b.ReportMetric(float64(attempts), "dead-attempts")
	b.ReportMetric(float64(got.Load()), "live-delivered")
}

// liveHeap is the Go heap live after a collection.
func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// pendingDeliveries lists every pending delivery of an endpoint, page by page.
func pendingDeliveries(h *apptest.Harness, endpointID string) []webhook.Delivery {
	h.T.Helper()
	var all []webhook.Delivery
	for offset := 0; ; offset += 100 {
		var b struct{ Deliveries []webhook.Delivery }
		h.JSON("GET", fmt.Sprintf("/api/v1/webhooks/endpoints/%s/deliveries?status=pending&limit=100&offset=%d", endpointID, offset),
			h.Token("admin-1", "admin"), nil, http.StatusOK, &b)
		all = append(all, b.Deliveries...)
		if len(b.Deliveries) < 100 {
			return all
		}
	}
}
