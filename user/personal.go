package user

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Personal data: the user service keeps one key per user (personal_keys)
// and seals the personal fields of the user's events with it (event.Seal).
// DELETE /users/{id}/personal-data destroys the key: the events keep their
// bytes and read as erased. Readers in other services get keys through
// event.Keys, wired by the runtime to PersonalKey (in one process) or to
// GET /api/v1/users/{id}/personal-key (between processes).

// keyExec is what keyFor needs: a transaction or the database.
type keyExec interface {
	queryer
	Exec(context.Context, string, ...any) (sql.Result, error)
}

// keyFor returns user id's key, creating it if the user has none yet (an
// account made before keys existed, or in the transaction that creates the
// account); an error wrapping event.ErrErased once it is destroyed.
func (s *store) keyFor(ctx context.Context, q keyExec, id string, now int64) ([]byte, error) {
	key, err := s.key(ctx, q, id)
	if !errors.Is(err, errNoKey) {
		return key, err
	}
	fresh := make([]byte, event.PersonalKeySize)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("user: a personal key: %w", err)
	}
	// Two writers making the first key at once: one insert wins, both
	// read it back.
	if _, err := q.Exec(ctx, `INSERT INTO personal_keys (user_id, key_hex, created_at) VALUES (?, ?, ?) ON CONFLICT (user_id) DO NOTHING`,
		id, hex.EncodeToString(fresh), now); err != nil {
		return nil, fmt.Errorf("user: store the personal key of %s: %w", id, err)
	}
	return s.key(ctx, q, id)
}

var errNoKey = errors.New("no personal key yet")

// key reads user id's key: errNoKey if it has none, event.ErrErased if
// it was destroyed.
func (s *store) key(ctx context.Context, q queryer, id string) ([]byte, error) {
	var h sql.NullString
	err := q.QueryRow(ctx, `SELECT key_hex FROM personal_keys WHERE user_id = ?`, id).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoKey
	}
	if err != nil {
		return nil, fmt.Errorf("user: read the personal key of %s: %w", id, err)
	}
	if !h.Valid {
		return nil, fmt.Errorf("user %s: %w", id, event.ErrErased)
	}
	key, err := hex.DecodeString(h.String)
	if err != nil || len(key) != event.PersonalKeySize {
		return nil, fmt.Errorf("user: the personal key of %s is malformed", id)
	}
	return key, nil
}

// destroyKey destroys user id's key for good (a row without key stays, so
// no key is made for the user again).
func (s *store) destroyKey(ctx context.Context, tx *sqldb.Tx, id string, now int64) error {
	if _, err := tx.Exec(ctx, `INSERT INTO personal_keys (user_id, key_hex, created_at, destroyed_at) VALUES (?, NULL, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET key_hex = NULL, destroyed_at = excluded.destroyed_at`, id, now, now); err != nil {
		return fmt.Errorf("user: destroy the personal key of %s: %w", id, err)
	}
	return nil
}

// PersonalKey returns the key of userID's personal data (event.Keys): the
// runtime's adapter calls it for readers in this process. A user without a
// key — destroyed, or never made, so nothing of theirs is sealed — is
// event.ErrErased.
func (s *Service) PersonalKey(ctx context.Context, userID string) ([]byte, error) {
	key, err := s.store.key(ctx, s.d.DB, userID)
	if errors.Is(err, errNoKey) {
		return nil, fmt.Errorf("user %s: %w", userID, event.ErrErased)
	}
	return key, err
}

// sealer seals the personal fields of one user's events within a
// transaction, with the user's key (made on first use).
type sealer struct {
	key    []byte
	userID string
}

func (s *Service) sealerFor(ctx context.Context, q keyExec, userID string) (*sealer, error) {
	key, err := s.store.keyFor(ctx, q, userID, s.d.Now().UnixMilli())
	if err != nil {
		return nil, err
	}
	return &sealer{key: key, userID: userID}, nil
}

