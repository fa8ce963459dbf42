package notification

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/eventmart/eventmart/internal/sqldb"
)

type store struct{ db *sqldb.DB }

// recipient is what user-events said about a user.
type recipient struct {
	UserID string
	Email  string
	Name   string
	Status string // "active", "deactivated" or "erased" (Email and Name empty)
}

// Recipient statuses.
const (
	recipientActive      = "active"
	recipientDeactivated = "deactivated"
	recipientErased      = "erased"
)

// eraseMessages deletes the personal data of userID's messages: their
// address, subject and body (which greet by name); the rest stays, so the
// mailbox still says what was sent when.
func (s *store) eraseMessages(ctx context.Context, tx *sqldb.Tx, userID string) error {
	if _, err := tx.Exec(ctx, `UPDATE notifications SET recipient = '', subject = '', body = '' WHERE user_id = ?`, userID); err != nil {
		return fmt.Errorf("notification: erase the messages of %s: %w", userID, err)
	}
	return nil
}

// recipient reads a user's address; (nil, nil) if no user event named it.
func (s *store) recipient(ctx context.Context, tx *sqldb.Tx, userID string) (*recipient, error) {
	r := recipient{UserID: userID}
	err := tx.QueryRow(ctx, `SELECT email, name, status FROM recipients WHERE user_id = ?`, userID).Scan(&r.Email, &r.Name, &r.Status)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("notification: read recipient %s: %w", userID, err)
	}
	return &r, nil
}

// putRecipient inserts or replaces a user's address.
func (s *store) putRecipient(ctx context.Context, tx *sqldb.Tx, r *recipient, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO recipients (user_id, email, name, status, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, name = excluded.name, status = excluded.status, updated_at = excluded.updated_at`,
		r.UserID, r.Email, r.Name, r.Status, now.UnixMilli())
	if err != nil {
		return fmt.Errorf("notification: store recipient %s: %w", r.UserID, err)
	}
	return nil
}

const notificationColumns = `id, user_id, channel, template, recipient, subject, body, subject_type, subject_id, status, attempts, error, event_id, created_at`

func (s *store) insert(ctx context.Context, tx *sqldb.Tx, n *Notification) error {
	_, err := tx.Exec(ctx, `INSERT INTO notifications (`+notificationColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		n.ID, n.UserID, n.Channel, n.Template, n.Recipient, n.Subject, n.Body, n.SubjectType, n.SubjectID,
		n.Status, n.Attempts, n.Error, n.EventID, n.CreatedAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("notification: store notification: %w", err)
	}
	return nil
}

// filter selects notifications; empty fields select all.
type filter struct {
	UserID, Template, SubjectID string
}

// list returns notifications newest first, after the given offset.
func (s *store) list(ctx context.Context, f filter, limit, offset int) ([]*Notification, error) {
	q, args := sqldb.AndEq(`SELECT `+notificationColumns+` FROM notifications WHERE 1 = 1`, nil,
		sqldb.Eq{Col: "user_id", Value: f.UserID}, sqldb.Eq{Col: "template", Value: f.Template}, sqldb.Eq{Col: "subject_id", Value: f.SubjectID})
	q += ` ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`
	args = append(args, limit, offset)
	out, err := sqldb.List(ctx, s.db, q, args, scanNotification)
	if err != nil {
		return nil, fmt.Errorf("notification: list: %w", err)
	}
	return out, nil
}

func scanNotification(r sqldb.Scanner) (*Notification, error) {
	var n Notification
	var created int64
	if err := r.Scan(&n.ID, &n.UserID, &n.Channel, &n.Template, &n.Recipient, &n.Subject, &n.Body, &n.SubjectType, &n.SubjectID,
		&n.Status, &n.Attempts, &n.Error, &n.EventID, &created); err != nil {
		return nil, err
	}
	n.CreatedAt = time.UnixMilli(created).UTC()
	return &n, nil
}
