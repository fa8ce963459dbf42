package outbox_test

import (
	"testing"

	"github.com/eventmart/eventmart/internal/outbox"
)

// No event type of the catalog can be pinned to a prior version today:
// OrderCreated's, the only ones that were, come before its personal fields
// were sealed and are never downcast (event.Prior.NoDowncast; the app
// refuses them at start with the reason).
func TestParsePins(t *testing.T) {
	if pins, err := outbox.ParsePins(" OrderCreated=v3 , "); err != nil || len(pins) != 0 {
		t.Errorf("the current version pins nothing: %v, %v", pins, err)
	}
	for _, bad := range []string{"OrderCreated", "Nope=v1", "OrderCreated=v7", "ProductCreated=v0", "OrderCreated=v1", "OrderCreated=v2"} {
		if _, err := outbox.ParsePins(bad); err == nil {
			t.Errorf("ParsePins(%q) accepted", bad)
		}
	}
}
