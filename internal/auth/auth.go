// Package auth issues and verifies the JSON Web Tokens that authenticate
// API calls, and carries the caller's identity in the request context.
//
// Tokens are HS256-signed with a secret shared by every process of one
// deployment (EVENTMART_JWT_SECRET; embedded mode generates one into the
// data directory). Every service verifies tokens itself, so no service
// trusts a header set by another.
package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/internal/fsperm"
	"github.com/eventmart/eventmart/internal/httpx"
)

// Roles.
const (
	RoleCustomer = "customer"
	RoleAdmin    = "admin"
	// RoleService is the role of Eventmart's own processes calling the
	// internal API of another (GET /users/{id}/personal-key); no
	// account has it, and only a holder of the JWT secret issues it.
	RoleService = "service"
)

// Identity is an authenticated caller.
type Identity struct {
	UserID    string
	Role      string
	Email     string
	Name      string
	SessionID string
	// SessionStart is when the session began (the login); a refreshed
	// token keeps it. Revocations compare against it.
	SessionStart time.Time
	// Token is the bearer token the identity came from, forwarded on
	// synchronous calls to other services.
	Token string
}

// IsAdmin reports whether the caller is an admin.
func (id Identity) IsAdmin() bool { return id.Role == RoleAdmin }

// Can reports whether the caller may see or change data owned by userID:
// its owner or an admin.
func (id Identity) Can(userID string) bool { return id.IsAdmin() || id.UserID == userID }

// ListOwner applies the rule of every listing of records owned by users —
// customers see their own, admins anyone's — and returns the user id the
// listing is filtered by, "" for every user's. asked is the user whose
// records the request asks for, "" for none (a listing narrowed otherwise,
// e.g. to one order, asks for none). An admin gets asked; a customer gets
// its own id, or EFORBIDDEN if it asked for another user's (?userId=; what
// names the records in the message, e.g. "orders").
func (id Identity) ListOwner(asked, what string) (string, error) {
	if id.IsAdmin() {
		return asked, nil
	}
	if asked != "" && asked != id.UserID {
		return "", eventmart.Errorf(eventmart.EFORBIDDEN, "userId: customers may list only their own %s", what)
	}
	return id.UserID, nil
}

// Tokens issues and verifies tokens.
type Tokens struct {
	secret     []byte
	ttl        time.Duration
	refreshTTL time.Duration
	now        func() time.Time
	revoked    *Revocations
	verified   verifiedTokens
	// parser checks a token's signature, algorithm and claims; validator
	// the claims alone, of a token whose signature was checked before.
	// Built once (NewTokens), with the same claim checks.
	parser    *jwt.Parser
	validator *jwt.Validator
}

// DefaultRefreshTTL is the lifetime of a session (its refresh token) unless
// SetRefreshTTL says otherwise.
const DefaultRefreshTTL = 24 * time.Hour

// NewTokens returns a token issuer/verifier for secret (at least 32 bytes)
// whose access tokens live for ttl and refresh tokens DefaultRefreshTTL.
// Verify refuses the tokens of sessions in its Revocations.
func NewTokens(secret []byte, ttl time.Duration) (*Tokens, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("auth: the JWT secret must be at least 32 bytes, got %d", len(secret))
	}
	t := &Tokens{secret: secret, ttl: ttl, refreshTTL: max(ttl, DefaultRefreshTTL), now: time.Now, revoked: NewRevocations(time.Now)}
	checks := []jwt.ParserOption{jwt.WithIssuer("eventmart"), jwt.WithExpirationRequired(), jwt.WithTimeFunc(func() time.Time { return t.now() })}
	t.parser = jwt.NewParser(append([]jwt.ParserOption{jwt.WithValidMethods([]string{"HS256"})}, checks...)...)
	t.validator = jwt.NewValidator(checks...)
	return t, nil
}

// SetRefreshTTL sets the lifetime of sessions: a refresh token lives that
// long from the login (at least as long as an access token). Call it before
// any token is issued.
func (t *Tokens) SetRefreshTTL(d time.Duration) { t.refreshTTL = max(d, t.ttl) }

// RefreshTTL is the lifetime of a session: how long a revocation must be
// remembered.
func (t *Tokens) RefreshTTL() time.Duration { return t.refreshTTL }

// Revocations is the list of ended sessions Verify checks.
func (t *Tokens) Revocations() *Revocations { return t.revoked }

// SecretFromFile returns the secret stored in path, creating a random one
// there (mode 0600) on first use. Embedded mode keeps its secret this way.
func SecretFromFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return []byte(strings.TrimSpace(string(b))), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("auth: %w", err)
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	secret := []byte(hex.EncodeToString(raw))
	if err := fsperm.MkdirAll(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if err := os.WriteFile(path, secret, fsperm.File); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return secret, nil
}

type claims struct {
	Role  string `json:"role"`
	Email string `json:"email"`
	Name  string `json:"name"`
	SID   string `json:"sid"`
	// SST is the session's start in Unix milliseconds (iat has only
	// seconds, too coarse to tell a login from a revocation just before).
	SST int64 `json:"sst,omitempty"`
	// Use is "refresh" in a refresh token, absent in an access token:
	// neither is accepted in place of the other.
	Use string `json:"use,omitempty"`
	jwt.RegisteredClaims
}

const useRefresh = "refresh"

// Issue returns a signed access token for id and its expiry. A zero
// id.SessionStart is now.
func (t *Tokens) Issue(id Identity) (string, time.Time, error) {
	return t.sign(id, "", t.now().Add(t.ttl))
}

