package order_test

import (
	"reflect"
	"testing"

	"github.com/eventmart/eventmart/event"
)

// TestEverySagaEventReachesTheOrdersLog publishes an event of every type
// the catalog declares a member of an order's saga (see
// event.TestEventsOfAnOrderAreInItsSaga for the declaration itself) and
// fails when GET /orders/{id}/events does not list it. The service's own
// saga events, on order-events, are logged as it emits them (the saga tests
// see them in the log); a new one it does not emit would be in no log.
func TestEverySagaEventReachesTheOrdersLog(t *testing.T) {
	t.Parallel()
	h, _ := start(t)
	s := place(t, h, h.Token("cust-1", "customer"))
	emitted := map[event.Type]bool{"OrderCreated": true, "OrderConfirmed": true, "OrderCancelled": true, "OrderShipped": true}
	n := 0
	for _, spec := range event.Catalog() {
		if !spec.InSaga() {
			continue
		}
		if spec.Topic == event.TopicOrder {
			if !emitted[spec.Type] {
				t.Errorf("%s is in an order's saga on order-events, but the order service does not emit it: no one logs it", spec.Type)
			}
			continue
		}
		p := spec.New()
		v := reflect.ValueOf(p).Elem()
		if f := v.FieldByName("OrderID"); f.IsValid() {
			f.SetString(s.id)
		}
		if f := v.FieldByName("Subject"); f.IsValid() {
			f.Set(reflect.ValueOf(event.Subject{Type: "order", ID: s.id}))
		}
		s.publish("test", s.created, p) // fails unless the order's log lists it
		n++
	}
	if n < 14 {
		t.Errorf("%d saga event types of other services published, want 14 at least", n)
	}
}
