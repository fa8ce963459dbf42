package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Loop timings: how long the delivery loop waits at most without a nudge
// (a delivery queued, or an endpoint enabled, through another instance:
// it is sent within pollInterval, as an endpoint changed there takes
// effect here within reloadInterval), and how often finished deliveries
// are pruned. A delivery queued through this process nudges the loop
// (after its commit); a retry falling due wakes it at its time.
const (
	pollInterval  = reloadInterval
	pruneInterval = time.Hour
	// batch is how many deliveries of one endpoint a worker takes at once.
	batch = 100
	// maxRetryAfter caps a receiver's Retry-After.
	maxRetryAfter = 24 * time.Hour
)

// Run delivers until ctx is cancelled: it hands each endpoint with due
// deliveries to a worker of its own (at most EVENTMART_WEBHOOK_WORKERS at
// once), which sends that endpoint's queue in order, one at a time. Between
// rounds it sleeps until the earliest delivery of an idle endpoint falls
// due, pollInterval at most, or until nudged or a worker ends: with
// nothing queued it asks the database once per pollInterval.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, s.workers)
	var mu sync.Mutex
	busy := map[string]bool{}
	done := make(chan struct{}, 1)
	var lastPrune time.Time
	for {
		now := s.d.Now()
		if now.Sub(lastPrune) >= pruneInterval {
			if err := s.store.prune(ctx, now); err != nil && ctx.Err() == nil {
				s.d.Log.Error("pruning webhook deliveries failed", "error", err)
			}
			lastPrune = now
		}
		// A nudge sent before the read is answered by it (the read sees
		// what was committed before the nudge); one sent after wakes the
		// wait below.
		select {
		case <-s.wake:
		default:
		}
		queues, err := s.store.nextDue(ctx)
		if err != nil && ctx.Err() == nil {
			s.d.Log.Error("reading webhook queues failed", "error", err)
		}
		wait := pollInterval
		for _, q := range queues {
			mu.Lock()
			if busy[q.endpointID] {
				mu.Unlock()
				continue // its worker's end starts another round
			}
			if q.next.After(now) {
				mu.Unlock()
				wait = min(wait, q.next.Sub(now))
				continue
			}
			id := q.endpointID
			busy[id] = true
			mu.Unlock()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.deliverQueue(ctx, id)
				mu.Lock()
				delete(busy, id)
				mu.Unlock()
				<-sem
				select {
				case done <- struct{}{}:
				default:
				}
			}()
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-s.wake:
		case <-done:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// deliverQueue sends an endpoint's due deliveries in queue order. An
// ordered endpoint's queue stops at the first delivery not delivered.
func (s *Service) deliverQueue(ctx context.Context, endpointID string) {
	ep, err := s.store.endpoint(ctx, endpointID)
	if err != nil {
		if ctx.Err() == nil {
			s.d.Log.Error("reading webhook endpoint failed", "endpointId", endpointID, "error", err)
		}
		return
	}
	for ep.Enabled && ctx.Err() == nil {
		ds, err := s.store.queue(ctx, ep.ID, ep.Ordered, s.d.Now(), batch)
		if err != nil {
			if ctx.Err() == nil {
				s.d.Log.Error("reading webhook queue failed", "endpointId", ep.ID, "error", err)
			}
			return
		}
		for _, d := range ds {
			if ep.Ordered && d.NextAttemptAt.After(s.d.Now()) {
				return // the head waits for its retry
			}
			if err := s.deliver(ctx, ep, d); err != nil {
				if ctx.Err() == nil {
					s.d.Log.Error("recording webhook attempt failed", "endpointId", ep.ID, "deliveryId", d.ID, "error", err)
				}
				return
			}
			if !ep.Enabled || (ep.Ordered && d.Status != StatusDelivered) {
				return
			}
		}
		if len(ds) < batch {
			return
		}
	}
}

// deliver makes one attempt of d and records it, updating d and ep.
func (s *Service) deliver(ctx context.Context, ep *Endpoint, d *Delivery) error {
	a := s.attempt(ctx, ep, d.ID, d.body)
	if ctx.Err() != nil {
		return ctx.Err() // shutting down: the attempt is made again after the restart
	}
	d.Attempts++
	d.LastStatus, d.LastError = a.StatusCode, a.Error
	var disable, outcome, disabledAs string
	switch {
	case a.StatusCode >= 200 && a.StatusCode < 300:
		d.Status, d.NextAttemptAt = StatusDelivered, nil
		ep.failingSince = 0
		outcome = outcomeDelivered
	case a.StatusCode == http.StatusGone:
		// The delivery waits, due, for the endpoint to be enabled again.
		d.NextAttemptAt = &a.At
		disable, outcome, disabledAs = "the endpoint answered 410 Gone", outcomeGone, "gone"
	default:
		if ep.failingSince == 0 {
			ep.failingSince = a.At.UnixMilli()
		}
		if d.Attempts > len(s.delays) {
			d.Status, d.NextAttemptAt = StatusFailed, nil
			outcome = outcomeFailed
		} else {
			next := a.At.Add(s.retryWait(d.Attempts, a))
			d.NextAttemptAt = &next
			outcome = outcomeRetrying
		}
		if since := time.UnixMilli(ep.failingSince); a.At.Sub(since) >= s.disableAfter {
			disable = fmt.Sprintf("every attempt failed since %s", since.UTC().Format(time.RFC3339))
			disabledAs = "failing"
		}
	}
	if disable != "" {
		ep.Enabled, ep.DisabledReason = false, disable
		s.d.Log.Warn("webhook endpoint disabled", "endpointId", ep.ID, "url", ep.URL, "reason", disable)
		// The consumer stops queueing for it before anyone can read
		// WebhookEndpointDisabled (the relay may publish before Notify).
		s.disableCached(ep.ID)
	}
	ep.UpdatedAt = a.At
	err := s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		if err := s.store.recordAttempt(ctx, tx, d, a); err != nil {
			return err
		}
		// Only the columns the attempt changes: an admin's concurrent
		// update of the URL or the types is kept.
		if _, err := tx.Exec(ctx, `UPDATE endpoints SET enabled = ?, disabled_reason = ?, failing_since = ?, updated_at = ? WHERE id = ?`,
			boolInt(ep.Enabled), ep.DisabledReason, ep.failingSince, ep.UpdatedAt.UnixMilli(), ep.ID); err != nil {
			return fmt.Errorf("webhook: update endpoint %s: %w", ep.ID, err)
		}
		if disable == "" {
			return nil
		}
		return outbox.Emit(ctx, tx, service.Source(Name), event.FromRequest(event.NewID(), event.Metadata{}),
			&event.WebhookEndpointDisabled{EndpointID: ep.ID, URL: ep.URL, Reason: disable})
	})
	if err != nil {
		return err
	}
	s.metrics.attempted(a, outcome, disabledAs)
	if disable != "" {
		if s.d.Outbox != nil {
			s.d.Outbox.Notify()
		}
		return s.reload(ctx, nil)
	}
	return nil
}

