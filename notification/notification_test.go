package notification_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/settings"
	"github.com/eventmart/eventmart/notification"
)

func start(t *testing.T, settings map[string]string) *apptest.Harness {
	return apptest.Start(t, []service.Def{notification.Def()}, apptest.Settings(settings))
}

var origin = event.FromRequest("corr-1", event.Metadata{})

// registerUser publishes a user's UserRegistered, as the user service would.
func registerUser(h *apptest.Harness, id, email, name string) *event.Envelope {
	h.T.Helper()
	return h.Publish("user-service", origin, &event.UserRegistered{UserID: id, Email: event.Plain(email), Name: event.Plain(name), Role: "customer"})[0]
}

// sentFor matches a NotificationSent or NotificationFailed of a template
// for a user.
func sentFor(t *testing.T, userID, template string) func(*event.Envelope) bool {
	return func(e *event.Envelope) bool {
		if e.Key != userID {
			return false
		}
		p, err := e.Payload()
		if err != nil {
			t.Error(err)
			return false
		}
		switch p := p.(type) {
		case *event.NotificationSent:
			return p.Template == template
		case *event.NotificationFailed:
			return p.Template == template
		}
		return false
	}
}

func payload[T event.Payload](t *testing.T, e *event.Envelope) T {
	t.Helper()
	p, err := e.Payload()
	if err != nil {
		t.Fatal(err)
	}
	return p.(T)
}

type listBody struct {
	Notifications []notification.Notification
	Limit, Offset int
}

// list returns GET /notifications with query q as token's holder sees it.
func list(h *apptest.Harness, token, q string) []notification.Notification {
	h.T.Helper()
	var b listBody
	h.JSON("GET", "/api/v1/notifications"+q, token, nil, http.StatusOK, &b)
	return b.Notifications
}

func TestWelcomeOnUserRegistered(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	reg := registerUser(h, "u-ann", "ann@example.com", "Ann")
	e := h.Events.Wait(t, "NotificationSent", sentFor(t, "u-ann", "welcome"))
	p := payload[*event.NotificationSent](t, e)
	if p.Recipient.Clear != "ann@example.com" || p.Channel != "email" || p.Subject != (event.Subject{Type: "user", ID: "u-ann"}) || p.NotificationID == "" {
		t.Errorf("NotificationSent %+v", p)
	}
	if e.Source != "notification-service" || e.CorrelationID != "corr-1" || e.CausationID != reg.EventID {
		t.Errorf("envelope source %s correlation %s causation %s", e.Source, e.CorrelationID, e.CausationID)
	}
	ns := list(h, h.Token("u-ann", "customer"), "")
	if len(ns) != 1 {
		t.Fatalf("%d notifications, want 1", len(ns))
	}
	n := ns[0]
	if n.ID != p.NotificationID || n.UserID != "u-ann" || n.Template != "welcome" || n.Recipient != "ann@example.com" || n.Channel != "email" ||
		n.Status != "sent" || n.Attempts != 1 || n.Error != "" || n.SubjectType != "user" || n.SubjectID != "u-ann" || n.CreatedAt.IsZero() {
		t.Errorf("notification %+v", n)
	}
	if !strings.Contains(n.Subject, "Welcome") || !strings.Contains(n.Body, "Hello Ann,") || !strings.Contains(n.Body, "ann@example.com") {
		t.Errorf("subject %q body %q", n.Subject, n.Body)
	}
}

func TestProfileUpdatedGoesToTheAddressBeforeTheChange(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	registerUser(h, "u-bob", "bob@example.com", "Bob")
	h.Publish("user-service", origin, &event.UserUpdated{UserID: "u-bob", Email: event.Plain("robert@example.com"), Name: event.Plain("Robert"), Changed: []string{"name", "email"}})
	e := h.Events.Wait(t, "NotificationSent", sentFor(t, "u-bob", "profile-updated"))
	if p := payload[*event.NotificationSent](t, e); p.Recipient.Clear != "bob@example.com" {
		t.Errorf("sent to %s, want the old address", p.Recipient.Clear)
	}
	// The next message goes to the new address.
	h.Publish("user-service", origin, &event.UserUpdated{UserID: "u-bob", Email: event.Plain("robert@example.com"), Name: event.Plain("Robert"), Changed: []string{"password"}})
	h.Events.Wait(t, "NotificationSent", func(e *event.Envelope) bool {
		return sentFor(t, "u-bob", "profile-updated")(e) && payload[*event.NotificationSent](t, e).Recipient.Clear == "robert@example.com"
	})
	ns := list(h, h.Token("u-bob", "customer"), "?template=profile-updated")
	if len(ns) != 2 {
		t.Fatalf("%d profile-updated notifications, want 2", len(ns))
	}
	// Newest first.
	if !strings.Contains(ns[0].Body, "changed: password.") || ns[0].Recipient != "robert@example.com" {
		t.Errorf("second notice %+v", ns[0])
	}
	if b := ns[1].Body; !strings.Contains(b, "Hello Robert,") || !strings.Contains(b, "changed: name, email.") || !strings.Contains(b, "now robert@example.com") {
		t.Errorf("first notice body %q", b)
	}
}

