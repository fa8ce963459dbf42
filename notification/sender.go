package notification

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/mail"
	"net/smtp"
	"strings"
	"time"

	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/settings"
)

// Message is one email to send.
type Message struct {
	To      string // a bare address
	Subject string // one line
	Body    string // plain text, lines ending in \n
}

// Sender delivers messages. Send must be safe for concurrent use and
// return an error if the message was not handed over; it is retried up to
// MaxAttempts times. It runs inside the event handler's transaction, so a
// message is sent again if that transaction then fails (at least once).
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// senderFromSettings returns the SMTP sender when EVENTMART_SMTP_ADDR is
// set, else the mailbox sender.
func senderFromSettings(d service.Deps) (Sender, error) {
	addr := d.Settings.String(settings.SMTPAddr)
	if addr == "" {
		return mailboxSender{log: d.Log}, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("notification: EVENTMART_SMTP_ADDR must be host:port: %w", err)
	}
	from := d.Settings.String(settings.SMTPFrom)
	if a, err := mail.ParseAddress(from); err != nil || a.Name != "" || a.Address != from {
		return nil, fmt.Errorf("notification: EVENTMART_SMTP_FROM must be a bare email address, got %q", from)
	}
	s := &smtpSender{addr: addr, host: host, from: from, timeout: smtpTimeout}
	if user := d.Settings.String(settings.SMTPUsername); user != "" {
		s.auth = smtp.PlainAuth("", user, d.Settings.String(settings.SMTPPassword), host)
	}
	return s, nil
}

// mailboxSender is the default sender: the notifications table is the
// mailbox, so sending only logs the message's envelope (not its body), at
// debug: one line per email would drown the rest of the log under load.
type mailboxSender struct{ log *slog.Logger }

func (m mailboxSender) Send(ctx context.Context, msg Message) error {
	if m.log != nil {
		m.log.DebugContext(ctx, "email delivered to the mailbox", "to", msg.To, "subject", msg.Subject)
	}
	return nil
}

// smtpTimeout bounds one SMTP delivery, connection included. The handler
// holds its transaction meanwhile, so it is short.
const smtpTimeout = 10 * time.Second

// smtpSender sends through an SMTP server with net/smtp, upgrading to TLS
// when the server offers STARTTLS.
type smtpSender struct {
	addr, host, from string
	auth             smtp.Auth // nil: none
	timeout          time.Duration
}

func (s *smtpSender) Send(ctx context.Context, m Message) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("notification: smtp: %w", err)
	}
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("notification: smtp: %w", err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: s.host}); err != nil {
			return fmt.Errorf("notification: smtp starttls: %w", err)
		}
	}
	if s.auth != nil {
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("notification: smtp: the server offers no AUTH but EVENTMART_SMTP_USERNAME is set")
		}
		if err := c.Auth(s.auth); err != nil {
			return fmt.Errorf("notification: smtp auth: %w", err)
		}
	}
	if err := c.Mail(s.from); err != nil {
		return fmt.Errorf("notification: smtp MAIL FROM: %w", err)
	}
	if err := c.Rcpt(m.To); err != nil {
		return fmt.Errorf("notification: smtp RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("notification: smtp DATA: %w", err)
	}
	if _, err := w.Write(compose(s.from, m, time.Now())); err != nil {
		return fmt.Errorf("notification: smtp DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("notification: smtp DATA: %w", err)
	}
	return c.Quit()
}

// compose returns the RFC 5322 text of m. Header values are encoded, so
// no line break from data can start a header of its own; the SMTP data
// writer turns \n into \r\n and escapes leading dots.
func compose(from string, m Message, now time.Time) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\n", (&mail.Address{Address: from}).String())
	fmt.Fprintf(&b, "To: %s\n", (&mail.Address{Address: m.To}).String())
	fmt.Fprintf(&b, "Subject: %s\n", mime.QEncoding.Encode("utf-8", m.Subject))
	fmt.Fprintf(&b, "Date: %s\n", now.Format(time.RFC1123Z))
	b.WriteString("MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n")
	b.WriteString(m.Body)
	return []byte(b.String())
}