// seal seals each value into its Personal, in order.
func (sl *sealer) seal(pairs ...any) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		p, err := event.Seal(sl.key, sl.userID, pairs[i+1].(string))
		if err != nil {
			return err
		}
		*pairs[i].(*event.Personal) = p
	}
	return nil
}

// registeredEvent is UserRegistered of u, its email and name sealed.
func (s *Service) registeredEvent(ctx context.Context, q keyExec, u *User) (*event.UserRegistered, error) {
	sl, err := s.sealerFor(ctx, q, u.ID)
	if err != nil {
		return nil, err
	}
	p := &event.UserRegistered{UserID: u.ID, Role: u.Role}
	return p, sl.seal(&p.Email, u.Email, &p.Name, u.Name)
}

// updatedEvent is UserUpdated of u, its email and name sealed.
func (s *Service) updatedEvent(ctx context.Context, q keyExec, u *User, changed []string) (*event.UserUpdated, error) {
	sl, err := s.sealerFor(ctx, q, u.ID)
	if err != nil {
		return nil, err
	}
	p := &event.UserUpdated{UserID: u.ID, Changed: changed}
	return p, sl.seal(&p.Email, u.Email, &p.Name, u.Name)
}

// handlePersonalKey: GET /users/{id}/personal-key, for the other
// services' processes (their event.Keys adapter), which call it with a
// service token (auth.RoleService): {"key": hex} or 404 erased.
func (s *Service) handlePersonalKey(w http.ResponseWriter, r *http.Request) {
	caller, err := auth.Require(r.Context())
	if err == nil && caller.Role != auth.RoleService {
		err = eventmart.Errorf(eventmart.EFORBIDDEN, "for Eventmart's services only")
	}
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	key, err := s.PersonalKey(r.Context(), r.PathValue("id"))
	if errors.Is(err, event.ErrErased) {
		err = eventmart.Errorf(eventmart.ENOTFOUND, "user %s: personal data erased", r.PathValue("id"))
	}
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, map[string]string{"key": hex.EncodeToString(key)})
}

// handleErase: DELETE /users/{id}/personal-data (an admin, or the user)
// erases the user's personal data: it destroys the key that sealed the
// personal fields of the user's events, so that they read as erased
// everywhere — the event log, the audit trail, exports — while their bytes
// and the audit hash chain stay as they were; it clears the account's
// email, name and password (the account can never log in again; it stays,
// deactivated, as orders refer to it), ends every session, and emits
// PersonalDataErased, on which the other services delete their clear
// copies. Erasing twice is harmless (204 both times).
func (s *Service) handleErase(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	_, id, err := namedAccount(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	err = s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		u, err := s.store.user(ctx, tx, id)
		if err != nil {
			return err
		}
		now := s.d.Now().UTC()
		if err := s.store.destroyKey(ctx, tx, id, now.UnixMilli()); err != nil {
			return err
		}
		// The email column stays unique and is no address anyone can
		// register (normalizeEmail refuses it); without a password hash no
		// login matches the account.
		u.Email, u.Name, u.passwordHash = erasedEmail(id), event.Erased, ""
		u.Status, u.UpdatedAt = StatusDeactivated, now
		if err := s.store.update(ctx, tx, u); err != nil {
			return err
		}
		if err := s.emit(ctx, tx, &event.PersonalDataErased{UserID: id, ErasedAt: now}); err != nil {
			return err
		}
		if f, ok := s.d.Keys.(interface{ Forget(userID string) }); ok {
			tx.OnCommit(func() { f.Forget(id) }) // the process's cached key
		}
		return s.endSessions(ctx, tx, &event.SessionsRevoked{UserID: id, RevokedAt: now, Reason: "erased"})
	})
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	s.d.Outbox.Notify()
	w.WriteHeader(http.StatusNoContent)
}

// erasedEmail is the email column of an erased account.
func erasedEmail(id string) string { return "erased:" + id }