func TestAccountDeactivated(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	registerUser(h, "u-cat", "cat@example.com", "Cat")
	h.Publish("user-service", origin, &event.UserDeactivated{UserID: "u-cat"})
	e := h.Events.Wait(t, "NotificationSent", sentFor(t, "u-cat", "account-deactivated"))
	if p := payload[*event.NotificationSent](t, e); p.Recipient.Clear != "cat@example.com" || p.Subject.Type != "user" {
		t.Errorf("NotificationSent %+v", p)
	}
	ns := list(h, h.Token("u-cat", "customer"), "?template=account-deactivated")
	if len(ns) != 1 || !strings.Contains(ns[0].Body, "deactivated") {
		t.Errorf("notifications %+v", ns)
	}
}

// A registration of an address that has an account answers as any other
// (issue #16, finding 6): the holder is told instead.
func TestAccountExistsOnRegistrationRepeated(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	registerUser(h, "u-eel", "eel@example.com", "Eel")
	h.Publish("user-service", origin, &event.RegistrationRepeated{UserID: "u-eel"})
	e := h.Events.Wait(t, "NotificationSent", sentFor(t, "u-eel", "account-exists"))
	if p := payload[*event.NotificationSent](t, e); p.Recipient.Clear != "eel@example.com" {
		t.Errorf("NotificationSent %+v", p)
	}
	ns := list(h, h.Token("u-eel", "customer"), "?template=account-exists")
	if len(ns) != 1 || !strings.Contains(ns[0].Body, "already has one") {
		t.Errorf("notifications %+v", ns)
	}
}

func TestOrderShippedAndCancelled(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	registerUser(h, "u-dan", "dan@example.com", "Dan")
	h.Publish("order-service", origin, &event.OrderShipped{OrderID: "o1", UserID: "u-dan", ShipmentID: "s1", TrackingNumber: "TRK-123"})
	h.Publish("order-service", origin, &event.OrderCancelled{OrderID: "o2", UserID: "u-dan", ReasonCode: "payment-failed", Reason: "the card was declined."})

	e := h.Events.Wait(t, "NotificationSent", sentFor(t, "u-dan", "order-shipped"))
	if p := payload[*event.NotificationSent](t, e); p.Subject != (event.Subject{Type: "order", ID: "o1"}) || p.Recipient.Clear != "dan@example.com" {
		t.Errorf("order-shipped %+v", p)
	}
	e = h.Events.Wait(t, "NotificationSent", sentFor(t, "u-dan", "order-cancelled"))
	if p := payload[*event.NotificationSent](t, e); p.Subject != (event.Subject{Type: "order", ID: "o2"}) {
		t.Errorf("order-cancelled %+v", p)
	}
	tok := h.Token("u-dan", "customer")
	shipped := list(h, tok, "?subjectId=o1")
	if len(shipped) != 1 || shipped[0].SubjectType != "order" || !strings.Contains(shipped[0].Subject, "o1") ||
		!strings.Contains(shipped[0].Body, "TRK-123") || !strings.Contains(shipped[0].Body, "has shipped") {
		t.Errorf("order-shipped notification %+v", shipped)
	}
	cancelled := list(h, tok, "?subjectId=o2")
	if len(cancelled) != 1 || !strings.Contains(cancelled[0].Body, "cancelled: the card was declined.\n") {
		t.Errorf("order-cancelled notification %+v", cancelled)
	}
}

