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

// onUserUpdated also rewrites the customer data of the user's orders: order
// history shows the customer as they are now.
func (s *Service) onUserUpdated(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, u *event.UserUpdated) error {
	if err := s.store.upsertUser(ctx, tx, u.UserID, u.Email, u.Name); err != nil {
		return err
	}
	return s.store.updateCustomer(ctx, tx, u.UserID, u.Email, u.Name)
}

func (s *Service) onUserDeactivated(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p *event.UserDeactivated) error {
	return s.store.deactivateUser(ctx, tx, p.UserID)
}
