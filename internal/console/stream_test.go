package console

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/bus/embedded"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
)

// openBus returns an embedded bus with the ADR's topics.
func openBus(t *testing.T) bus.Bus {
	t.Helper()
	b, err := embedded.Open(filepath.Join(t.TempDir(), "eventlog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	var topics []bus.TopicConfig
	for _, ts := range event.Topics {
		topics = append(topics, bus.TopicConfig{Name: string(ts.Name), Partitions: ts.Partitions, Retention: ts.Retention})
	}
	if _, err := b.EnsureTopics(context.Background(), topics); err != nil {
		t.Fatal(err)
	}
	return b
}

func publish(t *testing.T, b bus.Bus, origin event.Origin, ps ...event.Payload) []*event.Envelope {
	t.Helper()
	var envs []*event.Envelope
	for _, p := range ps {
		e, err := event.New("order-service", origin, p)
		if err != nil {
			t.Fatal(err)
		}
		m, err := eventmsg.Encode(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		envs = append(envs, e)
	}
	return envs
}

// TestTailDropsForSlowClients checks the back-pressure rule: when the
// stream's buffer is full, records are dropped and counted, never queued
// without bound, and reading goes on.
func TestTailDropsForSlowClients(t *testing.T) {
	b := openBus(t)
	c := &Console{Bus: b}
	c.init()
	f := streamFilter{topics: []string{string(event.TopicOrder)}}
	pos, err := c.startOffsets(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	order := event.NewID()
	for range 10 {
		publish(t, b, event.Origin{}, &event.OrderCancelled{OrderID: order, UserID: "u1", ReasonCode: "timeout", Reason: "r"})
	}
	events := make(chan StreamEvent, 3)
	var dropped atomic.Int64
	read, err := c.tailOnce(context.Background(), f, pos, events, &dropped)
	if err != nil || !read {
		t.Fatalf("tailOnce: read %v, err %v", read, err)
	}
	if len(events) != 3 || dropped.Load() != 7 {
		t.Fatalf("%d events buffered, %d dropped; want 3 and 7", len(events), dropped.Load())
	}
	// The position moved past the dropped records: nothing is read twice.
	if read, err := c.tailOnce(context.Background(), f, pos, events, &dropped); err != nil || read {
		t.Fatalf("second tailOnce: read %v, err %v; want nothing new", read, err)
	}
}

// sse reads server-sent events of a response.
type sse struct {
	sc *bufio.Scanner
}

// next returns the next message's name and data.
func (s *sse) next(t *testing.T) (string, string) {
	t.Helper()
	var name, data string
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case line == "" && name != "":
			return name, data
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
	t.Fatalf("stream ended: %v", s.sc.Err())
	return "", ""
}

// TestStreamEndsOnShutdown checks that EndStreams ends an open stream, so
// the server's graceful shutdown does not wait for it.
func TestStreamEndsOnShutdown(t *testing.T) {
	b := openBus(t)
	c := &Console{Bus: b, PollInterval: 10 * time.Millisecond}
	srv := httptest.NewServer(http.HandlerFunc(c.Stream))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "?topic=order-events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	s := &sse{bufio.NewScanner(resp.Body)}
	if name, _ := s.next(t); name != "ready" {
		t.Fatalf("first message %q, want ready", name)
	}
	c.EndStreams()
	done := make(chan bool)
	go func() { done <- !s.sc.Scan() }()
	select {
	case ended := <-done:
		if !ended {
			t.Fatal("the stream sent more after EndStreams")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream is still open 5s after EndStreams")
	}
}

func TestStreamRejectsBadFilters(t *testing.T) {
	c := &Console{Bus: openBus(t)}
	srv := httptest.NewServer(http.HandlerFunc(c.Stream))
	defer srv.Close()
	for _, q := range []string{"topic=nope", "type=NoSuchEvent", "since=-1s", "since=48h", "colour=red", "topic=user-events&type=OrderCreated"} {
		resp, err := http.Get(srv.URL + "?" + q)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Error struct{ Code, Message string }
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || err != nil || body.Error.Message == "" {
			t.Errorf("?%s: status %d, body %+v (%v); want 400 with an error", q, resp.StatusCode, body, err)
		}
	}
}

// TestTopicsShowLag: a group that has read nothing lags by every record of
// its topics; once it consumed them its lag is zero.
func TestTopicsShowLag(t *testing.T) {
	b := openBus(t)
	group := Consumer{Service: "test", Group: "test-service", EventTypes: []string{"OrderCancelled"}, Topics: []string{"order-events"}}
	c := &Console{Bus: b, Consumers: func(context.Context) ([]Consumer, error) { return []Consumer{group}, nil }}
	srv := httptest.NewServer(http.HandlerFunc(c.Topics))
	defer srv.Close()
	lag := func() (int64, int) {
		t.Helper()
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Topics []TopicInfo
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		for _, tp := range body.Topics {
			if tp.Name != "order-events" {
				if len(tp.Groups) != 0 {
					t.Errorf("%s: groups %+v, want none", tp.Name, tp.Groups)
				}
				continue
			}
			if len(tp.Groups) != 1 || tp.Groups[0].Group != "test-service" || tp.Messages != 3 {
				t.Fatalf("order-events: %+v", tp)
			}
			return tp.Groups[0].Lag, len(tp.Groups[0].Partitions)
		}
		t.Fatal("no order-events topic")
		return 0, 0
	}
	for _, o := range []string{"o1", "o2", "o3"} {
		publish(t, b, event.Origin{}, &event.OrderCancelled{OrderID: o, UserID: "u1", ReasonCode: "timeout", Reason: "r"})
	}
	if n, parts := lag(); n != 3 || parts != 20 {
		t.Fatalf("lag %d over %d partitions, want 3 over 20", n, parts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var consumed atomic.Int64
	done := make(chan error)
	go func() {
		done <- b.Subscribe(ctx, "test-service", []string{"order-events"}, func(_ context.Context, batch []*bus.Message) error {
			consumed.Add(int64(len(batch)))
			return nil
		})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for n, _ := lag(); n != 0; n, _ = lag() {
		if time.Now().After(deadline) {
			t.Fatalf("lag still %d after the group consumed %d", n, consumed.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A round of the stream is sent in time order across topics (not topic by
// topic), audit-events included, without the audit service's AuditRecorded
// copies unless asked for by type.
func TestTailSendsInTimeOrderWithAuditEvents(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b, err := embedded.Open(filepath.Join(t.TempDir(), "eventlog.db"), embedded.Clock(func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Second) // every publish a second after the last
		return now
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	var topics []bus.TopicConfig
	for _, ts := range event.Topics {
		topics = append(topics, bus.TopicConfig{Name: string(ts.Name), Partitions: ts.Partitions, Retention: ts.Retention})
	}
	if _, err := b.EnsureTopics(context.Background(), topics); err != nil {
		t.Fatal(err)
	}
	c := &Console{Bus: b}
	c.init()
	f, err := parseStreamFilter(httptest.NewRequest("GET", "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	pos, err := c.startOffsets(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	order := event.NewID()
	// order-events, then user-events (listed first among the topics), then
	// audit-events, then order-events again.
	publish(t, b, event.Origin{}, &event.OrderCancelled{OrderID: order, UserID: "u1", ReasonCode: "timeout", Reason: "r"})
	publish(t, b, event.Origin{}, &event.UserDeactivated{UserID: "u1"})
	publish(t, b, event.Origin{}, &event.LoginFailed{Account: "x@example.com", Email: event.Plain("x@example.com"), Reason: "bad password"})
	publish(t, b, event.Origin{}, &event.AuditRecorded{Seq: 1, EventID: event.NewID(), Type: "LoginFailed", Topic: "audit-events", Key: "x@example.com", Envelope: json.RawMessage(`{}`)})
	publish(t, b, event.Origin{}, &event.AuditBlockRecorded{Chain: "audit", Part: 1, Parts: 1, Records: []event.AuditBlockRecord{{Seq: 2, EventID: event.NewID(), Type: "LoginFailed", Topic: "audit-events", Key: "x@example.com", Envelope: json.RawMessage(`{}`)}}})
	publish(t, b, event.Origin{}, &event.OrderCancelled{OrderID: event.NewID(), UserID: "u2", ReasonCode: "timeout", Reason: "r"})
	events := make(chan StreamEvent, 10)
	var dropped atomic.Int64
	if _, err := c.tailOnce(context.Background(), f, pos, events, &dropped); err != nil {
		t.Fatal(err)
	}
	close(events)
	var got []string
	for ev := range events {
		got = append(got, ev.EventType)
	}
	want := []string{"OrderCancelled", "UserDeactivated", "LoginFailed", "OrderCancelled"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("stream sent %v, want %v", got, want)
	}
}

// The live stream shows sealed personal fields as "[sealed]", never their
// ciphertext, at any depth (the address of OrderCreated, the envelope an
// AuditRecorded carries).
func TestStreamShowsSealedFieldsAsSealed(t *testing.T) {
	key := make([]byte, event.PersonalKeySize)
	email, err := event.Seal(key, "u1", "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	addr, err := event.SealAddress(key, "u1", event.Address{Name: "Ann", Line1: "1 Main St", City: "Springfield", PostalCode: "1", Country: "DE"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := event.New("order-service", event.Origin{}, &event.OrderCreated{OrderID: "o1", Customer: event.Customer{UserID: "u1", Email: email, Name: event.Plain("")},
		Currency: "EUR", ShippingAddress: addr, PlacedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	m, err := eventmsg.Encode(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := e.Marshal()
	rec, err := event.New("audit-service", event.Origin{}, &event.AuditRecorded{Seq: 1, EventID: e.EventID, Type: "OrderCreated", Topic: "order-events", Key: "o1", Envelope: raw})
	if err != nil {
		t.Fatal(err)
	}
	am, err := eventmsg.Encode(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*bus.Message{m, am} {
		ev := toStreamEvent(m)
		got := string(ev.Envelope)
		if strings.Contains(got, email.Sealed.CT) || strings.Contains(got, addr.Sealed.CT) || strings.Contains(got, `"ct"`) || strings.Count(got, event.SealedShown) != 2 {
			t.Errorf("%s streamed as %s", ev.EventType, got)
		}
		if !json.Valid(ev.Envelope) || !strings.Contains(got, `"orderId":"o1"`) && !strings.Contains(got, `"key":"o1"`) {
			t.Errorf("%s: the rest of the envelope is lost: %s", ev.EventType, got)
		}
	}
}
