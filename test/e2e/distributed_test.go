package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/apptest"
)

// distributedScenarios need separate processes and direct access to Kafka.
var distributedScenarios = []struct {
	name string
	run  func(*testing.T, *shop, []string)
}{
	{"CancelAndRefundWhileShippingIsDown", cancelAndRefund},
	{"DuplicateDeliveryHasNoSecondEffect", duplicateDelivery},
	{"MalformedRecordsOnEveryTopicAreDeadLettered", malformedRecords},
}

// malformedRecords produces every kind of bad record (apptest.Poison)
// straight onto every topic of the real broker: the audit service, which
// consumes every type, dead-letters each at once with its reason; the
// order service dead-letters the unroutable ones of the topics it reads;
// every group's lag returns to zero; and an order placed afterwards ships.
func malformedRecords(t *testing.T, s *shop, brokers []string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerBatchMaxBytes(2<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	var poison []apptest.PoisonRecord
	for _, ts := range event.Topics {
		for _, p := range apptest.Poison(ts.Name, "kafka") {
			r := &kgo.Record{Topic: p.Msg.Topic, Key: p.Msg.Key, Value: p.Msg.Value}
			for _, h := range p.Msg.Headers {
				r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
			}
			recs = append(recs, r)
			poison = append(poison, p)
		}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	type letter struct {
		Topic, Key, Error string
		Permanent         bool
		Attempts          int
	}
	letters := func(svc string) map[string]letter {
		var list struct{ DeadLetters []letter }
		s.must("GET", "/api/v1/admin/dlq/"+svc+"?status=dead&limit=500", s.admin, nil, 200, &list)
		m := map[string]letter{}
		for _, d := range list.DeadLetters {
			if strings.HasSuffix(d.Key, "-kafka") {
				m[d.Topic+" "+d.Key] = d
			}
		}
		return m
	}
	s.eventually("every bad record dead-lettered by the audit service", func() bool { return len(letters("audit")) == len(poison) })
	audit := letters("audit")
	for _, p := range poison {
		d := audit[p.Msg.Topic+" "+string(p.Msg.Key)]
		if !d.Permanent || d.Attempts != 1 || !strings.Contains(d.Error, p.Reason) {
			t.Errorf("audit's dead letter of %s on %s: %+v, want permanent at the first attempt, saying %q", p.Kind, p.Msg.Topic, d, p.Reason)
		}
	}
	// The random bytes carry no type: every group reading order-events
	// dead-letters them, the shipping service among them.
	key := string(apptest.Poison(event.TopicOrder, "kafka")[0].Msg.Key)
	s.eventually("the shipping service dead-lettered the random bytes", func() bool {
		_, ok := letters("shipping")[string(event.TopicOrder)+" "+key]
		return ok
	})
	waitNoLag(t, brokers)
	tok, _ := s.customer("after-poison")
	pid := s.product(700, 2)
	id, _ := s.order(tok, line(pid, 1), cardOK)
	if o := s.final(tok, id); o.Status != "SHIPPED" {
		t.Fatalf("order after the poison: %+v", o)
	}
}

// cancelAndRefund stops the shipping service so an order stays CONFIRMED
// (charged, not shipped), cancels it, and checks the refund and the
// released stock; restarted, shipping must not create a label.
func cancelAndRefund(t *testing.T, s *shop, brokers []string) {
	tok, _ := s.customer("refund")
	pid := s.product(2000, 3)
	s.procs["shipping"].stop(t)
	id, _ := s.order(tok, line(pid, 2), cardOK)
	s.eventually("order CONFIRMED", func() bool {
		var o order
		s.must("GET", "/api/v1/orders/"+id, tok, nil, 200, &o)
		return o.Status == "CONFIRMED"
	})
	s.must("POST", "/api/v1/orders/"+id+"/cancel", tok, nil, 200, nil)
	s.eventually("refund", func() bool {
		ps := s.payments(tok, id)
		return len(ps) == 1 && ps[0].Status == "refunded"
	})
	s.eventually("stock released", func() bool { return s.stock(pid) == stock{3, 0, 3} })
	s.procs["shipping"].start(t)
	waitNoLag(t, brokers)
	var sh struct{ Shipments []struct{ Status string } }
	s.must("GET", "/api/v1/shipments?orderId="+id, tok, nil, 200, &sh)
	for _, x := range sh.Shipments {
		if x.Status != "cancelled" {
			t.Errorf("shipment %s for a cancelled order", x.Status)
		}
	}
	if o := s.final(tok, id); o.Status != "CANCELLED" || o.ReasonCode != "customer-cancelled" {
		t.Errorf("order %+v", o)
	}
}

// duplicateDelivery re-publishes every record of a finished saga, as a
// producer retry or a replay would, and checks nothing happens twice.
func duplicateDelivery(t *testing.T, s *shop, brokers []string) {
	tok, _ := s.customer("dup")
	pid := s.product(500, 10)
	id, corr := s.order(tok, line(pid, 3), cardOK)
	if o := s.final(tok, id); o.Status != "SHIPPED" {
		t.Fatalf("order %+v", o)
	}
	waitNoLag(t, brokers)
	before := len(s.sagaEvents(tok, id))

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	records := recordsOf(t, cl, corr)
	if len(records) < 8 {
		t.Fatalf("found %d records of the saga, want the whole saga", len(records))
	}
	for _, r := range records {
		r.Partition, r.Offset = 0, 0 // let the partitioner place it: same key, same partition
	}
	if err := cl.ProduceSync(context.Background(), records...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitNoLag(t, brokers)

	if ps := s.payments(tok, id); len(ps) != 1 || ps[0].Status != "processed" {
		t.Errorf("payments after duplicates: %+v", ps)
	}
	var sh struct{ Shipments []any }
	s.must("GET", "/api/v1/shipments?orderId="+id, tok, nil, 200, &sh)
	if len(sh.Shipments) != 1 {
		t.Errorf("%d shipments after duplicates", len(sh.Shipments))
	}
	if st := s.stock(pid); st != (stock{7, 0, 7}) {
		t.Errorf("stock after duplicates: %+v", st)
	}
	if after := len(s.sagaEvents(tok, id)); after != before {
		t.Errorf("saga has %d events after duplicates, %d before", after, before)
	}
}

// recordsOf reads every business topic from the start and returns the
// records of one correlation id.
func recordsOf(t *testing.T, cl *kgo.Client, correlationID string) []*kgo.Record {
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var topics []string
	for _, ts := range event.BusinessTopics() {
		topics = append(topics, string(ts))
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	offsets := map[string]map[int32]kgo.Offset{}
	remaining := 0
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			if offsets[o.Topic] == nil {
				offsets[o.Topic] = map[int32]kgo.Offset{}
			}
			offsets[o.Topic][o.Partition] = kgo.NewOffset().AtStart()
			remaining++
		}
	})
	reader, err := kgo.NewClient(kgo.SeedBrokers(cl.OptValue(kgo.SeedBrokers).([]string)...), kgo.ConsumePartitions(offsets))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	done := map[string]bool{}
	var out []*kgo.Record
	for len(done) < remaining {
		fs := reader.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("timed out reading the topics")
		}
		fs.EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "correlationId" && string(h.Value) == correlationID {
					out = append(out, r)
				}
			}
			if end, _ := ends.Lookup(r.Topic, r.Partition); r.Offset+1 >= end.Offset {
				done[fmt.Sprintf("%s/%d", r.Topic, r.Partition)] = true
			}
		})
	}
	return out
}

// waitNoLag waits until every consumer group of the services has consumed
// everything published so far: the system is quiescent.
func waitNoLag(t *testing.T, brokers []string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		groups, err := adm.ListGroups(ctx)
		var names []string
		if err == nil {
			for _, g := range groups.Groups() {
				if strings.HasSuffix(g, "-service") {
					names = append(names, g)
				}
			}
		}
		lag, err2 := adm.Lag(ctx, names...)
		cancel()
		total := int64(0)
		if err == nil && err2 == nil {
			lag.Each(func(l kadm.DescribedGroupLag) { total += l.Lag.Total() })
			if total == 0 && len(names) >= 7 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer lag did not reach zero (lag %d, groups %v, errors %v %v)", total, names, err, err2)
		}
		time.Sleep(50 * time.Millisecond) // polling the broker for the groups' progress
	}
}
