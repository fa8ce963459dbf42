package webhook_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmart/eventmart/event"
)

// BenchmarkDeliveries measures deliveries per second to a local receiver
// answering 204 at once, with 1 and 100 endpoints each wanting every
// event: b.N events are published, and the clock stops when the receiver
// has every delivery (b.N × endpoints).
func BenchmarkDeliveries(b *testing.B) {
	for _, endpoints := range []int{1, 100} {
		b.Run(fmt.Sprintf("endpoints=%d", endpoints), func(b *testing.B) {
			var got atomic.Int64
			done := make(chan struct{}, 1)
			var want atomic.Int64
			rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNoContent)
				if got.Add(1) == want.Load() {
					done <- struct{}{}
				}
			}))
			defer rcv.Close()
			h := start(b, loopback)
			for range endpoints {
				create(h, rcv.URL)
			}
			want.Store(int64(b.N * endpoints))
			payloads := make([]event.Payload, b.N)
			for i := range payloads {
				payloads[i] = orderCreated(fmt.Sprintf("o-%d", i))
			}
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < len(payloads); i += 500 {
				h.Publish("order-service", origin, payloads[i:min(i+500, len(payloads))]...)
			}
			select {
			case <-done:
			case <-time.After(10 * time.Minute):
				b.Fatalf("%d of %d deliveries", got.Load(), want.Load())
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*endpoints)/time.Since(start).Seconds(), "deliveries/s")
		})
	}
}
