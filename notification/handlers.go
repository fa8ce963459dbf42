package notification

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

func (s *Service) onUserRegistered(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, u *event.UserRegistered) error {
	r, err := s.openRecipient(ctx, u.UserID, u.Email, u.Name)
	if err != nil {
		return err
	}
	if err := s.store.putRecipient(ctx, tx, r, s.d.Now()); err != nil {
		return err
	}
	return s.notify(ctx, tx, e, r, message{template: TemplateWelcome, userID: u.UserID, subject: userSubject(u.UserID)})
}

// onUserUpdated records the new address and tells the address held
// before the change: if someone else changed the email, the owner still
// hears of it.
func (s *Service) onUserUpdated(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, u *event.UserUpdated) error {
	prev, err := s.store.recipient(ctx, tx, u.UserID)
	if err != nil {
		return err
	}
	// UserUpdated carries the full email and name, so it also introduces a
	// user whose UserRegistered this service never saw.
	r, err := s.openRecipient(ctx, u.UserID, u.Email, u.Name)
	if err != nil {
		return err
	}
	if prev != nil && prev.Status == recipientErased {
		return nil // an update from before the erasure, read after it
	}
	to := *r
	if prev != nil {
		r.Status = prev.Status
		to.Email = prev.Email
	}
	if err := s.store.putRecipient(ctx, tx, r, s.d.Now()); err != nil {
		return err
	}
	v := view{Changed: u.Changed}
	if slices.Contains(u.Changed, "email") {
		v.NewEmail = r.Email
	}
	return s.notify(ctx, tx, e, &to, message{template: TemplateProfileUpdated, userID: u.UserID, subject: userSubject(u.UserID), view: v})
}

func (s *Service) onUserDeactivated(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, u *event.UserDeactivated) error {
	r, err := s.store.recipient(ctx, tx, u.UserID)
	if err != nil {
		return err
	}
	m := message{template: TemplateAccountDeactivated, userID: u.UserID, subject: userSubject(u.UserID)}
	if r != nil && r.Status != recipientErased {
		r.Status = recipientDeactivated
		if err := s.store.putRecipient(ctx, tx, r, s.d.Now()); err != nil {
			return err
		}
	}
	return s.notify(ctx, tx, e, r, m)
}

// openRecipient opens a user event's sealed email and name.
func (s *Service) openRecipient(ctx context.Context, userID string, email, name event.Personal) (*recipient, error) {
	r := &recipient{UserID: userID, Status: recipientActive}
	var err error
	if r.Email, err = email.Open(ctx, s.d.Keys); err != nil {
		return nil, err
	}
	if r.Name, err = name.Open(ctx, s.d.Keys); err != nil {
		return nil, err
	}
	if r.Email == event.Erased || r.Name == event.Erased {
		// An event read again after the user's erasure (a replay).
		r.Email, r.Name, r.Status = "", "", recipientErased
	}
	return r, nil
}

// onPersonalDataErased deletes the user's clear copies: the recipient's
// address and name (the row stays, marked erased, so that later messages
// fail at once instead of waiting for a user event) and the user's
// messages in the mailbox (their subject, body and address).
func (s *Service) onPersonalDataErased(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p *event.PersonalDataErased) error {
	if f, ok := s.d.Keys.(interface{ Forget(userID string) }); ok {
		f.Forget(p.UserID) // the process's cached key, if any
	}
	if err := s.store.putRecipient(ctx, tx, &recipient{UserID: p.UserID, Status: recipientErased}, s.d.Now()); err != nil {
		return err
	}
	return s.store.eraseMessages(ctx, tx, p.UserID)
}

// onRegistrationRepeated tells an account holder that someone tried to
// register their address: the registration itself answered as for a new
// address, so that it does not reveal which addresses have accounts.
func (s *Service) onRegistrationRepeated(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, u *event.RegistrationRepeated) error {
	r, err := s.store.recipient(ctx, tx, u.UserID)
	if err != nil {
		return err
	}
	return s.notify(ctx, tx, e, r, message{template: TemplateAccountExists, userID: u.UserID, subject: userSubject(u.UserID)})
}

// onOrderShipped tells the customer their order is on its way. It follows
// OrderShipped, not the shipping label (ShippingCreated): an order is final
// once SHIPPED, so this message is never followed by "was cancelled"
// (docs/saga.md, "Notifications"). Like every transactional message it
// goes to deactivated accounts too: it is about something they did.
func (s *Service) onOrderShipped(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, o *event.OrderShipped) error {
	r, err := s.store.recipient(ctx, tx, o.UserID)
	if err != nil {
		return err
	}
	v := view{OrderID: o.OrderID, TrackingNumber: o.TrackingNumber}
	return s.notify(ctx, tx, e, r, message{template: TemplateOrderShipped, userID: o.UserID, subject: orderSubject(o.OrderID), view: v})
}

