// Package webhook is the webhook service: it delivers Eventmart's events
// to external systems (an ERP, a warehouse, a CRM) as signed HTTP
// requests, ADR-0006's "system integration events".
//
// Admins register endpoints (POST /api/v1/webhooks/endpoints): a URL, the
// event types wanted (none: every type) and a description; the answer
// shows the endpoint's secret (whsec_…) once. The service consumes every
// business topic (not audit-events) and, within the inbox transaction of
// each event, queues one delivery per matching enabled endpoint in its
// database: an event consumed is never lost to a crash, and a delivery
// repeated after one carries the same webhook-id.
//
// Each delivery is a POST of the event's envelope JSON, signed per
// Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>"; during a secret
// rotation's overlap, the old secret's signature too). The webhook-id is
// the same for every attempt and replay of an event to an endpoint:
// receivers use it to drop duplicates.
//
// Every endpoint has its own queue; up to EVENTMART_WEBHOOK_WORKERS
// endpoints are sent to at once, each one delivery at a time, so a slow
// or dead endpoint holds up only itself. An endpoint registered with
// "ordered" gets its deliveries strictly in queue order (so in order per
// aggregate), a failing one holding up the rest. An attempt that gets no 2xx
// within EVENTMART_WEBHOOK_TIMEOUT is retried after the waits of
// EVENTMART_WEBHOOK_RETRY_DELAYS (with jitter; a longer Retry-After of a
// 429 or 503 wins) and then marked failed. Redirects are not followed.
// An endpoint answering 410 Gone, or failing every attempt for
// EVENTMART_WEBHOOK_DISABLE_AFTER, is disabled and WebhookEndpointDisabled
// published; its deliveries wait until an admin enables it again. Every
// attempt is recorded (time, status, latency, the first ResponseBytes of
// the response).
//
// Deliveries reach only public addresses over https, checked when an
// endpoint is registered (the refusal explains why) and again when each
// connection is made (against DNS rebinding), unless EVENTMART_WEBHOOK_ALLOW
// names the network (plain http is allowed only there).
//
// Replay re-sends one delivery, or every matching event of a time range
// read from the audit trail (which keeps every event beyond the topics'
// retention), so it needs the audit service.
package webhook

