package order

import (
	"context"
	"slices"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// The users projection: the customer data orders are placed with, and who
// may order, kept from user events. Their email and name are sealed with
// the user's key (event.Personal), opened with Deps.Keys.

func (s *Service) onUserRegistered(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, u *event.UserRegistered) error {
	email, name, err := s.openCustomer(ctx, u.Email, u.Name)
	if err != nil {
		return err
	}
	return s.store.upsertUser(ctx, tx, u.UserID, email, name)
}

// onUserUpdated also gives each of the user's orders the new customer data
// (a CustomerChanged in its stream), sealed as the user service sealed it:
// orders show the customer as they are now, and their history when it
// changed. A change whose Changed names neither the email nor the name
// leaves the orders alone (sealed values differ even when the clear ones
// do not, so the orders cannot compare them).
func (s *Service) onUserUpdated(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, u *event.UserUpdated) error {
	email, name, err := s.openCustomer(ctx, u.Email, u.Name)
	if err != nil {
		return err
	}
	if err := s.store.upsertUser(ctx, tx, u.UserID, email, name); err != nil {
		return err
	}
	if len(u.Changed) > 0 && !slices.Contains(u.Changed, "email") && !slices.Contains(u.Changed, "name") {
		return nil // a password or role: the orders' customer is as it was
	}
	return s.changeCustomer(ctx, tx, e, u.UserID, Customer{Email: u.Email, Name: u.Name})
}

// onPersonalDataErased replaces the user's email and name by event.Erased
// in the users projection and in each of the user's orders (a
// CustomerChanged in its stream).
func (s *Service) onPersonalDataErased(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p *event.PersonalDataErased) error {
	if f, ok := s.d.Keys.(interface{ Forget(userID string) }); ok {
		f.Forget(p.UserID) // the process's cached key, if any
	}
	if err := s.store.upsertUser(ctx, tx, p.UserID, event.Erased, event.Erased); err != nil {
		return err
	}
	if err := s.changeCustomer(ctx, tx, e, p.UserID, Customer{Email: event.Plain(event.Erased), Name: event.Plain(event.Erased)}); err != nil {
		return err
	}
	return s.store.deactivateUser(ctx, tx, p.UserID)
}

// changeCustomer records c as the customer of each of userID's orders.
func (s *Service) changeCustomer(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, userID string, c Customer) error {
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

// openCustomer opens an email and a name (of a user event or an order).
func (s *Service) openCustomer(ctx context.Context, email, name event.Personal) (string, string, error) {
	e, err := email.Open(ctx, s.d.Keys)
	if err != nil {
		return "", "", err
	}
	n, err := name.Open(ctx, s.d.Keys)
	return e, n, err
}

func (s *Service) onUserDeactivated(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p *event.UserDeactivated) error {
	return s.store.deactivateUser(ctx, tx, p.UserID)
}
