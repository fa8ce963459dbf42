package order_test

import (
	"testing"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/app"
	"github.com/eventmart/eventmart/internal/apptest"
)

// An order that waits its turn behind orders the pipeline is still
// deciding is not cancelled, however long ago it was placed; an order the
// pipeline went past is, a timeout later; and a waiting order times out
// once the pipeline decides nothing for a whole timeout.
func TestTimeoutCountsFromWhenThePipelineReachedTheOrder(t *testing.T) {
	t.Parallel()
	clk := &clock{}
	h, _ := start(t, apptest.Settings(map[string]string{"EVENTMART_SAGA_TIMEOUT": "30s", "EVENTMART_SAGA_SWEEP_INTERVAL": "10ms"}),
		func(c *app.Config) { c.Now = clk.Now })
	tok := h.Token("cust-1", "customer")
	stuck := place(t, h, tok) // its events are lost
	early := place(t, h, tok)
	early.paid(early.created) // the pipeline goes past the stuck order
	early.waitStatus("CONFIRMED")
	next := place(t, h, tok)
	waiting := place(t, h, tok) // in line behind next

	clk.advance(20 * time.Second)
	next.paid(next.created) // the pipeline, slow but working, decides the order ahead of it
	next.waitStatus("CONFIRMED")
	clk.advance(20 * time.Second) // all three placed 40 s ago, beyond the 30 s timeout

	e := h.Events.Wait(t, "OrderCancelled", apptest.Keyed(stuck.id))
	if c := payloadOf[*event.OrderCancelled](t, e); c.ReasonCode != "timeout" {
		t.Errorf("stuck order cancelled for %s", c.ReasonCode)
	}
	// The sweep that cancelled the stuck order looked at the waiting one too.
	if o := waiting.get(); o.Status != "PENDING" {
		t.Fatalf("an order waiting its turn is %s (%s)", o.Status, o.ReasonCode)
	}

	clk.advance(31 * time.Second) // the pipeline decided nothing for a whole timeout
	e = h.Events.Wait(t, "OrderCancelled", apptest.Keyed(waiting.id))
	if c := payloadOf[*event.OrderCancelled](t, e); c.ReasonCode != "timeout" {
		t.Errorf("waiting order cancelled for %s", c.ReasonCode)
	}
	if o := next.get(); o.Status != "CONFIRMED" {
		t.Errorf("decided order %+v", o)
	}
}

// An order the pipeline went past (an order placed after it is decided)
// but whose own queue lags — the orders placed just before it are still
// being decided — is not cancelled until those stop for a timeout.
func TestTimeoutWaitsWhileTheOrdersAheadAreDecided(t *testing.T) {
	t.Parallel()
	clk := &clock{}
	h, _ := start(t, apptest.Settings(map[string]string{"EVENTMART_SAGA_TIMEOUT": "30s", "EVENTMART_SAGA_SWEEP_INTERVAL": "10ms"}),
		func(c *app.Config) { c.Now = clk.Now })
	tok := h.Token("cust-1", "customer")
	stuck := place(t, h, tok) // its events are lost
	fast := place(t, h, tok)
	slow := place(t, h, tok) // in the lagging queue, ahead of lagging
	lagging := place(t, h, tok)
	after := place(t, h, tok)
	for _, s := range []*saga{fast, after} { // the fast queues go past all of them
		s.paid(s.created)
		s.waitStatus("CONFIRMED")
	}

	clk.advance(20 * time.Second)
	slow.paid(slow.created) // the lagging queue moves on
	slow.waitStatus("CONFIRMED")
	clk.advance(20 * time.Second)

	e := h.Events.Wait(t, "OrderCancelled", apptest.Keyed(stuck.id))
	if c := payloadOf[*event.OrderCancelled](t, e); c.ReasonCode != "timeout" {
		t.Errorf("stuck order cancelled for %s", c.ReasonCode)
	}
	if o := lagging.get(); o.Status != "PENDING" {
		t.Fatalf("an order whose queue still moves is %s (%s)", o.Status, o.ReasonCode)
	}

	clk.advance(31 * time.Second) // its queue stopped for a whole timeout
	e = h.Events.Wait(t, "OrderCancelled", apptest.Keyed(lagging.id))
	if c := payloadOf[*event.OrderCancelled](t, e); c.ReasonCode != "timeout" {
		t.Errorf("lagging order cancelled for %s", c.ReasonCode)
	}
}
