// Package notification is the notification service: it tells customers by
// email about their account and their orders.
//
// It keeps the recipients it learns from user-events (UserRegistered,
// UserUpdated, UserDeactivated) and sends one message per triggering event:
//
//	UserRegistered   → "welcome"
//	UserUpdated      → "profile-updated" (to the address held before the change)
//	UserDeactivated  → "account-deactivated"
//	RegistrationRepeated → "account-exists" (someone registered the address again)
//	OrderShipped     → "order-shipped" (the tracking number)
//	OrderCancelled   → "order-cancelled" (the reason)
//
// The email and name in user events are sealed with the user's key
// (event.Personal); the service opens them with Deps.Keys. On
// PersonalDataErased it deletes its clear copies: the recipient's address
// and name, and the address, subject and body of the user's messages; a
// later message to the user fails with reason "personal data erased".
//
// Every message is stored in the notifications table, the service's
// mailbox, in the same transaction as the outbox event that reports it
// (NotificationSent, or NotificationFailed after three attempts) on
// notification-events keyed by the user id. A failed message never fails
// the handler.
//
// A message for a user whose user event has not arrived yet (user-events and
// the order topics are consumed independently) is retried as a transient
// error while the triggering event is younger than RecipientWait, and then
// reported as NotificationFailed with reason "unknown recipient".
//
// Settings:
//   - EVENTMART_SMTP_ADDR (host:port): send through this SMTP server
//     instead of only the mailbox; unset (the default), messages go to the
//     mailbox only and are logged at debug.
//   - EVENTMART_SMTP_FROM: the sender address; default "eventmart@localhost".
//   - EVENTMART_SMTP_USERNAME, EVENTMART_SMTP_PASSWORD: PLAIN authentication
//     (only over TLS or to localhost); unset, no authentication.
//   - EVENTMART_NOTIFY_FAIL_TEMPLATES: comma-separated templates (such as
//     "order-shipped") whose sending always fails: failure injection for
//     tests and drills. Default empty.
package notification

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/settings"
	"github.com/eventmart/eventmart/internal/sqldb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Name is the service name.
const Name = "notification"

// Def describes the notification service to the runtime; it sends as the
// settings say (see the package documentation).
func Def() service.Def { return DefWith(nil) }

// DefWith is Def with a sender of one's own in place of the one the
// settings choose; nil means the settings' choice.
func DefWith(sender Sender) service.Def {
	sub, _ := fs.Sub(migrations, "migrations")
	return service.Def{Name: Name, Migrations: sub, Linger: settings.NotificationLinger, New: func(d service.Deps) (service.Service, error) {
		s, err := NewWithSender(d, sender)
		if err != nil {
			return nil, err // not a nil *Service inside a non-nil interface
		}
		return s, nil
	}}
}

// Templates: the kinds of message sent.
const (
	TemplateWelcome            = "welcome"
	TemplateProfileUpdated     = "profile-updated"
	TemplateAccountDeactivated = "account-deactivated"
	TemplateAccountExists      = "account-exists"
	TemplateOrderShipped       = "order-shipped"
	TemplateOrderCancelled     = "order-cancelled"
)

// Templates lists every template.
var Templates = []string{TemplateWelcome, TemplateProfileUpdated, TemplateAccountDeactivated, TemplateAccountExists, TemplateOrderShipped, TemplateOrderCancelled}

// Channels and statuses of a notification.
const (
	ChannelEmail = "email"

	StatusSent   = "sent"
	StatusFailed = "failed"
)

// MaxAttempts is how often a message is tried before NotificationFailed.
const MaxAttempts = 3

// sendBackoff are the waits between attempts. Retries happen inside the
// event handler, so they are few and short: a longer outage is the
// sender's business (an SMTP relay queues), and a failed message must not
// hold up the partition.
var sendBackoff = [MaxAttempts - 1]time.Duration{10 * time.Millisecond, 50 * time.Millisecond}

// RecipientWait is how long after its triggering event a message for a
// not yet known user is retried (as a transient handler error, which makes
// the bus redeliver the batch) before it fails with "unknown recipient".
const RecipientWait = 30 * time.Second

// ReasonUnknownRecipient is NotificationFailed's reason when no user event
// named the recipient's address within RecipientWait.
const ReasonUnknownRecipient = "unknown recipient"

// ReasonErasedRecipient is NotificationFailed's reason when the user's
// personal data was erased (PersonalDataErased): there is no address.
const ReasonErasedRecipient = "personal data erased"

// Notification is one message, sent or failed: a row of the mailbox.
type Notification struct {
	ID          string    `json:"id"`
	UserID      string    `json:"userId"`
	Channel     string    `json:"channel"`
	Template    string    `json:"template"`
	Recipient   string    `json:"recipient"`
	Subject     string    `json:"subject"`
	Body        string    `json:"body"`
	SubjectType string    `json:"subjectType"` // what it is about: "user" or "order"
	SubjectID   string    `json:"subjectId"`
	Status      string    `json:"status"`
	Attempts    int       `json:"attempts"`
	Error       string    `json:"error"`
	CreatedAt   time.Time `json:"createdAt"`
	EventID     string    `json:"-"` // the triggering event
}

// Service is the notification service.
type Service struct {
	d         service.Deps
	store     *store
	sender    Sender
	templates *templates
	// failing holds the templates EVENTMART_NOTIFY_FAIL_TEMPLATES switches off.
	failing map[string]bool
}

// New returns the notification service with the sender the settings choose.
func New(d service.Deps) (*Service, error) { return NewWithSender(d, nil) }

// NewWithSender returns the notification service sending through sender,
// or through the one the settings choose if sender is nil. It fails on
// invalid settings (an unknown template to fail, a bad sender address).
func NewWithSender(d service.Deps, sender Sender) (*Service, error) {
	tmpl, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	failing := map[string]bool{}
	for _, t := range d.Settings.List(settings.NotifyFailTemplates) {
		if !slices.Contains(Templates, t) {
			return nil, fmt.Errorf("notification: EVENTMART_NOTIFY_FAIL_TEMPLATES: unknown template %q (templates: %s)", t, strings.Join(Templates, ", "))
		}
		failing[t] = true
	}
	if sender == nil {
		if sender, err = senderFromSettings(d); err != nil {
			return nil, err
		}
	}
	return &Service{d: d, store: &store{db: d.DB}, sender: sender, templates: tmpl, failing: failing}, nil
}

// Run has no background work.
func (s *Service) Run(ctx context.Context) error { return nil }

// Prepare reads, before a batch of events is applied, the recipients of
// its order messages in one query (inbox.Preparer): the handlers find them
// in the transaction's cache.
func (s *Service) Prepare(ctx context.Context, tx *sqldb.Tx, batch []inbox.Event) error {
	var users []string
	for _, e := range batch {
		switch p := e.Payload.(type) {
		case *event.OrderShipped:
			users = append(users, p.UserID)
		case *event.OrderCancelled:
			users = append(users, p.UserID)
		}
	}
	if len(users) == 0 {
		return nil
	}
	return s.store.loadRecipients(ctx, tx, users)
}

// Handlers: user events keep the recipients and send account messages;
// an order shipped or cancelled sends an order message.
func (s *Service) Handlers() []inbox.Handler {
	return []inbox.Handler{
		inbox.On(s.onUserRegistered),
		inbox.On(s.onUserUpdated),
		inbox.On(s.onPersonalDataErased),
		inbox.On(s.onUserDeactivated),
		inbox.On(s.onRegistrationRepeated),
		inbox.On(s.onOrderShipped),
		inbox.On(s.onOrderCancelled),
	}
}
