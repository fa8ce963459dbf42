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
	h, _ := start(t, apptest.Settings(map[string]string{"EVENTMART_SAGA_TIMEOUT": "5s", "EVENTMART_SAGA_SWEEP_INTERVAL": "10ms"}),
		func(c *app.Config) { c.Now = clk.Now })
	tok := h.Token("cust-1", "customer")
	stuck := place(t, h, tok) // its events are lost
	early := place(t, h, tok)
	early.paid(early.created) // the pipeline goes past the stuck order
	early.waitStatus("CONFIRMED")
	next := place(t, h, tok)
	waiting := place(t, h, tok) // in line behind next

	clk.advance(3 * time.Second)
	next.paid(next.created) // the pipeline, slow but working, decides the order ahead of it
	next.waitStatus("CONFIRMED")
	clk.advance(3 * time.Second) // all three placed 6 s ago, beyond the 5 s timeout

	e := h.Events.Wait(t, "OrderCancelled", apptest.Keyed(stuck.id))
	if c := payloadOf[*event.OrderCancelled](t, e); c.ReasonCode != "timeout" {
		t.Errorf("stuck order cancelled for %s", c.ReasonCode)
	}
	// The sweep that cancelled the stuck order looked at the waiting one too.
	if o := waiting.get(); o.Status != "PENDING" {
		t.Fatalf("an order waiting its turn is %s (%s)", o.Status, o.ReasonCode)
	}

	clk.advance(6 * time.Second) // the pipeline decided nothing for a whole timeout
	e = h.Events.Wait(t, "OrderCancelled", apptest.Keyed(waiting.id))
	if c := payloadOf[*event.OrderCancelled](t, e); c.ReasonCode != "timeout" {
		t.Errorf("waiting order cancelled for %s", c.ReasonCode)
	}
	if o := next.get(); o.Status != "CONFIRMED" {
		t.Errorf("decided order %+v", o)
	}
}
