package order

import (
	"context"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// The users projection: the customer data orders are placed with, and who
// may order, kept from user events.

func (s *Service) onUserRegistered(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, u *event.UserRegistered) error {
	return s.store.upsertUser(ctx, tx, u.UserID, u.Email, u.Name)
}

// onUserUpdated also gives each of the user's orders the new customer data
// (a CustomerChanged in its stream, when it differs): orders show the
// customer as they are now, and their history when it changed.
func (s *Service) onUserUpdated(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, u *event.UserUpdated) error {
	if err := s.store.upsertUser(ctx, tx, u.UserID, u.Email, u.Name); err != nil {
		return err
	}
	ids, err := s.store.ordersOf(ctx, tx, u.UserID)
	if err != nil {
		return err
	}
	for _, id := range ids {
		c := Command{Kind: UpdateCustomer, Customer: Customer{Email: u.Email, Name: u.Name}}
		if _, _, err := s.command(ctx, tx, e.Origin(), id, c); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) onUserDeactivated(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p *event.UserDeactivated) error {
	return s.store.deactivateUser(ctx, tx, p.UserID)
}
