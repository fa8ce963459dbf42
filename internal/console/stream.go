package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/httpx"
)

// StreamEvent is the data of one "event" message of the stream: the
// record's coordinates, the envelope fields from its headers, and the
// envelope itself.
type StreamEvent struct {
	Topic         string          `json:"topic"`
	Partition     int32           `json:"partition"`
	Offset        int64           `json:"offset"`
	Timestamp     time.Time       `json:"timestamp"` // the record's (broker) time
	Key           string          `json:"key"`
	EventID       string          `json:"eventId"`
	EventType     string          `json:"eventType"`
	Source        string          `json:"source"`
	CorrelationID string          `json:"correlationId"`
	CausationID   string          `json:"causationId"`
	Envelope      json.RawMessage `json:"envelope"` // the record value: the envelope, or a JSON string if it is not JSON
}

// streamFilter is what a stream lets through.
type streamFilter struct {
	topics        []string
	types         map[string]bool // nil: any
	correlationID string
	since         time.Duration // 0: from the latest offsets
}

// The audit trail's archive is left out of a stream not filtered by type:
// the audit service publishes every event it records again (one
// AuditRecorded per event, as it did, or one AuditBlockRecorded per
// block), which would double every row. Asked for by type, it is shown.
var auditRecorded, auditBlockRecorded = string((&event.AuditRecorded{}).EventType()), string((&event.AuditBlockRecorded{}).EventType())

func (f streamFilter) match(m *bus.Message) bool {
	typ := m.Header(eventmsg.HeaderEventType)
	if f.types != nil && !f.types[typ] || f.types == nil && (typ == auditRecorded || typ == auditBlockRecorded) {
		return false
	}
	return f.correlationID == "" || m.Header(eventmsg.HeaderCorrelationID) == f.correlationID
}

// MaxSince bounds how far back a stream may start.
const MaxSince = 24 * time.Hour

var streamParams = []string{"topic", "type", "correlationId", "since"}

// parseStreamFilter reads ?topic=a,b&type=X,Y&correlationId=&since=5m.
// Types narrow the topics to theirs; unknown names are rejected.
func parseStreamFilter(r *http.Request) (streamFilter, error) {
	q := r.URL.Query()
	for name := range q {
		if !slices.Contains(streamParams, name) {
			return streamFilter{}, eventmart.Errorf(eventmart.EINVALID, "unknown query parameter %q (allowed: %s)", name, strings.Join(streamParams, ", "))
		}
	}
	f := streamFilter{correlationID: strings.TrimSpace(q.Get("correlationId"))}
	all := watchedTopics()
	topics := map[string]bool{}
	for _, t := range splitList(q.Get("topic")) {
		if !slices.Contains(all, t) {
			return f, eventmart.Errorf(eventmart.EINVALID, "topic: %q is not a topic the console watches (%s)", t, strings.Join(all, ", "))
		}
		topics[t] = true
	}
	if types := splitList(q.Get("type")); len(types) > 0 {
		f.types = map[string]bool{}
		byType := map[string]bool{}
		for _, t := range types {
			spec, ok := event.Lookup(event.Type(t))
			if !ok {
				return f, eventmart.Errorf(eventmart.EINVALID, "type: unknown event type %q", t)
			}
			f.types[t] = true
			byType[string(spec.Topic)] = true
		}
		if len(topics) == 0 {
			topics = byType
		} else {
			for t := range topics {
				if !byType[t] {
					delete(topics, t)
				}
			}
			if len(topics) == 0 {
				return f, eventmart.Errorf(eventmart.EINVALID, "type: none of these types is published on the topics asked for")
			}
		}
	}
	for _, t := range all {
		if len(topics) == 0 || topics[t] {
			f.topics = append(f.topics, t)
		}
	}
	if s := q.Get("since"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > MaxSince {
			return f, eventmart.Errorf(eventmart.EINVALID, "since: want a positive duration up to %s, such as 5m", MaxSince)
		}
		f.since = d
	}
	return f, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Stream serves GET /api/v1/admin/stream: server-sent events of the
// business topics' new records, filtered by topic, type and correlation id,
// from the latest offsets (or those of `since` ago) until the client goes
// away or the server shuts down.
//
// Messages: "ready" once the start offsets are taken (an event published
// after it is delivered), "event" with a StreamEvent, "dropped" with
// {"dropped": n} when a slow client missed n events (the stream's buffer
// is bounded: it drops rather than falls behind), "error" with an Error
// body when the bus fails (the stream keeps trying). A comment line is
// sent every 15s to keep the connection alive.
func (c *Console) Stream(w http.ResponseWriter, r *http.Request) {
	c.init()
	f, err := parseStreamFilter(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	start, err := c.startOffsets(ctx, f)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(name string, data any) bool {
		b, err := json.Marshal(data)
		if err != nil {
			return false
		}
		// A client that takes 10s to accept a message is gone or too slow.
		_ = rc.SetWriteDeadline(c.Now().Add(10 * time.Second))
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send("ready", map[string]any{"topics": f.topics}) {
		return
	}

	events := make(chan StreamEvent, c.StreamBuffer)
	errs := make(chan error, 1)
	var dropped atomic.Int64
	go c.tail(ctx, f, start, events, errs, &dropped)

	keepAlive := time.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			if !send("event", ev) {
				return
			}
		case err := <-errs:
			var body httpx.ErrorBody
			body.Error.Code, body.Error.Message = eventmart.EUNAVAILABLE, err.Error()
			if !send("error", body) {
				return
			}
		case <-keepAlive.C:
			_ = rc.SetWriteDeadline(c.Now().Add(10 * time.Second))
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
		if n := dropped.Swap(0); n > 0 && !send("dropped", map[string]int64{"dropped": n}) {
			return
		}
	}
}

// partKey names a partition of a topic.
type partKey struct {
	topic     string
	partition int32
}

// startOffsets returns where the stream starts on each partition.
func (c *Console) startOffsets(ctx context.Context, f streamFilter) (map[partKey]int64, error) {
	pos := map[partKey]int64{}
	for _, t := range f.topics {
		var offs []bus.PartitionOffsets
		var err error
		if f.since > 0 {
			offs, err = c.Bus.OffsetAfter(ctx, t, c.Now().Add(-f.since))
		} else {
			offs, err = c.Bus.Offsets(ctx, t)
		}
		if err != nil {
			return nil, eventmart.Errorf(eventmart.EUNAVAILABLE, "event bus: offsets of %s: %v", t, err)
		}
		for _, o := range offs {
			if f.since > 0 {
				pos[partKey{t, o.Partition}] = o.Start
			} else {
				pos[partKey{t, o.Partition}] = o.End
			}
		}
	}
	return pos, nil
}

// tailBatch is the most records read from one partition at a time.
const tailBatch = 200

// tail reads every partition of f's topics from pos onwards and hands the
// matching records to events until ctx ends. When events is full it drops
// the record and counts it in dropped: a slow client never slows the
// reading down nor makes memory grow. Bus errors go to errs (the last one
// kept when the client has not taken the previous yet); reading resumes
// after the poll interval.
func (c *Console) tail(ctx context.Context, f streamFilter, pos map[partKey]int64, events chan<- StreamEvent, errs chan<- error, dropped *atomic.Int64) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		read, err := c.tailOnce(ctx, f, pos, events, dropped)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			c.Log.Warn("console stream: read failed", "error", err)
			select {
			case errs <- err:
			default:
			}
		}
		if read && err == nil {
			continue // more may be waiting
		}
		timer.Reset(c.PollInterval)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
}

