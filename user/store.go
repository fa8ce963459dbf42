package user

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/internal/sqldb"
)

type store struct{ db *sqldb.DB }

const userColumns = `id, email, name, password_hash, role, status, created_at, updated_at`

type queryer interface {
	QueryRow(context.Context, string, ...any) *sql.Row
}

func scanUser(r sqldb.Scanner) (*User, error) {
	var u User
	var created, updated int64
	if err := r.Scan(&u.ID, &u.Email, &u.Name, &u.passwordHash, &u.Role, &u.Status, &created, &updated); err != nil {
		return nil, err
	}
	u.CreatedAt, u.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
	return &u, nil
}

// user reads one account by id; ENOTFOUND if absent.
func (s *store) user(ctx context.Context, q queryer, id string) (*User, error) {
	u, err := scanUser(q.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, eventmart.Errorf(eventmart.ENOTFOUND, "user %s not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("user: read user %s: %w", id, err)
	}
	return u, nil
}

// byEmail reads one account by its normalised email; (nil, nil) if absent.
func (s *store) byEmail(ctx context.Context, q queryer, email string) (*User, error) {
	u, err := scanUser(q.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE email = ?`, email))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("user: read user by email: %w", err)
	}
	return u, nil
}

// list returns accounts in creation order, after the given offset.
func (s *store) list(ctx context.Context, limit, offset int) ([]*User, error) {
	out, err := sqldb.List(ctx, s.db, `SELECT `+userColumns+` FROM users ORDER BY created_at, id LIMIT ? OFFSET ?`, []any{limit, offset}, scanUser)
	if err != nil {
		return nil, fmt.Errorf("user: list users: %w", err)
	}
	return out, nil
}

// insert stores a new account; ECONFLICT if its email is taken.
func (s *store) insert(ctx context.Context, tx *sqldb.Tx, u *User) error {
	_, err := tx.Exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Email, u.Name, u.passwordHash, u.Role, u.Status, u.CreatedAt.UnixMilli(), u.UpdatedAt.UnixMilli())
	if err != nil && sqldb.IsUniqueViolation(err) {
		return emailTaken(u.Email)
	}
	if err != nil {
		return fmt.Errorf("user: insert user: %w", err)
	}
	return nil
}

// update stores every field of an account; ECONFLICT if its new email is
// taken.
func (s *store) update(ctx context.Context, tx *sqldb.Tx, u *User) error {
	_, err := tx.Exec(ctx, `UPDATE users SET email = ?, name = ?, password_hash = ?, role = ?, status = ?, updated_at = ? WHERE id = ?`,
		u.Email, u.Name, u.passwordHash, u.Role, u.Status, u.UpdatedAt.UnixMilli(), u.ID)
	if err != nil && sqldb.IsUniqueViolation(err) {
		return emailTaken(u.Email)
	}
	if err != nil {
		return fmt.Errorf("user: update user %s: %w", u.ID, err)
	}
	return nil
}

func emailTaken(email string) error {
	return eventmart.Errorf(eventmart.ECONFLICT, "an account with email %s already exists", email)
}
