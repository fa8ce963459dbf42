package user

import (
	"context"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// AdminName is the display name of an admin account EnsureAdmin creates.
const AdminName = "Administrator"

// EnsureAdmin makes sure an active admin account with email and password
// exists, and returns it. New calls it with EVENTMART_ADMIN_EMAIL and
// EVENTMART_ADMIN_PASSWORD.
//
// Without an account of that email it creates one (UserRegistered, role
// admin). An existing account is made admin and active and given the
// password, with one UserUpdated whose changed lists "password", "role"
// and "status" as they changed. When nothing changes nothing is written or
// emitted, so calling it at every start is harmless. email and password
// must pass the same rules as a registration.
func (s *Service) EnsureAdmin(ctx context.Context, email, password string) (*User, error) {
	email, err := normalizeEmail(email)
	if err != nil {
		return nil, err
	}
	pw, err := checkPassword(password, email)
	if err != nil {
		return nil, err
	}
	// Two instances starting at once may both try to create the account;
	// the loser sees the unique email conflict and tries once more, finding
	// the account.
	for attempt := 0; ; attempt++ {
		u, err := s.ensureAdmin(ctx, email, pw)
		if eventmart.ErrorCode(err) == eventmart.ECONFLICT && attempt == 0 {
			continue
		}
		if err != nil {
			return nil, err
		}
		s.d.Outbox.Notify()
		return u, nil
	}
}

func (s *Service) ensureAdmin(ctx context.Context, email, pw string) (*User, error) {
	u, err := s.store.byEmail(ctx, s.d.DB, email)
	if err != nil {
		return nil, err
	}
	var newHash string
	if u == nil || !passwordMatches([]byte(u.passwordHash), pw) {
		h, err := hashPassword(pw) // before the transaction: bcrypt is slow
		if err != nil {
			return nil, err
		}
		newHash = string(h)
	}
	now := s.d.Now().UTC()
	// A bootstrap starts a flow of its own: no request, no caller.
	origin := event.Origin{}
	err = s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		if u, err = s.store.byEmail(ctx, tx, email); err != nil {
			return err
		}
		if u == nil {
			u = &User{ID: event.NewID(), Email: email, Name: AdminName, Role: RoleAdmin, Status: StatusActive,
				CreatedAt: now, UpdatedAt: now, passwordHash: newHash}
			if newHash == "" {
				// Gone since the first read (never in practice: accounts
				// are not deleted): EnsureAdmin tries once more.
				return eventmart.Errorf(eventmart.ECONFLICT, "admin account %s changed during bootstrap", email)
			}
			if err := s.store.insert(ctx, tx, u); err != nil {
				return err
			}
			p, err := s.registeredEvent(ctx, tx, u)
			if err != nil {
				return err
			}
			return outbox.Emit(ctx, tx, service.Source(Name), origin, p)
		}
		var changed []string
		if newHash != "" {
			u.passwordHash, changed = newHash, append(changed, "password")
		}
		if u.Role != RoleAdmin {
			u.Role, changed = RoleAdmin, append(changed, "role")
		}
		if u.Status != StatusActive {
			u.Status, changed = StatusActive, append(changed, "status")
		}
		if len(changed) == 0 {
			return nil
		}
		u.UpdatedAt = now
		if err := s.store.update(ctx, tx, u); err != nil {
			return err
		}
		p, err := s.updatedEvent(ctx, tx, u, changed)
		if err != nil {
			return err
		}
		return outbox.Emit(ctx, tx, service.Source(Name), origin, p)
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}