import (
	"context"
	"embed"
	"io/fs"
	"net/http"
	"sync"
	"sync/atomic"
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
const Name = "webhook"

// Def describes the webhook service to the runtime.
func Def() service.Def {
	sub, _ := fs.Sub(migrations, "migrations")
	return service.Def{Name: Name, Migrations: sub, Linger: settings.WebhookLinger, New: func(d service.Deps) (service.Service, error) {
		s, err := New(d)
		if err != nil {
			return nil, err // not a nil *Service inside a non-nil interface
		}
		return s, nil
	}}
}

// ResponseBytes is how much of a response body an attempt records.
const ResponseBytes = 1024

// Service is the webhook service.
type Service struct {
	d      service.Deps
	store  *store
	guard  *guard
	client *http.Client

	delays       []time.Duration
	timeout      time.Duration
	disableAfter time.Duration
	workers      int

	// endpoints is every endpoint, as the consumer matches events
	// against them without a query per event; reload refreshes it after a
	// change here, and the consumer when it is older than reloadInterval,
	// for changes made by other instances.
	endpoints atomic.Pointer[[]*Endpoint]
	loadedAt  atomic.Int64 // Unix ms of the last reload
	reloadMu  sync.Mutex
	// wake tells the delivery loop deliveries were queued.
	wake    chan struct{}
	metrics *metrics
}

// New returns the webhook service; it fails on invalid settings.
func New(d service.Deps) (*Service, error) {
	g, err := newGuard(d.Settings.List(settings.WebhookAllow))
	if err != nil {
		return nil, err
	}
	s := &Service{
		d: d, store: &store{db: d.DB}, guard: g,
		delays:       d.Settings.Durations(settings.WebhookRetryDelays),
		timeout:      d.Settings.Duration(settings.WebhookTimeout),
		disableAfter: d.Settings.Duration(settings.WebhookDisableAfter),
		workers:      d.Settings.Int(settings.WebhookWorkers),
		wake:         make(chan struct{}, 1),
	}
	s.client = g.client(s.timeout)
	if err := s.reload(context.Background(), nil); err != nil {
		return nil, err
	}
	if s.metrics, err = newMetrics(d.Metrics, s); err != nil {
		return nil, err
	}
	return s, nil
}

// Handlers queues deliveries of every event type of the business topics.
// The list is built from event.Catalog(), so a type added to the catalog
// can be delivered without a change here; onEvent reads the envelope, not
// the payload.
func (s *Service) Handlers() []inbox.Handler {
	var hs []inbox.Handler
	for _, spec := range event.Catalog() {
		if deliverable(spec) {
			hs = append(hs, inbox.Handler{Type: spec.Type, Func: s.onEvent})
		}
	}
	return hs
}

// deliverable: the business events — not audit-events' security and
// trail records, nor user-events' session and sign-up-attempt records
// (they tell an integration nothing it needs, and would tell it who logs
// out and which e-mails someone tried to register).
func deliverable(spec event.Spec) bool {
	switch spec.Type {
	case (*event.SessionsRevoked)(nil).EventType(), (*event.RegistrationRepeated)(nil).EventType():
		return false
	}
	return spec.Topic != event.TopicAudit
}

// Wants tells the inbox, before it opens a transaction, whether an enabled
// endpoint wants e's type (inbox.Wanter): with none, onEvent would touch no
// table, so the event costs no transaction and no processed-event record.
// The endpoints are reloaded here when older than reloadInterval, as
// onEvent does, so an unwanted stream still sees other instances' changes;
// should that reload fail, e is wanted, and onEvent's reload within the
// transaction fails the batch as it would have.
//
// An event skipped here and redelivered (or replayed) is matched again:
// if an endpoint wanting its type was registered in between, it is
// queued for that endpoint then, as an event consumed after the
// registration is; nothing was queued for it before, so nothing twice.
func (s *Service) Wants(ctx context.Context, e *event.Envelope, _ event.Payload) bool {
	return s.WantsType(ctx, e.EventType)
}

// WantsType is Wants by the type alone (inbox.TypeWanter), asked before
// the record is decoded: the webhook service reads every topic, and with
// no endpoint subscribed to a type, decoding and validating its events was
// most of what the service spent.
func (s *Service) WantsType(ctx context.Context, t event.Type) bool {
	if s.stale() {
		if err := s.reload(ctx, nil); err != nil {
			return true
		}
	}
	return len(s.wanting(t)) > 0
}

// onEvent queues e for every enabled endpoint that wants its type, within
// the inbox transaction. With no such endpoint it touches no table (and
// Wants spares it the transaction).
func (s *Service) onEvent(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, _ event.Payload) error {
	if s.stale() {
		if err := s.reload(ctx, tx); err != nil {
			return err
		}
	}
	eps := s.wanting(e.EventType)
	if len(eps) == 0 {
		return nil
	}
	body, err := e.Marshal()
	if err != nil {
		return err
	}
	if err := s.store.enqueue(ctx, tx, e.EventID, string(e.EventType), e.Timestamp, body, eps, s.d.Now(), false); err != nil {
		return err
	}
	tx.OnCommit(s.nudge)
	return nil
}

// wanting returns the enabled endpoints of the consumer's cache that want
// events of type t (none: nil, nothing allocated).
func (s *Service) wanting(t event.Type) []*Endpoint {
	var eps []*Endpoint
	for _, ep := range *s.endpoints.Load() {
		if ep.Enabled && ep.wants(string(t)) {
			eps = append(eps, ep)
		}
	}
	return eps
}

// nudge wakes the delivery loop.
func (s *Service) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// reloadInterval is how old the consumer's endpoints may get: an
// endpoint registered, changed or deleted on another instance takes
// effect here within it.
const reloadInterval = 2 * time.Second

// stale reports whether the consumer's endpoints are older than
// reloadInterval.
func (s *Service) stale() bool {
	return s.d.Now().UnixMilli()-s.loadedAt.Load() >= reloadInterval.Milliseconds()
}

// reload reads every endpoint into the consumer's cache, through q (the
// database when nil).
func (s *Service) reload(ctx context.Context, q sqldb.Querier) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	now := s.d.Now()
	eps, err := s.store.endpoints(ctx, q, 0, 0)
	if err != nil {
		return err
	}
	s.endpoints.Store(&eps)
	s.loadedAt.Store(now.UnixMilli())
	return nil
}

// disableCached marks an endpoint disabled in the consumer's cache, ahead
// of the reload that follows the change's commit.
func (s *Service) disableCached(id string) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := *s.endpoints.Load()
	eps := make([]*Endpoint, len(old))
	for i, ep := range old {
		if ep.ID == id {
			c := *ep
			c.Enabled = false
			ep = &c
		}
		eps[i] = ep
	}
	s.endpoints.Store(&eps)
}
