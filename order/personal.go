package order

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/eventstore"
)

// Personal data of orders (docs/security.md, "Erasure of personal data"):
// the customer's email and name and the shipping address are sealed with
// the user's key when the order is placed — once, three AES-GCM operations
// — and kept sealed in OrderCreated, in the order's stream (OrderPlaced,
// CustomerChanged) and in the orders table. They are opened only for the
// order's owner or an admin, in the API's answers; once the user's key is
// destroyed they read event.Erased, with nothing to rewrite.

// Schema v2 of the domain events that carry personal data: their customer
// and address may be sealed objects where v1 had strings and an address
// object. event.Personal and event.PersonalAddress read both, so the
// upcast from v1 leaves the payload as it is; the version tells a release
// before sealing that it cannot read the event, instead of failing on it.
var personalUpcasters = []eventstore.Upcaster{
	{Type: OrderPlaced, From: "v1", To: "v2", Up: samePayload},
	{Type: OrderImported, From: "v1", To: "v2", Up: samePayload},
	{Type: CustomerChanged, From: "v1", To: "v2", Up: samePayload},
}

func samePayload(data json.RawMessage) (json.RawMessage, error) { return data, nil }

// sealPlaced returns the customer and the address of a new order of
// userID sealed with the user's key. They stay in clear when the process
// has no keys (tests without a user service) or the user has no key: an
// account from before keys that no event has sealed anything of since
// (an erased account has none either, but it is deactivated and cannot
// order).
func (s *Service) sealPlaced(ctx context.Context, userID, email, name string, addr event.Address) (Customer, event.PersonalAddress, error) {
	clear := Customer{Email: event.Plain(email), Name: event.Plain(name)}
	if s.d.Keys == nil {
		return clear, event.PlainAddress(addr), nil
	}
	key, err := s.d.Keys.PersonalKey(ctx, userID)
	if errors.Is(err, event.ErrErased) {
		return clear, event.PlainAddress(addr), nil
	}
	if err != nil {
		return Customer{}, event.PersonalAddress{}, fmt.Errorf("order: seal the order's personal data: %w", err)
	}
	var c Customer
	if c.Email, err = event.Seal(key, userID, email); err != nil {
		return c, event.PersonalAddress{}, err
	}
	if c.Name, err = event.Seal(key, userID, name); err != nil {
		return c, event.PersonalAddress{}, err
	}
	a, err := event.SealAddress(key, userID, addr)
	return c, a, err
}

// openOrder returns o with its customer and address opened (event.Erased
// once the user's key is destroyed), for an answer to the order's owner
// or an admin. o itself is returned when nothing in it is sealed.
func (s *Service) openOrder(ctx context.Context, o *Order) (*Order, error) {
	if o == nil || (o.Customer.Email.Sealed == nil && o.Customer.Name.Sealed == nil && o.ShippingAddress.Sealed == nil) {
		return o, nil
	}
	out := *o
	var err error
	if out.Customer, err = s.openCustomerOf(ctx, o.Customer); err != nil {
		return nil, err
	}
	addr, err := o.ShippingAddress.Open(ctx, s.d.Keys)
	if err != nil {
		return nil, fmt.Errorf("order: open order %s: %w", o.ID, err)
	}
	out.ShippingAddress = event.PlainAddress(addr)
	return &out, nil
}

// openOrders is openOrder of each order, in place.
func (s *Service) openOrders(ctx context.Context, orders []*Order) error {
	for i, o := range orders {
		var err error
		if orders[i], err = s.openOrder(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// openCustomerOf returns c with both fields in clear.
func (s *Service) openCustomerOf(ctx context.Context, c Customer) (Customer, error) {
	email, name, err := s.openCustomer(ctx, c.Email, c.Name)
	return Customer{Email: event.Plain(email), Name: event.Plain(name)}, err
}

// openHistory opens the personal fields of history items: the stored
// payload (event.OpenData) and the order after each event.
func (s *Service) openHistory(ctx context.Context, items []HistoryItem) error {
	for i := range items {
		data, err := event.OpenData(ctx, s.d.Keys, items[i].Data)
		if err != nil {
			return fmt.Errorf("order: history: %w", err)
		}
		items[i].Data = data
		if items[i].State, err = s.openOrder(ctx, items[i].State); err != nil {
			return err
		}
	}
	return nil
}
