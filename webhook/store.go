package webhook

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/internal/sqldb"
)

type store struct{ db *sqldb.DB }

// Endpoint is a registered webhook receiver.
type Endpoint struct {
	ID             string    `json:"id"`
	URL            string    `json:"url"`
	Description    string    `json:"description"`
	EventTypes     []string  `json:"eventTypes"` // empty: every type
	Enabled        bool      `json:"enabled"`
	DisabledReason string    `json:"disabledReason,omitempty"`
	Ordered        bool      `json:"ordered"` // one delivery at a time, in order, a failed one blocking the rest
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
	// Secret is shown once, when created or rotated.
	Secret string `json:"secret,omitempty"`

	secret, prevSecret string
	prevSecretUntil    int64 // Unix ms
	failingSince       int64 // Unix ms, 0 when not failing
}

// wants reports whether the endpoint receives events of type t.
func (ep *Endpoint) wants(t string) bool {
	if len(ep.EventTypes) == 0 {
		return true
	}
	for _, et := range ep.EventTypes {
		if et == t {
			return true
		}
	}
	return false
}

// secrets are the secrets deliveries are signed with at now: the current
// one, and the previous one during a rotation's overlap.
func (ep *Endpoint) secrets(now time.Time) []string {
	if ep.prevSecret != "" && now.UnixMilli() < ep.prevSecretUntil {
		return []string{ep.secret, ep.prevSecret}
	}
	return []string{ep.secret}
}

const endpointColumns = `id, url, description, event_types, enabled, disabled_reason, ordered, secret, prev_secret, prev_secret_until, failing_since, created_at, updated_at`