// tailOnce reads what is new on every partition once; read tells whether
// any record was read.
func (c *Console) tailOnce(ctx context.Context, f streamFilter, pos map[partKey]int64, events chan<- StreamEvent, dropped *atomic.Int64) (read bool, err error) {
	// What this round read that matches is sent at its end (also when a
	// read fails midway: those records' positions have moved on), in time
	// order across topics and partitions, so that one flow reads top-down
	// (within a partition, offset order is time order already).
	var round []*bus.Message
	defer func() {
		slices.SortStableFunc(round, func(a, b *bus.Message) int { return a.Timestamp.Compare(b.Timestamp) })
		for _, m := range round {
			select {
			case events <- toStreamEvent(m):
			default:
				dropped.Add(1)
			}
		}
	}()
	for _, t := range f.topics {
		offs, err := c.Bus.Offsets(ctx, t)
		if err != nil {
			return read, fmt.Errorf("console: offsets of %s: %w", t, err)
		}
		for _, o := range offs {
			k := partKey{t, o.Partition}
			from, known := pos[k]
			if !known { // a partition added since the stream started
				from = o.Start
			}
			from = max(from, o.Start)
			if o.End <= from {
				pos[k] = from
				continue
			}
			msgs, err := c.Bus.Read(ctx, t, o.Partition, from, tailBatch)
			if err != nil {
				return read, fmt.Errorf("console: read %s/%d: %w", t, o.Partition, err)
			}
			for _, m := range msgs {
				from = m.Offset + 1
				read = true
				if f.match(m) {
					round = append(round, m)
				}
			}
			pos[k] = from
		}
	}
	return read, nil
}

// toStreamEvent is m as the stream sends it. Sealed personal fields are
// shown as event.SealedShown, not as ciphertext: the live stream is a
// screen others may see, and opening every record would cost a key per
// user; the trail and the flow views (GET /admin/events, GET
// /orders/{id}/events) show them opened to an admin.
func toStreamEvent(m *bus.Message) StreamEvent {
	value := json.RawMessage(bytes.Clone(m.Value))
	if !json.Valid(m.Value) {
		value, _ = json.Marshal(string(m.Value))
	} else if masked, err := event.MaskData(value); err == nil {
		value = masked
	}
	return StreamEvent{
		Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Timestamp: m.Timestamp, Key: string(m.Key),
		EventID: m.Header(eventmsg.HeaderEventID), EventType: m.Header(eventmsg.HeaderEventType), Source: m.Header(eventmsg.HeaderSource),
		CorrelationID: m.Header(eventmsg.HeaderCorrelationID), CausationID: m.Header(eventmsg.HeaderCausationID),
		Envelope: value,
	}
}