// IssueRefresh returns a signed refresh token for id's session and its
// expiry: the session's start plus the refresh lifetime. Only Refresh
// accepts it.
func (t *Tokens) IssueRefresh(id Identity) (string, time.Time, error) {
	start := id.SessionStart
	if start.IsZero() {
		start = t.now()
	}
	return t.sign(id, useRefresh, start.Add(t.refreshTTL))
}

func (t *Tokens) sign(id Identity, use string, exp time.Time) (string, time.Time, error) {
	now := t.now()
	start := id.SessionStart
	if start.IsZero() {
		start = now
	}
	c := claims{Role: id.Role, Email: id.Email, Name: id.Name, SID: id.SessionID, SST: start.UnixMilli(), Use: use, RegisteredClaims: jwt.RegisteredClaims{
		Subject: id.UserID, Issuer: "eventmart", IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp),
	}}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: sign: %w", err)
	}
	return s, exp, nil
}

// Verify checks an access token's signature, algorithm, issuer and expiry,
// and that its session has not been revoked, and returns its identity, or
// an EUNAUTHORIZED error.
func (t *Tokens) Verify(token string) (Identity, error) { return t.verify(token, "") }

// VerifyRefresh is Verify for a refresh token (IssueRefresh).
func (t *Tokens) VerifyRefresh(token string) (Identity, error) { return t.verify(token, useRefresh) }

func (t *Tokens) verify(token, use string) (Identity, error) {
	c, err := t.claims(token)
	if err != nil {
		return Identity{}, eventmart.Errorf(eventmart.EUNAUTHORIZED, "invalid token: %v", strings.TrimPrefix(err.Error(), "token has invalid claims: "))
	}
	if c.Subject == "" || (c.Role != RoleCustomer && c.Role != RoleAdmin && c.Role != RoleService) {
		return Identity{}, eventmart.Errorf(eventmart.EUNAUTHORIZED, "invalid token: no subject or role")
	}
	if c.Use != use {
		if use == useRefresh {
			return Identity{}, eventmart.Errorf(eventmart.EUNAUTHORIZED, "invalid token: not a refresh token")
		}
		return Identity{}, eventmart.Errorf(eventmart.EUNAUTHORIZED, "invalid token: a refresh token is not an access token (POST /api/v1/auth/refresh)")
	}
	id := Identity{UserID: c.Subject, Role: c.Role, Email: c.Email, Name: c.Name, SessionID: c.SID}
	switch {
	case c.SST != 0:
		id.SessionStart = time.UnixMilli(c.SST)
	case c.IssuedAt != nil:
		id.SessionStart = c.IssuedAt.Time
	}
	if t.revoked.Revoked(id) {
		return Identity{}, eventmart.Errorf(eventmart.EUNAUTHORIZED, "invalid token: the session has ended (logged out, password changed, account deactivated or sessions revoked); log in again")
	}
	return id, nil
}

// claims returns token's claims once its signature, algorithm, issuer and
// expiry are checked. A token whose signature was checked before is not
// decoded again: only its claims' times and issuer are (verifiedTokens).
func (t *Tokens) claims(token string) (*claims, error) {
	if c, ok := t.verified.get(token); ok {
		return c, t.validator.Validate(c)
	}
	c := new(claims)
	_, err := t.parser.ParseWithClaims(token, c, func(*jwt.Token) (any, error) { return t.secret, nil })
	if err != nil {
		return nil, err
	}
	t.verified.add(token, c)
	return c, nil
}

type ctxKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the caller's identity, if authenticated.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}

// Authenticate puts the identity of a valid "Authorization: Bearer" token
// into the request context; requests without a token pass anonymous, and
// handlers decide with Require. A malformed or invalid token is a 401.
func (t *Tokens) Authenticate(onError func(http.ResponseWriter, *http.Request, error), h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := r.Header.Get("Authorization")
		if hdr == "" {
			h.ServeHTTP(w, r)
			return
		}
		// The scheme is case-insensitive (RFC 9110 §11.1): "bearer" is Bearer.
		scheme, token, ok := strings.Cut(hdr, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			onError(w, r, eventmart.Errorf(eventmart.EUNAUTHORIZED, "Authorization must be \"Bearer <token>\""))
			return
		}
		id, err := t.Verify(strings.TrimSpace(token))
		if err != nil {
			onError(w, r, err)
			return
		}
		id.Token = strings.TrimSpace(token)
		h.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), id)))
	})
}

// Require returns the caller's identity, or EUNAUTHORIZED for anonymous
// callers.
func Require(ctx context.Context) (Identity, error) {
	id, ok := FromContext(ctx)
	if !ok {
		return Identity{}, eventmart.Errorf(eventmart.EUNAUTHORIZED, "authentication required: send Authorization: Bearer <token> (POST /api/v1/auth/token)")
	}
	return id, nil
}

// AdminsOnly wraps h so that only admins reach it; anyone else gets
// RequireAdmin's error (401 anonymous, 403 customer) as a JSON error.
func AdminsOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, err := RequireAdmin(r.Context()); err != nil {
			httpx.Error(w, r, err)
			return
		}
		h(w, r)
	}
}

// RequireAdmin returns the caller's identity if it is an admin;
// EUNAUTHORIZED for anonymous callers, EFORBIDDEN for customers.
func RequireAdmin(ctx context.Context) (Identity, error) {
	id, err := Require(ctx)
	if err != nil {
		return id, err
	}
	if !id.IsAdmin() {
		return id, eventmart.Errorf(eventmart.EFORBIDDEN, "admins only")
	}
	return id, nil
}