func scanEndpoint(r sqldb.Scanner) (*Endpoint, error) {
	var ep Endpoint
	var types string
	var enabled, ordered, created, updated int64
	if err := r.Scan(&ep.ID, &ep.URL, &ep.Description, &types, &enabled, &ep.DisabledReason, &ordered,
		&ep.secret, &ep.prevSecret, &ep.prevSecretUntil, &ep.failingSince, &created, &updated); err != nil {
		return nil, err
	}
	ep.EventTypes = []string{}
	if types != "" {
		ep.EventTypes = strings.Split(types, ",")
	}
	ep.Enabled, ep.Ordered = enabled != 0, ordered != 0
	ep.CreatedAt, ep.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
	return &ep, nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func (s *store) insertEndpoint(ctx context.Context, ep *Endpoint) error {
	_, err := s.db.Exec(ctx, `INSERT INTO endpoints (`+endpointColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ep.ID, ep.URL, ep.Description, strings.Join(ep.EventTypes, ","), boolInt(ep.Enabled), ep.DisabledReason, boolInt(ep.Ordered),
		ep.secret, ep.prevSecret, ep.prevSecretUntil, ep.failingSince, ep.CreatedAt.UnixMilli(), ep.UpdatedAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("webhook: store endpoint: %w", err)
	}
	return nil
}

// updateEndpoint writes every column of ep but created_at.
func (s *store) updateEndpoint(ctx context.Context, q interface {
	Exec(context.Context, string, ...any) (sql.Result, error)
}, ep *Endpoint) error {
	_, err := q.Exec(ctx, `UPDATE endpoints SET url = ?, description = ?, event_types = ?, enabled = ?, disabled_reason = ?, ordered = ?,
		secret = ?, prev_secret = ?, prev_secret_until = ?, failing_since = ?, updated_at = ? WHERE id = ?`,
		ep.URL, ep.Description, strings.Join(ep.EventTypes, ","), boolInt(ep.Enabled), ep.DisabledReason, boolInt(ep.Ordered),
		ep.secret, ep.prevSecret, ep.prevSecretUntil, ep.failingSince, ep.UpdatedAt.UnixMilli(), ep.ID)
	if err != nil {
		return fmt.Errorf("webhook: update endpoint %s: %w", ep.ID, err)
	}
	return nil
}

// endpoint reads one endpoint; ENOTFOUND if there is none.
func (s *store) endpoint(ctx context.Context, id string) (*Endpoint, error) {
	ep, err := scanEndpoint(s.db.QueryRow(ctx, `SELECT `+endpointColumns+` FROM endpoints WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, eventmart.Errorf(eventmart.ENOTFOUND, "webhook endpoint %s not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("webhook: read endpoint %s: %w", id, err)
	}
	return ep, nil
}

// endpoints lists endpoints oldest first, read through q (s.db when
// nil); limit 0 lists all.
func (s *store) endpoints(ctx context.Context, q sqldb.Querier, limit, offset int) ([]*Endpoint, error) {
	if q == nil {
		q = s.db
	}
	query, args := `SELECT `+endpointColumns+` FROM endpoints ORDER BY created_at, id`, []any{}
	if limit > 0 {
		query, args = query+` LIMIT ? OFFSET ?`, []any{limit, offset}
	}
	out, err := sqldb.List(ctx, q, query, args, scanEndpoint)
	if err != nil {
		return nil, fmt.Errorf("webhook: list endpoints: %w", err)
	}
	return out, nil
}

// deleteEndpoint deletes an endpoint with its queue and attempts.
func (s *store) deleteEndpoint(ctx context.Context, id string) error {
	return s.db.InTx(ctx, func(tx *sqldb.Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM endpoints WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("webhook: delete endpoint %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return eventmart.Errorf(eventmart.ENOTFOUND, "webhook endpoint %s not found", id)
		}
		for _, q := range []string{`DELETE FROM deliveries WHERE endpoint_id = ?`, `DELETE FROM attempts WHERE endpoint_id = ?`} {
			if _, err := tx.Exec(ctx, q, id); err != nil {
				return fmt.Errorf("webhook: delete endpoint %s: %w", id, err)
			}
		}
		return nil
	})
}

// Delivery statuses.
const (
	StatusPending   = "pending"   // waiting for its next attempt (or for its endpoint to be enabled)
	StatusDelivered = "delivered" // a 2xx answered it
	StatusFailed    = "failed"    // every attempt of the schedule failed
)

// Delivery is one event's delivery to one endpoint.
type Delivery struct {
	ID            string     `json:"id"` // the webhook-id
	EndpointID    string     `json:"endpointId"`
	EventID       string     `json:"eventId"`
	EventType     string     `json:"eventType"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt *time.Time `json:"nextAttemptAt,omitempty"` // while pending
	LastStatus    int        `json:"lastStatus"`              // HTTP status of the last attempt, 0 if none answered
	LastError     string     `json:"lastError"`
	CreatedAt     time.Time  `json:"createdAt"`
	UpdatedAt     time.Time  `json:"updatedAt"`
	AttemptLog    []*Attempt `json:"attemptLog"`

	seq      int64
	requeues int64 // as read: recordAttempt applies only if no replay came since
	body     []byte
}

// Attempt is one try of a delivery.
type Attempt struct {
	At         time.Time `json:"at"`
	StatusCode int       `json:"statusCode"` // 0 when no response came
	LatencyMS  int64     `json:"latencyMs"`
	Response   string    `json:"response"` // the first ResponseBytes bytes of the body
	Error      string    `json:"error"`

	deliveryID string
	retryAfter time.Duration // of a 429 or 503; not stored
}

// enqueue adds the deliveries of one event (body: its envelope JSON) to
// the queues of eps, within tx. An event already queued for an endpoint
// (a redelivered event) is left as it is; with reset, it is queued again
// from the start of the retry schedule (a replay).
func (s *store) enqueue(ctx context.Context, tx *sqldb.Tx, eventID, eventType string, occurred time.Time, body []byte, eps []*Endpoint, now time.Time, reset bool) error {
	if _, err := tx.Exec(ctx, `INSERT INTO events (event_id, event_type, occurred_at, body) VALUES (?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING`,
		eventID, eventType, occurred.UnixMilli(), string(body)); err != nil {
		return fmt.Errorf("webhook: store event %s: %w", eventID, err)
	}
	conflict := `DO NOTHING`
	if reset {
		conflict = `DO UPDATE SET status = 'pending', attempts = 0, next_attempt_at = excluded.next_attempt_at, updated_at = excluded.updated_at,
			requeues = deliveries.requeues + 1`
	}
	for _, ep := range eps {
		if _, err := tx.Exec(ctx, `INSERT INTO deliveries (id, endpoint_id, event_id, event_type, status, attempts, next_attempt_at, last_status, last_error, created_at, updated_at)
			VALUES (?, ?, ?, ?, 'pending', 0, ?, 0, '', ?, ?) ON CONFLICT (id) `+conflict,
			MessageID(ep.ID, eventID), ep.ID, eventID, eventType, now.UnixMilli(), now.UnixMilli(), now.UnixMilli()); err != nil {
			return fmt.Errorf("webhook: queue %s for %s: %w", eventID, ep.ID, err)
		}
	}
	return nil
}

// queueDue is when an endpoint's queue next has a delivery due.
type queueDue struct {
	endpointID string
	next       time.Time
}

// nextDue lists the enabled endpoints with pending deliveries and when
// each has one due: its earliest, or for an ordered endpoint its queue's
// head's (the rest wait behind it).
func (s *store) nextDue(ctx context.Context) ([]queueDue, error) {
	// One index probe per endpoint (deliveries_due, deliveries_endpoint),
	// however long the queues: this runs whenever a worker finishes.
	out, err := sqldb.List(ctx, s.db, `SELECT id, next_at FROM (SELECT e.id, CASE WHEN e.ordered = 1
			THEN (SELECT d.next_attempt_at FROM deliveries d WHERE d.endpoint_id = e.id AND d.status = 'pending' ORDER BY d.seq LIMIT 1)
			ELSE (SELECT MIN(d.next_attempt_at) FROM deliveries d WHERE d.endpoint_id = e.id AND d.status = 'pending') END AS next_at
		FROM endpoints e WHERE e.enabled = 1) q WHERE next_at IS NOT NULL`, nil,
		func(r sqldb.Scanner) (queueDue, error) {
			var q queueDue
			var next int64
			err := r.Scan(&q.endpointID, &next)
			q.next = time.UnixMilli(next)
			return q, err
		})
	if err != nil {
		return nil, fmt.Errorf("webhook: due endpoints: %w", err)
	}
	return out, nil
}

const deliveryColumns = `d.seq, d.id, d.endpoint_id, d.event_id, d.event_type, d.status, d.attempts, d.next_attempt_at, d.last_status, d.last_error, d.created_at, d.updated_at, d.requeues`

func scanDelivery(r sqldb.Scanner, withBody bool) (*Delivery, error) {
	var d Delivery
	var next, created, updated int64
	var body string
	dest := []any{&d.seq, &d.ID, &d.EndpointID, &d.EventID, &d.EventType, &d.Status, &d.Attempts, &next, &d.LastStatus, &d.LastError, &created, &updated, &d.requeues}
	if withBody {
		dest = append(dest, &body)
	}
	if err := r.Scan(dest...); err != nil {
		return nil, err
	}
	if d.Status == StatusPending {
		t := time.UnixMilli(next).UTC()
		d.NextAttemptAt = &t
	}
	d.CreatedAt, d.UpdatedAt, d.body = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC(), []byte(body)
	d.AttemptLog = []*Attempt{}
	return &d, nil
}

// queue returns up to limit pending deliveries of an endpoint in queue
// order with their bodies: those due at now, or, for an ordered endpoint,
// the head of its queue whether due or not.
func (s *store) queue(ctx context.Context, endpointID string, ordered bool, now time.Time, limit int) ([]*Delivery, error) {
	q := `SELECT ` + deliveryColumns + `, e.body FROM deliveries d JOIN events e ON e.event_id = d.event_id
		WHERE d.endpoint_id = ? AND d.status = 'pending'`
	args := []any{endpointID}
	if !ordered {
		q, args = q+` AND d.next_attempt_at <= ?`, append(args, now.UnixMilli())
	}
	q, args = q+` ORDER BY d.seq LIMIT ?`, append(args, limit)
	out, err := sqldb.List(ctx, s.db, q, args, func(r sqldb.Scanner) (*Delivery, error) { return scanDelivery(r, true) })
	if err != nil {
		return nil, fmt.Errorf("webhook: read queue of %s: %w", endpointID, err)
	}
	return out, nil
}

// deliveries lists an endpoint's deliveries newest first, each with its
// attempts, optionally only those of one status.
func (s *store) deliveries(ctx context.Context, endpointID, status string, limit, offset int) ([]*Delivery, error) {
	q, args := sqldb.AndEq(`SELECT `+deliveryColumns+` FROM deliveries d WHERE d.endpoint_id = ?`, []any{endpointID},
		sqldb.Eq{Col: "d.status", Value: status})
	q += ` ORDER BY d.seq DESC LIMIT ? OFFSET ?`
	args = append(args, limit, offset)
	ds, err := sqldb.List(ctx, s.db, q, args, func(r sqldb.Scanner) (*Delivery, error) { return scanDelivery(r, false) })
	if err != nil {
		return nil, fmt.Errorf("webhook: list deliveries: %w", err)
	}
	if len(ds) == 0 {
		return ds, nil
	}
	byID := map[string]*Delivery{}
	ids := make([]any, len(ds))
	for i, d := range ds {
		byID[d.ID], ids[i] = d, d.ID
	}
	as, err := sqldb.List(ctx, s.db, `SELECT delivery_id, attempted_at, status_code, latency_ms, response, error FROM attempts
		WHERE delivery_id IN (?`+strings.Repeat(", ?", len(ids)-1)+`) ORDER BY seq`, ids, scanAttempt)
	if err != nil {
		return nil, fmt.Errorf("webhook: list attempts: %w", err)
	}
	for _, a := range as {
		byID[a.deliveryID].AttemptLog = append(byID[a.deliveryID].AttemptLog, a)
	}
	return ds, nil
}

func scanAttempt(r sqldb.Scanner) (*Attempt, error) {
	var a Attempt
	var at int64
	if err := r.Scan(&a.deliveryID, &at, &a.StatusCode, &a.LatencyMS, &a.Response, &a.Error); err != nil {
		return nil, err
	}
	a.At = time.UnixMilli(at).UTC()
	return &a, nil
}

// delivery reads one delivery of an endpoint; ENOTFOUND if none.
func (s *store) delivery(ctx context.Context, endpointID, id string) (*Delivery, error) {
	d, err := scanDelivery(s.db.QueryRow(ctx, `SELECT `+deliveryColumns+` FROM deliveries d WHERE d.id = ? AND d.endpoint_id = ?`, id, endpointID), false)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, eventmart.Errorf(eventmart.ENOTFOUND, "delivery %s of endpoint %s not found", id, endpointID)
	}
	if err != nil {
		return nil, fmt.Errorf("webhook: read delivery %s: %w", id, err)
	}
	return d, nil
}

// requeue makes one delivery pending again, due now, with a fresh
// retry schedule.
func (s *store) requeue(ctx context.Context, id string, now time.Time) error {
	if _, err := s.db.Exec(ctx, `UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ?, requeues = requeues + 1 WHERE id = ?`,
		now.UnixMilli(), now.UnixMilli(), id); err != nil {
		return fmt.Errorf("webhook: requeue %s: %w", id, err)
	}
	return nil
}

// recordAttempt stores an attempt and the delivery's new state within tx.
func (s *store) recordAttempt(ctx context.Context, tx *sqldb.Tx, d *Delivery, a *Attempt) error {
	if _, err := tx.Exec(ctx, `INSERT INTO attempts (delivery_id, endpoint_id, attempted_at, status_code, latency_ms, response, error) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.EndpointID, a.At.UnixMilli(), a.StatusCode, a.LatencyMS, a.Response, a.Error); err != nil {
		return fmt.Errorf("webhook: record attempt of %s: %w", d.ID, err)
	}
	var next int64
	if d.NextAttemptAt != nil {
		next = d.NextAttemptAt.UnixMilli()
	}
	// A replay or re-send while the attempt was in flight queued the
	// delivery afresh: the attempt is logged but does not end it.
	if _, err := tx.Exec(ctx, `UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_status = ?, last_error = ?, updated_at = ? WHERE id = ? AND requeues = ?`,
		d.Status, d.Attempts, next, d.LastStatus, d.LastError, a.At.UnixMilli(), d.ID, d.requeues); err != nil {
		return fmt.Errorf("webhook: update delivery %s: %w", d.ID, err)
	}
	return nil
}

// Retention of finished deliveries and their attempts.
const retention = 30 * 24 * time.Hour

// prune deletes deliveries finished before now-retention, their attempts,
// and the bodies no delivery refers to any more.
func (s *store) prune(ctx context.Context, now time.Time) error {
	cut := now.Add(-retention).UnixMilli()
	for _, q := range []string{
		`DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE status <> 'pending' AND updated_at < ?)`,
		`DELETE FROM deliveries WHERE status <> 'pending' AND updated_at < ?`,
	} {
		if _, err := s.db.Exec(ctx, q, cut); err != nil {
			return fmt.Errorf("webhook: prune: %w", err)
		}
	}
	if _, err := s.db.Exec(ctx, `DELETE FROM events WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.event_id)`); err != nil {
		return fmt.Errorf("webhook: prune events: %w", err)
	}
	return nil
}