// retryWait is the wait after a delivery's attempts-th failed attempt:
// the schedule's, give or take 20%, or the receiver's Retry-After of a 429
// or 503 if longer.
func (s *Service) retryWait(attempts int, a *Attempt) time.Duration {
	base := s.delays[attempts-1]
	wait := base + time.Duration((rand.Float64()*0.4-0.2)*float64(base))
	if a.retryAfter > wait {
		wait = min(a.retryAfter, maxRetryAfter)
	}
	return wait
}

// attempt POSTs body, signed, to ep and reports what happened.
func (s *Service) attempt(ctx context.Context, ep *Endpoint, id string, body []byte) *Attempt {
	start := s.d.Now()
	a := &Attempt{At: start.UTC()}
	defer func() { a.LatencyMS = s.d.Now().Sub(start).Milliseconds() }()
	sig, err := signatures(ep.secrets(start), id, start, body)
	if err != nil {
		a.Error = err.Error()
		return a
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		a.Error = err.Error()
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Eventmart-Webhooks/1")
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(start.Unix(), 10))
	req.Header.Set(HeaderSignature, sig)
	resp, err := s.client.Do(req)
	if err != nil {
		a.Error = attemptError(err)
		return a
	}
	defer resp.Body.Close()
	a.StatusCode = resp.StatusCode
	head, err := io.ReadAll(io.LimitReader(resp.Body, ResponseBytes))
	a.Response = strings.ToValidUTF8(string(head), "\uFFFD")
	if err != nil {
		a.Error = attemptError(err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		a.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), start)
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		a.Error = "redirect to " + resp.Header.Get("Location") + " not followed"
	}
	return a
}

// attemptError is the recorded text of a failed request: without Go's
// "Post \"url\": " prefix, which repeats the endpoint's URL.
func attemptError(err error) string {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && ue.Unwrap() != nil && strings.HasPrefix(err.Error(), "Post ") {
		err = ue.Unwrap()
	}
	return err.Error()
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date; 0
// when absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