// The order event may arrive before the user's: the batch is retried
// until the recipient is known.
func TestOrderEventBeforeUserEvent(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	h.Publish("order-service", origin, &event.OrderShipped{OrderID: "o1", UserID: "u-eve", ShipmentID: "s1", TrackingNumber: "T1"})
	registerUser(h, "u-eve", "eve@example.com", "Eve")
	e := h.Events.Wait(t, "NotificationSent", sentFor(t, "u-eve", "order-shipped"))
	if p := payload[*event.NotificationSent](t, e); p.Recipient.Clear != "eve@example.com" {
		t.Errorf("order-shipped %+v", p)
	}
	if n := len(h.Events.All(func(e *event.Envelope) bool { return e.EventType == "NotificationFailed" })); n != 0 {
		t.Errorf("%d NotificationFailed", n)
	}
}

// Past RecipientWait a message for an unknown user fails for good.
func TestUnknownRecipientFailsOnceTheWaitIsOver(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	e, err := event.New("order-service", origin, &event.OrderShipped{OrderID: "o9", UserID: "u-ghost", ShipmentID: "s9", TrackingNumber: "T9"})
	if err != nil {
		t.Fatal(err)
	}
	e.Timestamp = time.Now().Add(-notification.RecipientWait - time.Minute).UTC()
	publish(t, h, e)
	failed := h.Events.Wait(t, "NotificationFailed", sentFor(t, "u-ghost", "order-shipped"))
	p := payload[*event.NotificationFailed](t, failed)
	if p.Reason != "unknown recipient" || p.Attempts != 0 || p.Recipient.Clear != "" || p.Subject != (event.Subject{Type: "order", ID: "o9"}) {
		t.Errorf("NotificationFailed %+v", p)
	}
	ns := list(h, h.Token("admin-1", "admin"), "?userId=u-ghost")
	if len(ns) != 1 || ns[0].Status != "failed" || ns[0].Error != "unknown recipient" {
		t.Errorf("notifications %+v", ns)
	}
}

func TestFailureInjection(t *testing.T) {
	t.Parallel()
	h := start(t, map[string]string{"EVENTMART_NOTIFY_FAIL_TEMPLATES": " order-shipped ,order-cancelled"})
	registerUser(h, "u-fay", "fay@example.com", "Fay")
	h.Publish("order-service", origin, &event.OrderShipped{OrderID: "o1", UserID: "u-fay", ShipmentID: "s1", TrackingNumber: "T1"})
	h.Events.Wait(t, "NotificationSent", sentFor(t, "u-fay", "welcome")) // other templates still go out
	e := h.Events.Wait(t, "NotificationFailed", sentFor(t, "u-fay", "order-shipped"))
	p := payload[*event.NotificationFailed](t, e)
	if p.Attempts != 3 || !strings.Contains(p.Reason, "EVENTMART_NOTIFY_FAIL_TEMPLATES") || p.Recipient.Clear != "fay@example.com" || p.Subject.ID != "o1" {
		t.Errorf("NotificationFailed %+v", p)
	}
	ns := list(h, h.Token("u-fay", "customer"), "?template=order-shipped")
	if len(ns) != 1 || ns[0].Status != "failed" || ns[0].Attempts != 3 || ns[0].Error != p.Reason || !strings.Contains(ns[0].Body, "T1") {
		t.Errorf("notifications %+v", ns)
	}
}

// flaky fails the first n sends, then records what it sends.
type flaky struct {
	mu   sync.Mutex
	n    int
	sent []notification.Message
}

func (f *flaky) Send(ctx context.Context, m notification.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n > 0 {
		f.n--
		return errors.New("mail server busy")
	}
	f.sent = append(f.sent, m)
	return nil
}

func TestSendIsRetried(t *testing.T) {
	t.Parallel()
	sender := &flaky{n: 2}
	h := apptest.Start(t, []service.Def{notification.DefWith(sender)})
	registerUser(h, "u-gus", "gus@example.com", "Gus")
	h.Events.Wait(t, "NotificationSent", sentFor(t, "u-gus", "welcome"))
	ns := list(h, h.Token("u-gus", "customer"), "")
	if len(ns) != 1 || ns[0].Attempts != 3 || ns[0].Status != "sent" {
		t.Errorf("notifications %+v", ns)
	}
	sender.mu.Lock()
	defer sender.mu.Unlock()
	if len(sender.sent) != 1 || sender.sent[0].To != "gus@example.com" || sender.sent[0].Subject != ns[0].Subject || sender.sent[0].Body != ns[0].Body {
		t.Errorf("sent %+v", sender.sent)
	}
}

