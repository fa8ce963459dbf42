package user

import (
	"context"
	"net/http"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// RefreshRequest is the body of POST /auth/refresh.
type RefreshRequest struct {
	RefreshToken string `json:"refreshToken"`
}

// handleRefresh: POST /auth/refresh exchanges a refresh token for a new
// access token of the same session, with the account's current role, email
// and name. The refresh token is answered back unchanged: a session lasts
// EVENTMART_REFRESH_TTL from its login, however often it is refreshed. An
// ended session, or a deactivated account, gets 401.
func (s *Service) handleRefresh(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var in RefreshRequest
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	if in.RefreshToken == "" {
		httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "refreshToken is required"))
		return
	}
	id, err := s.d.Tokens.VerifyRefresh(in.RefreshToken)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	u, err := s.store.user(ctx, s.d.DB, id.UserID)
	if eventmart.ErrorCode(err) == eventmart.ENOTFOUND {
		err = eventmart.Errorf(eventmart.EUNAUTHORIZED, "invalid token: no such account")
	}
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	if !u.Active() {
		httpx.Error(w, r, eventmart.Errorf(eventmart.EUNAUTHORIZED, msgDeactivated))
		return
	}
	id.Role, id.Email, id.Name = u.Role, u.Email, u.Name
	tok, exp, err := s.d.Tokens.Issue(id)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	_, rexp, err := s.d.Tokens.IssueRefresh(id) // the same expiry as the token presented
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, TokenResponse{Token: tok, TokenType: "Bearer", ExpiresAt: exp.UTC(), RefreshToken: in.RefreshToken, RefreshExpiresAt: rexp.UTC()})
}

// handleLogout: POST /auth/logout ends the caller's session: its access
// and refresh tokens are refused from then on, by every instance.
func (s *Service) handleLogout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	caller, err := auth.Require(ctx)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	if caller.SessionID == "" {
		httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "the token names no session; it ends when it expires"))
		return
	}
	err = s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		return s.endSessions(ctx, tx, &event.SessionsRevoked{UserID: caller.UserID, SessionID: caller.SessionID, RevokedAt: s.d.Now().UTC(), Reason: "logout"})
	})
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	s.d.Outbox.Notify()
	w.WriteHeader(http.StatusNoContent)
}

// handleRevokeSessions: DELETE /users/{id}/sessions ends every session of
// the account, the caller's own included when it is theirs ("log out
// everywhere"). Admins may do it to any account, a user to their own;
// anyone else gets the same 404 as for an unknown id.
func (s *Service) handleRevokeSessions(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	_, id, err := namedAccount(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	err = s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		if _, err := s.store.user(ctx, tx, id); err != nil {
			return err
		}
		return s.endSessions(ctx, tx, &event.SessionsRevoked{UserID: id, RevokedAt: s.d.Now().UTC(), Reason: "revoked"})
	})
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	s.d.Outbox.Notify()
	w.WriteHeader(http.StatusNoContent)
}

// endSessions emits p in tx and, once tx commits, refuses p's sessions in
// this process at once; the other processes learn it from the event.
func (s *Service) endSessions(ctx context.Context, tx *sqldb.Tx, p *event.SessionsRevoked) error {
	if err := s.emit(ctx, tx, p); err != nil {
		return err
	}
	tx.OnCommit(func() { s.d.Tokens.EndSessions(p.UserID, p.SessionID, p.KeepSessionID, p.RevokedAt) })
	return nil
}
