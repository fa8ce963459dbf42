package inventory

import (
	"context"

	"github.com/eventmart/eventmart/internal/service"
)

// SetOnHandOn sets product id's stock on hand on svc (a running inventory
// service), as PUT /inventory/{id} does.
func SetOnHandOn(ctx context.Context, svc service.Service, id string, onHand int64) (*Stock, bool, error) {
	return svc.(*Service).setOnHand(ctx, id, onHand)
}

// RememberedVersion returns the stream version at which svc remembers
// product id's stock, and whether it does.
func RememberedVersion(svc service.Service, id string) (int64, bool) {
	return svc.(*Service).store.memory.Version(stockStream(id))
}