// publish puts one envelope on the bus.
func publish(t *testing.T, h *apptest.Harness, e *event.Envelope) {
	t.Helper()
	m, err := eventmsg.Encode(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Bus.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

func TestDuplicateDeliverySendsOnce(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	e, err := event.New("user-service", origin, &event.UserRegistered{UserID: "u-hal", Email: event.Plain("hal@example.com"), Name: event.Plain("Hal"), Role: "customer"})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, h, e)
	h.Events.Wait(t, "NotificationSent", sentFor(t, "u-hal", "welcome"))
	publish(t, h, e)
	// A later event of the same user is handled after the duplicate, and
	// its notification is emitted after anything the duplicate caused.
	h.Publish("user-service", origin, &event.UserDeactivated{UserID: "u-hal"})
	h.Events.Wait(t, "NotificationSent", sentFor(t, "u-hal", "account-deactivated"))
	if n := len(h.Events.All(sentFor(t, "u-hal", "welcome"))); n != 1 {
		t.Errorf("%d welcome notifications emitted, want 1", n)
	}
	if ns := list(h, h.Token("u-hal", "customer"), ""); len(ns) != 2 {
		t.Errorf("%d notifications stored, want 2", len(ns))
	}
}

func TestListAuthorization(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	registerUser(h, "u-ann", "ann@example.com", "Ann")
	registerUser(h, "u-bob", "bob@example.com", "Bob")
	h.Publish("order-service", origin, &event.OrderCancelled{OrderID: "o1", UserID: "u-ann", ReasonCode: "timeout"})
	h.Events.Wait(t, "NotificationSent", sentFor(t, "u-ann", "order-cancelled"))
	h.Events.Wait(t, "NotificationSent", sentFor(t, "u-bob", "welcome"))
	ann, admin := h.Token("u-ann", "customer"), h.Token("admin-1", "admin")

	for _, c := range []struct {
		name, path, token string
		status            int
		code, msg         string
	}{
		{"anonymous", "/api/v1/notifications", "", 401, "unauthorized", "authentication required"},
		{"another customer's", "/api/v1/notifications?userId=u-bob", ann, 403, "forbidden", "only their own"},
		{"bad limit", "/api/v1/notifications?limit=501", ann, 400, "invalid", "limit"},
		{"bad offset", "/api/v1/notifications?offset=x", admin, 400, "invalid", "offset"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, _, b := h.Do("GET", c.path, c.token, nil)
			var eb httpx.ErrorBody
			json.Unmarshal(b, &eb)
			if status != c.status || eb.Error.Code != c.code || !strings.Contains(eb.Error.Message, c.msg) {
				t.Errorf("got %d %s, want %d %s containing %q", status, b, c.status, c.code, c.msg)
			}
		})
	}

	mine := list(h, ann, "")
	if len(mine) != 2 || mine[0].Template != "order-cancelled" || mine[1].Template != "welcome" {
		t.Errorf("ann's notifications, newest first: %+v", mine)
	}
	if !strings.Contains(mine[0].Body, "cancelled: timeout.") {
		t.Errorf("reason code stands in for a missing reason: %q", mine[0].Body)
	}
	if same := list(h, ann, "?userId=u-ann"); len(same) != 2 {
		t.Errorf("userId=self: %d", len(same))
	}
	if all := list(h, admin, ""); len(all) != 3 {
		t.Errorf("admin sees %d, want 3", len(all))
	}
	bobs := list(h, admin, "?userId=u-bob")
	if len(bobs) != 1 || bobs[0].UserID != "u-bob" {
		t.Errorf("admin's userId filter: %+v", bobs)
	}
	var page listBody
	h.JSON("GET", "/api/v1/notifications?limit=1&offset=1", ann, nil, http.StatusOK, &page)
	if len(page.Notifications) != 1 || page.Notifications[0].Template != "welcome" || page.Limit != 1 || page.Offset != 1 {
		t.Errorf("page %+v", page)
	}
}

