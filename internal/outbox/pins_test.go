package outbox_test

import (
	"testing"

	"github.com/eventmart/eventmart/internal/outbox"
)

func TestParsePins(t *testing.T) {
	pins, err := outbox.ParsePins(" OrderCreated=v1 , ")
	if err != nil || len(pins) != 1 || pins["OrderCreated"] != "v1" {
		t.Errorf("ParsePins = %v, %v", pins, err)
	}
	if pins, err := outbox.ParsePins("OrderCreated=v2"); err != nil || len(pins) != 0 {
		t.Errorf("the current version pins nothing: %v, %v", pins, err)
	}
	for _, bad := range []string{"OrderCreated", "Nope=v1", "OrderCreated=v7", "ProductCreated=v0"} {
		if _, err := outbox.ParsePins(bad); err == nil {
			t.Errorf("ParsePins(%q) accepted", bad)
		}
	}
}
