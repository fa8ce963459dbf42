package shipping

import (
	"context"
	"fmt"

	"github.com/eventmart/eventmart/event"
)

// The label's address is personal data (docs/security.md, "Erasure of
// personal data"): the service keeps it as OrderCreated carried it —
// sealed with the customer's key — in the shipments table and in
// ShippingCreated, copying the sealed value without opening it. It is
// opened only for an answer of the API (the label an admin or the
// customer reads); once the customer's key is destroyed it reads
// event.ErasedAddress, with no row to clear.

// openShipment returns sh with its address opened; sh itself when the
// address is in clear.
func (s *Service) openShipment(ctx context.Context, sh *Shipment) (*Shipment, error) {
	if sh == nil || sh.Address.Sealed == nil {
		return sh, nil
	}
	a, err := sh.Address.Open(ctx, s.d.Keys)
	if err != nil {
		return nil, fmt.Errorf("shipping: open the address of shipment %s: %w", sh.ID, err)
	}
	out := *sh
	out.Address = event.PlainAddress(a)
	return &out, nil
}

// listOpened is store.list with every address opened, for GET /shipments.
func (s *Service) listOpened(ctx context.Context, orderID, userID string, limit, offset int) ([]*Shipment, error) {
	out, err := s.store.list(ctx, orderID, userID, limit, offset)
	if err != nil {
		return nil, err
	}
	for i, sh := range out {
		if out[i], err = s.openShipment(ctx, sh); err != nil {
			return nil, err
		}
	}
	return out, nil
}
