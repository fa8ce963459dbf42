// Package user is the user service: accounts, their credentials, and the
// tokens that authenticate every other API call.
//
// It owns the users table. Anyone may register (UserRegistered, role
// customer); a registered user logs in with email and password for a bearer
// token, reads and changes their profile (UserUpdated, listing the changed
// fields) and may deactivate their account (UserDeactivated), after which
// it can no longer log in. Admins list and read every account. All three
// events travel on user-events keyed by the user id. It consumes nothing.
//
// Passwords follow NIST SP 800-63B: 8 to 256 characters, no composition
// rules, a blocklist of very common passwords and a strength estimate
// (zxcvbn), stored only as bcrypt hashes. Failed logins are throttled per
// account and per client address (throttle.go).
//
// Personal data is crypto-shredded (personal.go): each user has a key
// (personal_keys) that seals the email and name in the user's events;
// DELETE /users/{id}/personal-data destroys it, clears the account and
// emits PersonalDataErased. Other services get keys through event.Keys.
//
// A login starts a session: a short-lived access token and a refresh
// token carry its id. Logout, a password change (all other sessions), a
// deactivation and an admin's revocation end sessions with
// SessionsRevoked, which every process applies to its token checks
// (sessions.go).
//
// Settings:
//   - EVENTMART_ADMIN_EMAIL, EVENTMART_ADMIN_PASSWORD: when both are set,
//     New makes sure an active admin account with that email and password
//     exists before the service answers (see EnsureAdmin). Unset: no admin
//     is created. Not in a standby region, whose accounts are the
//     primary's, replicated.
//   - EVENTMART_TRUSTED_PROXIES: the proxies whose X-Forwarded-For names
//     the client address that failed logins are counted by.
package user

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/settings"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Name is the service name.
const Name = "user"

// Def describes the user service to the runtime.
func Def() service.Def {
	sub, _ := fs.Sub(migrations, "migrations")
	return service.Def{Name: Name, Migrations: sub, New: func(d service.Deps) (service.Service, error) {
		s, err := New(d)
		if err != nil {
			return nil, err // not a nil *Service inside a non-nil interface
		}
		return s, nil
	}}
}

// Roles and statuses of an account.
const (
	RoleCustomer = "customer"
	RoleAdmin    = "admin"

	StatusActive      = "active"
	StatusDeactivated = "deactivated"
)

// User is an account. The password hash never leaves the service.
type User struct {
	ID           string    `json:"id"`
	Email        string    `json:"email"`
	Name         string    `json:"name"`
	Role         string    `json:"role"`
	Status       string    `json:"status"`
	CreatedAt    time.Time `json:"createdAt"`
	UpdatedAt    time.Time `json:"updatedAt"`
	passwordHash string    // bcrypt; never leaves the service
}

// Active reports whether the account may log in and use the API.
func (u *User) Active() bool { return u.Status == StatusActive }

// Service is the user service.
type Service struct {
	d     service.Deps
	store *store
	// dummyHash is compared against when a login names an unknown email,
	// so that such a login takes as long as one with a wrong password and
	// response times do not reveal which emails have accounts. Made on
	// first use: bcrypt is slow.
	dummyHash func() ([]byte, error)
	throttle  *throttle
}

// bootstrapTimeout bounds the admin bootstrap New runs.
const bootstrapTimeout = 30 * time.Second

// New returns the user service. If EVENTMART_ADMIN_EMAIL and
// EVENTMART_ADMIN_PASSWORD are both set it first ensures that admin
// account (EnsureAdmin), so the admin can log in as soon as the service
// answers; an invalid admin email or password is an error. Setting only one
// of the two is an error too, as it is surely a mistake.
func New(d service.Deps) (*Service, error) {
	trusted, err := parseTrusted(d.Settings.List(settings.TrustedProxies))
	if err != nil {
		return nil, err
	}
	s := &Service{d: d, store: &store{db: d.DB}, dummyHash: sync.OnceValues(func() ([]byte, error) { return hashPassword(event.NewID()) }),
		throttle: &throttle{db: d.DB, trusted: trusted}}
	email, password := d.Settings.String(settings.AdminEmail), d.Settings.String(settings.AdminPassword)
	switch {
	case d.Standby:
		// A standby's database is a read-only replica of the primary's:
		// the admin account is the primary's, replicated (docs/regions.md).
		d.Log.Info("standby region: the admin account is not ensured here; the primary region's accounts are read from the replica")
		return s, nil
	case email == "" && password == "":
		// Said at every start, so that an operator who forgot the admin
		// learns why the admin API refuses everyone (docs/security.md).
		d.Log.Warn("no admin configured: EVENTMART_ADMIN_EMAIL and EVENTMART_ADMIN_PASSWORD are unset, so no admin account is ensured at start; set both to bootstrap one")
		return s, nil
	case email == "" || password == "":
		return nil, fmt.Errorf("user: set both EVENTMART_ADMIN_EMAIL and EVENTMART_ADMIN_PASSWORD, or neither")
	}
	ctx, cancel := context.WithTimeout(context.Background(), bootstrapTimeout)
	defer cancel()
	if _, err := s.EnsureAdmin(ctx, email, password); err != nil {
		return nil, fmt.Errorf("user: admin bootstrap (EVENTMART_ADMIN_EMAIL): %w", err)
	}
	return s, nil
}

// Run has no background work.
func (s *Service) Run(ctx context.Context) error { return nil }

// Handlers: the user service consumes no events.
func (s *Service) Handlers() []inbox.Handler { return nil }
