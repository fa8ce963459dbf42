package app

import (
	"context"
	"strings"
	"testing"
)

// A pin of EVENTMART_EMIT_VERSIONS to a version before personal fields
// were sealed is refused at start, saying why (docs/events.md): the
// downcast would write them in clear where no erasure reaches.
func TestEmitPinOfSealedVersionIsRefused(t *testing.T) {
	for _, pin := range []string{"OrderCreated=v1", "OrderCreated=v2", "ShippingCreated=v1", "UserRegistered=v2, OrderCreated=v1"} {
		a, err := Start(context.Background(), Config{Settings: func(name string) string {
			if name == "EVENTMART_EMIT_VERSIONS" {
				return pin
			}
			return ""
		}})
		if err == nil {
			a.Close()
			t.Errorf("%s: started", pin)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "EVENTMART_EMIT_VERSIONS") || !strings.Contains(msg, "never downcast") || !strings.Contains(msg, "sealed") {
			t.Errorf("%s: %v", pin, err)
		}
	}
}