func (s *Service) onOrderCancelled(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, oc *event.OrderCancelled) error {
	r, err := s.store.recipient(ctx, tx, oc.UserID)
	if err != nil {
		return err
	}
	reason := strings.TrimRight(strings.TrimSpace(oc.Reason), ".")
	if reason == "" {
		reason = cmp.Or(oc.ReasonCode, "no reason was given")
	}
	v := view{OrderID: oc.OrderID, Reason: reason}
	return s.notify(ctx, tx, e, r, message{template: TemplateOrderCancelled, userID: oc.UserID, subject: orderSubject(oc.OrderID), view: v})
}

// message is a notification to make.
type message struct {
	template string
	userID   string
	subject  event.Subject
	view     view
}

func userSubject(id string) event.Subject  { return event.Subject{Type: "user", ID: id} }
func orderSubject(id string) event.Subject { return event.Subject{Type: "order", ID: id} }

// notify renders m for r, sends it with retries, stores it in the mailbox
// and emits NotificationSent or NotificationFailed, all within tx. The
// inbox has already recorded e in tx, so a redelivered e sends nothing
// twice (with SMTP: unless this transaction fails after sending).
//
// It returns an error only when r is unknown and e is younger than
// RecipientWait (the user's event may still arrive on user-events; the bus
// redelivers the batch), or when the database or ctx fails. A failed
// send is a NotificationFailed, never an error: it must not hold up the
// partition or the order saga.
func (s *Service) notify(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, r *recipient, m message) error {
	n := &Notification{
		ID: event.NewID(), UserID: m.userID, Channel: ChannelEmail, Template: m.template,
		SubjectType: m.subject.Type, SubjectID: m.subject.ID, EventID: e.EventID, CreatedAt: s.d.Now().UTC(),
	}
	var sendErr error
	switch {
	case r == nil && m.userID != "" && s.d.Now().Sub(e.Timestamp) < RecipientWait:
		return fmt.Errorf("notification: recipient %s of %s not known yet; waiting for its user event", m.userID, m.template)
	case r == nil:
		sendErr = fmt.Errorf("%s", ReasonUnknownRecipient)
	case r.Status == recipientErased:
		sendErr = fmt.Errorf("%s", ReasonErasedRecipient)
	default:
		n.Recipient = r.Email
		m.view.Name, m.view.Email = r.Name, r.Email
		if n.Subject, n.Body, sendErr = s.templates.render(m.template, m.view); sendErr == nil {
			n.Attempts, sendErr = s.send(ctx, m.template, Message{To: n.Recipient, Subject: n.Subject, Body: n.Body})
			if ctx.Err() != nil {
				return ctx.Err() // shutting down mid-retry: leave it to the redelivery
			}
		}
	}
	n.Status = StatusSent
	to, err := s.sealRecipient(ctx, n.UserID, n.Recipient)
	if err != nil {
		return err
	}
	var out event.Payload = &event.NotificationSent{NotificationID: n.ID, UserID: n.UserID, Channel: n.Channel,
		Template: n.Template, Recipient: to, Subject: m.subject}
	if sendErr != nil {
		n.Status, n.Error = StatusFailed, sendErr.Error()
		out = &event.NotificationFailed{NotificationID: n.ID, UserID: n.UserID, Channel: n.Channel,
			Template: n.Template, Recipient: to, Subject: m.subject, Reason: n.Error, Attempts: n.Attempts}
		s.d.Log.WarnContext(ctx, "notification failed", "template", n.Template, "userId", n.UserID,
			"eventId", e.EventID, "correlationId", e.CorrelationID, "attempts", n.Attempts, "reason", n.Error)
	}
	if err := s.store.insert(ctx, tx, n); err != nil {
		return err
	}
	return outbox.Emit(ctx, tx, service.Source(Name), e.Origin(), out)
}

// sealRecipient seals the address a message went to with its user's key,
// for NotificationSent and NotificationFailed; no address (an unknown or
// erased recipient) stays empty, as does the address of a user whose key
// is destroyed meanwhile.
func (s *Service) sealRecipient(ctx context.Context, userID, addr string) (event.Personal, error) {
	if addr == "" || s.d.Keys == nil {
		return event.Plain(addr), nil
	}
	key, err := s.d.Keys.PersonalKey(ctx, userID)
	if errors.Is(err, event.ErrErased) {
		return event.Plain(""), nil
	}
	if err != nil {
		return event.Personal{}, err
	}
	return event.Seal(key, userID, addr)
}

// send tries a message up to MaxAttempts times with short backoffs and
// returns the number of attempts and the last error.
func (s *Service) send(ctx context.Context, template string, m Message) (int, error) {
	for attempt := 1; ; attempt++ {
		err := s.sendOnce(ctx, template, m)
		if err == nil || attempt == MaxAttempts {
			return attempt, err
		}
		t := time.NewTimer(sendBackoff[attempt-1])
		select {
		case <-ctx.Done():
			t.Stop()
			return attempt, ctx.Err()
		case <-t.C:
		}
	}
}

func (s *Service) sendOnce(ctx context.Context, template string, m Message) error {
	if s.failing[template] {
		return fmt.Errorf("sending %s messages is switched off by EVENTMART_NOTIFY_FAIL_TEMPLATES", template)
	}
	return s.sender.Send(ctx, m)
}
