package notification

import (
	"context"
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
// mailbox still says what was sent when. Messages of tx not written yet
// are written first, so that it erases them too.
func (s *store) eraseMessages(ctx context.Context, tx *sqldb.Tx, userID string) error {
	if err := notificationRows(tx).Flush(ctx, tx); err != nil {
		return fmt.Errorf("notification: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE notifications SET recipient = '', subject = '', body = '' WHERE user_id = ?`, userID); err != nil {
		return fmt.Errorf("notification: erase the messages of %s: %w", userID, err)
	}
	return nil
}

// recipient reads a user's address; (nil, nil) if no user event named it.
// It is the one in tx's cache of recipients (see loadRecipients) if that
// knows the user.
func (s *store) recipient(ctx context.Context, tx *sqldb.Tx, userID string) (*recipient, error) {
	c := recipientCache(tx)
	if r, ok := c[userID]; ok {
		return r.copy(), nil
	}
	if err := s.loadRecipients(ctx, tx, []string{userID}); err != nil {
		return nil, err
	}
	return c[userID].copy(), nil
}

// loadRecipients reads into tx's cache, in one query, the recipients of
// userIDs it does not know yet (nil for a user no user event named).
func (s *store) loadRecipients(ctx context.Context, tx *sqldb.Tx, userIDs []string) error {
	c := recipientCache(tx)
	var args []string
	for _, id := range userIDs {
		if _, ok := c[id]; !ok {
			c[id] = nil // unless found below
			args = append(args, id)
		}
	}
	found, err := sqldb.ListIn(ctx, tx, `SELECT user_id, email, name, status FROM recipients WHERE user_id`, "",
		args, func(sc sqldb.Scanner) (*recipient, error) {
			var r recipient
			err := sc.Scan(&r.UserID, &r.Email, &r.Name, &r.Status)
			return &r, err
		})
	if err != nil {
		return fmt.Errorf("notification: read %d recipients: %w", len(args), err)
	}
	for _, r := range found {
		c[r.UserID] = r
	}
	return nil
}

// recipientCache is the recipients tx read or wrote, by user id (nil:
// none), so that a batch of events reads them in one query (sqldb.Cache).
func recipientCache(tx *sqldb.Tx) map[string]*recipient {
	return sqldb.Cache[string, *recipient](tx, recipientsKey{})
}

type recipientsKey struct{}

// copy returns a copy of r (nil for nil), which its caller may change.
func (r *recipient) copy() *recipient {
	if r == nil {
		return nil
	}
	c := *r
	return &c
}

// putRecipient inserts or replaces a user's address.
func (s *store) putRecipient(ctx context.Context, tx *sqldb.Tx, r *recipient, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO recipients (user_id, email, name, status, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, name = excluded.name, status = excluded.status, updated_at = excluded.updated_at`,
		r.UserID, r.Email, r.Name, r.Status, now.UnixMilli())
	if err != nil {
		return fmt.Errorf("notification: store recipient %s: %w", r.UserID, err)
	}
	recipientCache(tx)[r.UserID] = r.copy()
	return nil
}

const notificationColumns = `id, user_id, channel, template, recipient, subject, body, subject_type, subject_id, status, attempts, error, event_id, created_at`

type notificationsKey struct{}

// notificationRows is tx's buffer of notifications, inserted with one
// statement before it commits.
func notificationRows(tx *sqldb.Tx) *sqldb.Rows {
	return tx.Pending(notificationsKey{}, func() sqldb.Pending {
		return sqldb.NewRows(`INSERT INTO notifications (`+notificationColumns+`) VALUES`, 14, "")
	}).(*sqldb.Rows)
}

// insert stores n in the mailbox: buffered, with the transaction's others
// (notificationRows). Nothing reads the mailbox in a transaction but
// eraseMessages, which writes them first.
func (s *store) insert(_ context.Context, tx *sqldb.Tx, n *Notification) error {
	notificationRows(tx).Add(n.ID, n.UserID, n.Channel, n.Template, n.Recipient, n.Subject, n.Body, n.SubjectType, n.SubjectID,
		n.Status, n.Attempts, n.Error, n.EventID, n.CreatedAt.UnixMilli())
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