func TestNewRejectsBadSettings(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		settings map[string]string
		msg      string
	}{
		{map[string]string{"EVENTMART_NOTIFY_FAIL_TEMPLATES": "order-shiped"}, `unknown template "order-shiped"`},
		{map[string]string{"EVENTMART_SMTP_ADDR": "mail.example.com"}, "EVENTMART_SMTP_ADDR must be host:port"},
		{map[string]string{"EVENTMART_SMTP_ADDR": "mail:25", "EVENTMART_SMTP_FROM": "Shop <shop@example.com>"}, "EVENTMART_SMTP_FROM"},
	} {
		vals, err := settings.Parse(func(k string) string { return c.settings[k] })
		if err == nil {
			_, err = notification.New(service.Deps{Settings: vals})
		}
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%v: err %v, want %q", c.settings, err, c.msg)
		}
	}
}

// fakeSMTP is a minimal SMTP server; every message it accepts (envelope
// commands, then the data) is sent on the returned channel.
func fakeSMTP(t *testing.T) (string, <-chan string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan string, 10)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go serveSMTP(conn, got)
		}
	}()
	return ln.Addr().String(), got
}

func serveSMTP(conn net.Conn, got chan<- string) {
	defer conn.Close()
	c := textproto.NewConn(conn)
	c.PrintfLine("220 fake ESMTP")
	var msg strings.Builder
	for {
		line, err := c.ReadLine()
		if err != nil {
			return
		}
		switch cmd := strings.ToUpper(line); {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			c.PrintfLine("250 fake")
		case strings.HasPrefix(cmd, "MAIL FROM:"), strings.HasPrefix(cmd, "RCPT TO:"):
			msg.WriteString(line + "\n")
			c.PrintfLine("250 ok")
		case cmd == "DATA":
			c.PrintfLine("354 go ahead")
			b, err := c.ReadDotBytes()
			if err != nil {
				return
			}
			msg.Write(b)
			c.PrintfLine("250 queued")
			got <- msg.String()
		case cmd == "QUIT":
			c.PrintfLine("221 bye")
			return
		default:
			c.PrintfLine("502 not implemented")
		}
	}
}

func TestSMTPSender(t *testing.T) {
	t.Parallel()
	addr, got := fakeSMTP(t)
	h := start(t, map[string]string{"EVENTMART_SMTP_ADDR": addr, "EVENTMART_SMTP_FROM": "shop@example.com"})
	h.Publish("user-service", origin, &event.UserRegistered{UserID: "u-ida", Email: event.Plain("ida@example.com"), Name: event.Plain("Ida Ümlaut"), Role: "customer"})
	h.Events.Wait(t, "NotificationSent", sentFor(t, "u-ida", "welcome"))
	var msg string
	select {
	case msg = <-got:
	case <-time.After(apptest.Timeout):
		t.Fatal("no message reached the SMTP server")
	}
	for _, want := range []string{
		"MAIL FROM:<shop@example.com>", "RCPT TO:<ida@example.com>",
		"From: <shop@example.com>\n", "To: <ida@example.com>\n", "Subject: =?utf-8?q?Welcome_to_Eventmart,_Ida_=C3=9Cmlaut?=\n",
		"Content-Type: text/plain; charset=utf-8\n", "\n\nHello Ida Ümlaut,\n",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if lines := strings.Split(msg, "\n"); !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "Date: ") }) {
		t.Errorf("no Date header:\n%s", msg)
	}
}

// An erasure erases every message of its user, also one made in the same
// transaction before it (the mailbox rows of a batch are inserted
// together before it commits: the erasure writes them first). The two
// events come on one topic, so they are often in one batch; each run
// checks, whatever the batching.
func TestErasureErasesMessagesOfItsBatch(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	for _, id := range []string{"u-e1", "u-e2", "u-e3"} {
		h.Publish("user-service", origin,
			&event.UserRegistered{UserID: id, Email: event.Plain(id + "@example.com"), Name: event.Plain("Eve"), Role: "customer"},
			&event.PersonalDataErased{UserID: id, ErasedAt: time.Now().UTC()})
	}
	admin := h.Token("admin-1", "admin")
	for _, id := range []string{"u-e1", "u-e2", "u-e3"} {
		h.Events.Wait(t, "NotificationSent", sentFor(t, id, notification.TemplateWelcome))
		h.Eventually("the welcome of "+id+" erased", func() bool {
			ns := list(h, admin, "?userId="+id)
			return len(ns) == 1 && ns[0].Recipient == "" && ns[0].Subject == "" && ns[0].Body == ""
		})
	}
}
