package user

import (
	"cmp"
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Routes registers the user API.
func (s *Service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/users", s.handleRegister)
	mux.HandleFunc("POST /api/v1/auth/token", s.handleToken)
	mux.HandleFunc("POST /api/v1/auth/refresh", s.handleRefresh)
	mux.HandleFunc("POST /api/v1/auth/logout", s.handleLogout)
	mux.HandleFunc("DELETE /api/v1/users/{id}/sessions", s.handleRevokeSessions)
	mux.HandleFunc("GET /api/v1/users/me", s.handleGetMe)
	mux.HandleFunc("PATCH /api/v1/users/me", s.handleUpdateMe)
	mux.HandleFunc("DELETE /api/v1/users/me", s.handleDeactivateMe)
	mux.HandleFunc("GET /api/v1/users", s.handleList)
	mux.HandleFunc("GET /api/v1/users/{id}", s.handleGet)
	mux.HandleFunc("DELETE /api/v1/users/{id}/personal-data", s.handleErase)
	mux.HandleFunc("GET /api/v1/users/{id}/personal-key", s.handlePersonalKey)
}

// RegisterInput is the body of POST /users.
type RegisterInput struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
}

// UpdateInput is the body of PATCH /users/me; absent fields keep their
// value. Changing the email or the password needs CurrentPassword: a
// stolen token alone cannot take the account over.
type UpdateInput struct {
	Name            *string `json:"name"`
	Email           *string `json:"email"`
	Password        *string `json:"password"`
	CurrentPassword *string `json:"currentPassword"`
}

// TokenRequest is the body of POST /auth/token.
type TokenRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// TokenResponse is the answer of POST /auth/token and /auth/refresh: an
// access token, and the refresh token that gets new ones until the session
// ends (POST /auth/refresh).
type TokenResponse struct {
	Token            string    `json:"token"`
	TokenType        string    `json:"tokenType"` // always "Bearer"
	ExpiresAt        time.Time `json:"expiresAt"`
	RefreshToken     string    `json:"refreshToken"`
	RefreshExpiresAt time.Time `json:"refreshExpiresAt"`
}

// Messages of failed logins. One message for an unknown email and a wrong
// password, so that the answer does not tell which emails have accounts.
const (
	msgBadCredentials = "invalid email or password"
	msgDeactivated    = "account deactivated"
)

// handleRegister: POST /users creates a customer account.
func (s *Service) handleRegister(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var in RegisterInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	email, err := normalizeEmail(in.Email)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	name, err := normalizeName(in.Name)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	pw, err := checkPassword(in.Password, email, name)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	// Hash before the transaction: bcrypt is slow on purpose and must not
	// hold the database's write lock.
	hash, err := hashPassword(pw)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	now := s.d.Now().UTC()
	u := &User{ID: event.NewID(), Email: email, Name: name, Role: RoleCustomer, Status: StatusActive,
		CreatedAt: now, UpdatedAt: now, passwordHash: string(hash)}
	origin := service.RequestOrigin(ctx)
	if origin.Metadata.UserID == "" {
		origin.Metadata.UserID = u.ID // the new user caused it; the request was anonymous
	}
	// An email that has an account gets the same answer as a new one (a
	// made-up account that no one can log in to or read), so registration
	// does not tell which emails have accounts; the account holder is told
	// instead (RegistrationRepeated).
	err = s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		taken, err := s.store.byEmail(ctx, tx, email)
		if err != nil {
			return err
		}
		if taken != nil {
			origin.Metadata.UserID = taken.ID
			return outbox.Emit(ctx, tx, service.Source(Name), origin, &event.RegistrationRepeated{UserID: taken.ID})
		}
		if err := s.store.insert(ctx, tx, u); err != nil {
			return err
		}
		p, err := s.registeredEvent(ctx, tx, u)
		if err != nil {
			return err
		}
		return outbox.Emit(ctx, tx, service.Source(Name), origin, p)
	})
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	s.d.Outbox.Notify()
	w.Header().Set("Location", "/api/v1/users/"+u.ID)
	httpx.JSON(w, http.StatusCreated, u)
}

