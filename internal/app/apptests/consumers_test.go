package apptests

import (
	"slices"
	"testing"

	"github.com/eventmart/eventmart/audit"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/webhook"
)

// event.ConsumerGroups, which the AsyncAPI document's receive operations
// come from, is what the services' handlers take; and the document served
// has a receive operation for each group and topic.
func TestConsumerGroupsTableMatchesTheHandlers(t *testing.T) {
	h := apptest.Start(t, append(all(), audit.Def(), webhook.Def()))
	want := map[string][]event.Type{}
	for _, g := range event.ConsumerGroups {
		want[g.Group] = slices.Sorted(slices.Values(g.Types))
	}
	got := map[string][]event.Type{}
	for _, c := range h.App.Consumers() {
		var ts []event.Type
		for typ := range c.Handlers {
			ts = append(ts, typ)
		}
		got[c.Group] = slices.Sorted(slices.Values(ts))
	}
	for g, ts := range got {
		if !slices.Equal(ts, want[g]) {
			t.Errorf("group %s handles %v; event.ConsumerGroups says %v", g, ts, want[g])
		}
	}
	for g := range want {
		if got[g] == nil {
			t.Errorf("event.ConsumerGroups lists %s, which no service runs", g)
		}
	}

	var doc struct {
		Operations map[string]struct {
			Action   string
			Channel  map[string]string
			Bindings struct {
				Kafka struct{ GroupID struct{ Enum []string } }
			}
		}
		Servers map[string]struct{ Host string }
	}
	h.JSON("GET", "/api/v1/asyncapi.json", "", nil, 200, &doc)
	op, ok := doc.Operations["receive-shipping-service-payment-events"]
	if !ok || op.Action != "receive" || op.Channel["$ref"] != "#/channels/payment-events" || !slices.Equal(op.Bindings.Kafka.GroupID.Enum, []string{"shipping-service"}) {
		t.Errorf("receive operation of shipping-service on payment-events: %+v (present %v)", op, ok)
	}
	if host := doc.Servers["kafka"].Host; host != "{brokers}" {
		t.Errorf("server host %q, want the variable {brokers}", host)
	}
}
