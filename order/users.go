package order

import (
	"context"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// The users projection: the customer data orders are placed with, and who
// may order, kept from user events. Their email and name are sealed with
// the user's key (event.Personal), opened with Deps.Keys.

func (s *Service) onUserRegistered(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, u *event.UserRegistered) error {
	c, err := s.openCustomer(ctx, u.Email, u.Name)
	if err != nil {
		return err
	}
	return s.store.upsertUser(ctx, tx, u.UserID, c.Email, c.Name)
}

// onUserUpdated also gives each of the user's orders the new customer data
// (a CustomerChanged in its stream, when it differs): orders show the
// customer as they are now, and their history when it changed.
func (s *Service) onUserUpdated(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, u *event.UserUpdated) error {
	c, err := s.openCustomer(ctx, u.Email, u.Name)
	if err != nil {
		return err
	}
	return s.changeCustomer(ctx, tx, e, u.UserID, c)
}

// onPersonalDataErased replaces the user's email and name by event.Erased
// in the users projection and in each of the user's orders (a
// CustomerChanged in its stream).
func (s *Service) onPersonalDataErased(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p *event.PersonalDataErased) error {
	if f, ok := s.d.Keys.(interface{ Forget(userID string) }); ok {
		f.Forget(p.UserID) // the process's cached key, if any
	}
	if err := s.changeCustomer(ctx, tx, e, p.UserID, Customer{Email: event.Erased, Name: event.Erased}); err != nil {
		return err
	}
	return s.store.deactivateUser(ctx, tx, p.UserID)
}

func (s *Service) changeCustomer(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, userID string, c Customer) error {
	if err := s.store.upsertUser(ctx, tx, userID, c.Email, c.Name); err != nil {
		return err
	}
	ids, err := s.store.ordersOf(ctx, tx, userID)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, _, err := s.command(ctx, tx, e.Origin(), id, Command{Kind: UpdateCustomer, Customer: c}); err != nil {
			return err
		}
	}
	return nil
}

// openCustomer opens a user event's email and name.
func (s *Service) openCustomer(ctx context.Context, email, name event.Personal) (Customer, error) {
	var c Customer
	var err error
	if c.Email, err = email.Open(ctx, s.d.Keys); err != nil {
		return c, err
	}
	c.Name, err = name.Open(ctx, s.d.Keys)
	return c, err
}

func (s *Service) onUserDeactivated(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p *event.UserDeactivated) error {
	return s.store.deactivateUser(ctx, tx, p.UserID)
}