// handleToken: POST /auth/token exchanges email and password for a bearer
// token.
func (s *Service) handleToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var in TokenRequest
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	if strings.TrimSpace(in.Email) == "" || in.Password == "" {
		httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "email and password are required"))
		return
	}
	if len(strings.TrimSpace(in.Email)) > MaxEmailLength {
		// No account has such an email: refused before any work or record.
		httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "email must be at most %d characters", MaxEmailLength))
		return
	}
	email := loginEmail(in.Email)
	keys := s.throttle.loginKeys(r, email)
	if s.throttled(w, r, keys, email) {
		return
	}
	u, err := s.store.byEmail(ctx, s.d.DB, email)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	if u == nil {
		dummy, err := s.dummyHash()
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		passwordMatches(dummy, in.Password) // the same work as for a known email
		s.countFailure(r, keys)
		s.loginFailed(w, r, email, "invalid-credentials", msgBadCredentials)
		return
	}
	if !passwordMatches([]byte(u.passwordHash), in.Password) {
		s.countFailure(r, keys)
		s.loginFailed(w, r, u.Email, "invalid-credentials", msgBadCredentials)
		return
	}
	// Only after the password: a deactivated account is not revealed to
	// someone who does not know its password.
	if !u.Active() {
		s.loginFailed(w, r, u.Email, "deactivated", msgDeactivated)
		return
	}
	if err := s.throttle.succeeded(ctx, keys[0]); err != nil {
		httpx.Error(w, r, err)
		return
	}
	id := auth.Identity{UserID: u.ID, Role: u.Role, Email: u.Email, Name: u.Name, SessionID: event.NewID(),
		SessionStart: s.d.Now().Truncate(time.Millisecond)}
	resp, err := s.tokens(id)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	origin := service.RequestOrigin(ctx)
	origin.Metadata = event.Metadata{UserID: u.ID, SessionID: id.SessionID}
	sl, err := s.sealerFor(ctx, s.d.DB, u.ID)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	li := &event.UserLoggedIn{UserID: u.ID, Role: u.Role}
	if err := sl.seal(&li.Email, u.Email); err != nil {
		httpx.Error(w, r, err)
		return
	}
	if err := s.d.Outbox.EmitNow(ctx, service.Source(Name), origin, li); err != nil {
		// No token without its audit record.
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, resp)
}

// tokens issues the access and refresh tokens of id's session.
func (s *Service) tokens(id auth.Identity) (TokenResponse, error) {
	tok, exp, err := s.d.Tokens.Issue(id)
	if err != nil {
		return TokenResponse{}, err
	}
	refresh, rexp, err := s.d.Tokens.IssueRefresh(id)
	if err != nil {
		return TokenResponse{}, err
	}
	return TokenResponse{Token: tok, TokenType: "Bearer", ExpiresAt: exp.UTC(), RefreshToken: refresh, RefreshExpiresAt: rexp.UTC()}, nil
}

// loginFailed answers 401 with msg after recording LoginFailed (a security
// event on audit-events). If the record cannot be written the caller still
// gets a 401; the failure is logged.
func (s *Service) loginFailed(w http.ResponseWriter, r *http.Request, email, reason, msg string) {
	s.recordLoginFailed(r, email, reason)
	httpx.Error(w, r, &eventmart.Error{Code: eventmart.EUNAUTHORIZED, Message: msg})
}

// recordLoginFailed records LoginFailed; a failure to is logged. When the
// email names an account the record is keyed by the account's id and the
// email sealed with its key (personal data, erasable); an email of no
// account is recorded as typed (bounded).
func (s *Service) recordLoginFailed(r *http.Request, email, reason string) {
	ctx := r.Context()
	email = strings.ToLower(strings.TrimSpace(email))
	p, err := s.loginFailedEvent(ctx, email, reason)
	if err == nil {
		err = s.d.Outbox.EmitNow(ctx, service.Source(Name), service.RequestOrigin(ctx), p)
	}
	if err != nil {
		httpx.Logger(ctx).Error("recording a failed login", "error", err)
	}
}

func (s *Service) loginFailedEvent(ctx context.Context, email, reason string) (*event.LoginFailed, error) {
	p := &event.LoginFailed{Account: email, Email: event.Plain(email), Reason: reason}
	if len(email) > MaxEmailLength {
		return p, nil // no account has it (bounded by event.New)
	}
	u, err := s.store.byEmail(ctx, s.d.DB, loginEmail(email))
	if err != nil || u == nil {
		return p, err
	}
	sl, err := s.sealerFor(ctx, s.d.DB, u.ID)
	if err != nil {
		return nil, err
	}
	p.Account = u.ID
	return p, sl.seal(&p.Email, email)
}

// handleGetMe: GET /users/me.
func (s *Service) handleGetMe(w http.ResponseWriter, r *http.Request) {
	u, err := s.me(r.Context(), s.d.DB)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, u)
}

// handleUpdateMe: PATCH /users/me changes name, email or password and
// emits UserUpdated listing what changed; nothing changed, no event.
func (s *Service) handleUpdateMe(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	cur, err := s.me(ctx, s.d.DB)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	var in UpdateInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	var name, email string
	if in.Name != nil {
		if name, err = normalizeName(*in.Name); err != nil {
			httpx.Error(w, r, err)
			return
		}
	}
	if in.Email != nil {
		if email, err = normalizeEmail(*in.Email); err != nil {
			httpx.Error(w, r, err)
			return
		}
	}
	// The new password is checked and hashed before the transaction
	// (bcrypt is slow); re-sending the current password changes nothing.
	var newHash string
	if in.Password != nil {
		pw, err := checkPassword(*in.Password, cmp.Or(email, cur.Email), cmp.Or(name, cur.Name))
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		if !passwordMatches([]byte(cur.passwordHash), pw) {
			h, err := hashPassword(pw)
			if err != nil {
				httpx.Error(w, r, err)
				return
			}
			newHash = string(h)
		}
	}
	if newHash != "" || (email != "" && email != cur.Email) {
		if !s.currentPasswordMatches(w, r, cur, in.CurrentPassword) {
			return
		}
	}
	caller, _ := auth.FromContext(ctx)
	var u *User
	err = s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		if u, err = s.me(ctx, tx); err != nil {
			return err
		}
		var changed []string
		if name != "" && name != u.Name {
			u.Name, changed = name, append(changed, "name")
		}
		if email != "" && email != u.Email {
			u.Email, changed = email, append(changed, "email")
		}
		if newHash != "" {
			u.passwordHash, changed = newHash, append(changed, "password")
		}
		if len(changed) == 0 {
			return nil
		}
		u.UpdatedAt = s.d.Now().UTC()
		if err := s.store.update(ctx, tx, u); err != nil {
			return err
		}
		p, err := s.updatedEvent(ctx, tx, u, changed)
		if err != nil {
			return err
		}
		if err := s.emit(ctx, tx, p); err != nil {
			return err
		}
		if newHash == "" {
			return nil
		}
		// A new password ends every other session: whoever had a stolen
		// token or password is out.
		return s.endSessions(ctx, tx, &event.SessionsRevoked{UserID: u.ID, KeepSessionID: caller.SessionID, RevokedAt: u.UpdatedAt, Reason: "password-changed"})
	})
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	s.d.Outbox.Notify()
	httpx.JSON(w, http.StatusOK, u)
}

// handleDeactivateMe: DELETE /users/me deactivates the caller's account
// and emits UserDeactivated. The account is kept (orders refer to it) but
// can no longer log in, and every one of its sessions ends.
func (s *Service) handleDeactivateMe(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var u *User
	err := s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		var err error
		if u, err = s.me(ctx, tx); err != nil {
			return err
		}
		u.Status, u.UpdatedAt = StatusDeactivated, s.d.Now().UTC()
		if err := s.store.update(ctx, tx, u); err != nil {
			return err
		}
		if err := s.emit(ctx, tx, &event.UserDeactivated{UserID: u.ID, Reason: "deactivated by the account holder"}); err != nil {
			return err
		}
		return s.endSessions(ctx, tx, &event.SessionsRevoked{UserID: u.ID, RevokedAt: u.UpdatedAt, Reason: "deactivated"})
	})
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	s.d.Outbox.Notify()
	httpx.JSON(w, http.StatusOK, u)
}

// handleList: GET /users?limit=&offset= (admins only).
func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.RequireAdmin(r.Context()); err != nil {
		httpx.Error(w, r, err)
		return
	}
	limit, offset, err := httpx.Page(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	users, err := s.store.list(r.Context(), limit, offset)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, map[string]any{"users": users, "limit": limit, "offset": offset, "next": httpx.NextPage(r, len(users), limit, offset)})
}

// namedAccount returns the caller and the account id the request's path
// names ({id}) when the caller may act on it — an admin on any, a user on
// their own; anyone else gets the same not-found as for an unknown id.
func namedAccount(r *http.Request) (auth.Identity, string, error) {
	caller, err := auth.Require(r.Context())
	if err != nil {
		return caller, "", err
	}
	id := r.PathValue("id")
	if !caller.Can(id) {
		return caller, "", eventmart.Errorf(eventmart.ENOTFOUND, "user %s not found", id)
	}
	return caller, id, nil
}

// handleGet: GET /users/{id} for admins and the account holder; anyone
// else gets the same 404 as for an unknown id.
func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	caller, id, err := namedAccount(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	u, err := s.store.user(ctx, s.d.DB, id)
	if err == nil && !caller.IsAdmin() && !u.Active() {
		err = eventmart.Errorf(eventmart.EUNAUTHORIZED, msgDeactivated)
	}
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, u)
}

// me reads the caller's own account: EUNAUTHORIZED for anonymous callers
// and for a deactivated account (its tokens live on until they expire, but
// are no good here), ENOTFOUND if the token names no account.
func (s *Service) me(ctx context.Context, q queryer) (*User, error) {
	id, err := auth.Require(ctx)
	if err != nil {
		return nil, err
	}
	u, err := s.store.user(ctx, q, id.UserID)
	if err != nil {
		return nil, err
	}
	if !u.Active() {
		return nil, eventmart.Errorf(eventmart.EUNAUTHORIZED, msgDeactivated)
	}
	return u, nil
}

func (s *Service) emit(ctx context.Context, tx *sqldb.Tx, p event.Payload) error {
	return outbox.Emit(ctx, tx, service.Source(Name), service.RequestOrigin(ctx), p)
}
