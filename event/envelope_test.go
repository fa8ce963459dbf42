package event_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/event"
)

func TestNewRootAndCausedEvents(t *testing.T) {
	root, err := event.New("order-service", event.FromRequest("req-1", event.Metadata{UserID: "u1", SessionID: "s1"}),
		&event.OrderCreated{OrderID: "o1", Customer: event.Customer{UserID: "u1"}})
	if err != nil {
		t.Fatal(err)
	}
	if root.CorrelationID != "req-1" || root.CausationID != "req-1" {
		t.Errorf("root correlation/causation = %q/%q, want req-1/req-1", root.CorrelationID, root.CausationID)
	}
	if root.EventType != "OrderCreated" || root.EventVersion != "v3" || root.Source != "order-service" || root.Key != "o1" {
		t.Errorf("root = %+v", root)
	}
	if root.Timestamp.Location() != time.UTC {
		t.Errorf("timestamp not UTC: %v", root.Timestamp)
	}
	child, err := event.New("inventory-service", root.Origin(), &event.InventoryReserved{OrderID: "o1"})
	if err != nil {
		t.Fatal(err)
	}
	if child.CorrelationID != "req-1" || child.CausationID != root.EventID || child.Metadata != root.Metadata {
		t.Errorf("child does not inherit: %+v", child)
	}
	if child.EventID == root.EventID || child.EventID < root.EventID {
		t.Errorf("event ids not unique and time-ordered: %s then %s", root.EventID, child.EventID)
	}
	noOrigin, _ := event.New("x", event.Origin{}, &event.UserDeactivated{UserID: "u"})
	if noOrigin.CorrelationID != noOrigin.EventID || noOrigin.CausationID != noOrigin.EventID {
		t.Errorf("flow started without origin: %+v", noOrigin)
	}
}

func TestEnvelopeJSONHasExactlyTheADRFields(t *testing.T) {
	e, _ := event.New("user-service", event.FromRequest("c", event.Metadata{UserID: "u"}), &event.UserRegistered{UserID: "u"})
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"eventId", "eventType", "eventVersion", "timestamp", "source", "correlationId", "causationId", "data", "metadata"}
	if len(m) != len(want) {
		t.Errorf("fields = %v, want %v", keys(m), want)
	}
	for _, f := range want {
		if _, ok := m[f]; !ok {
			t.Errorf("missing field %s in %s", f, b)
		}
	}
	var md map[string]string
	json.Unmarshal(m["metadata"], &md)
	if _, ok := md["userId"]; !ok || len(md) != 2 {
		t.Errorf("metadata = %s", m["metadata"])
	}
	var ts string
	json.Unmarshal(m["timestamp"], &ts)
	if _, err := time.Parse(time.RFC3339, ts); err != nil || !strings.HasSuffix(ts, "Z") {
		t.Errorf("timestamp %q is not RFC 3339 UTC", ts)
	}
	back, err := event.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.EventID != e.EventID || !back.Timestamp.Equal(e.Timestamp) || string(back.Data) != string(e.Data) || back.Metadata != e.Metadata {
		t.Errorf("round trip: %+v != %+v", back, e)
	}
	p, err := back.Payload()
	if err != nil {
		t.Fatal(err)
	}
	if p.(*event.UserRegistered).UserID != "u" {
		t.Errorf("payload = %+v", p)
	}
}

func keys(m map[string]json.RawMessage) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

const valid = `{"eventId":"0190a0b0-0000-7000-8000-000000000001","eventType":"OrderCreated","eventVersion":"v1","timestamp":"2026-11-24T10:00:00Z","source":"order-service","correlationId":"c","causationId":"c","data":{"orderId":"o"},"metadata":{"userId":"u","sessionId":""}}`

func TestDecodeRejectsPrecisely(t *testing.T) {
	cases := []struct {
		name, doc, field, reason string
	}{
		{"random bytes", "\x00\xff\x13garbage", "", "malformed JSON"},
		{"empty", "", "", "empty document"},
		{"array", `[1,2]`, "", "cannot unmarshal array"},
		{"unknown field", strings.Replace(valid, `"source"`, `"extra":1,"source"`, 1), "", `unknown field "extra"`},
		{"missing eventId", strings.Replace(valid, `"eventId":"0190a0b0-0000-7000-8000-000000000001",`, ``, 1), "eventId", "missing"},
		{"bad uuid", strings.Replace(valid, `0190a0b0-0000-7000-8000-000000000001`, `nope`, 1), "eventId", "not a UUID"},
		{"empty type", strings.Replace(valid, `"OrderCreated"`, `""`, 1), "eventType", "empty"},
		{"type as number", strings.Replace(valid, `"OrderCreated"`, `7`, 1), "", `field "eventType"`},
		{"bad timestamp", strings.Replace(valid, `2026-11-24T10:00:00Z`, `yesterday`, 1), "timestamp", "RFC 3339"},
		{"data not object", strings.Replace(valid, `{"orderId":"o"}`, `"x"`, 1), "data", "JSON object"},
		{"metadata unknown field", strings.Replace(valid, `"sessionId":""`, `"tenant":"t"`, 1), "metadata", "unknown field"},
		{"trailing", valid + `{}`, "", "trailing"},
		{"oversized", `{"x":"` + strings.Repeat("a", event.MaxEnvelopeSize) + `"}`, "", "exceeds"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := event.Decode([]byte(c.doc))
			var fe *event.FieldError
			if !errors.As(err, &fe) || !errors.Is(err, event.ErrInvalidEnvelope) {
				t.Fatalf("err = %v, want a FieldError", err)
			}
			if fe.Field != c.field || !strings.Contains(fe.Reason, c.reason) {
				t.Errorf("got field %q reason %q, want field %q reason containing %q", fe.Field, fe.Reason, c.field, c.reason)
			}
		})
	}
	if _, err := event.Decode([]byte(valid)); err != nil {
		t.Fatalf("valid document rejected: %v", err)
	}
}

func TestPayloadChecksCatalog(t *testing.T) {
	for _, c := range []struct {
		doc  string
		want error
	}{
		{strings.Replace(valid, `"OrderCreated"`, `"OrderTeleported"`, 1), event.ErrUnknownType},
		{strings.Replace(valid, `"v1"`, `"v9"`, 1), event.ErrUnsupportedVersion},
		{strings.Replace(valid, `{"orderId":"o"}`, `{"orderId":5}`, 1), event.ErrInvalidPayload},
	} {
		e, err := event.Decode([]byte(c.doc))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Payload(); !errors.Is(err, c.want) {
			t.Errorf("Payload() = %v, want %v", err, c.want)
		}
	}
}

func TestCatalogCoversTheADR(t *testing.T) {
	adr := map[event.Topic][]event.Type{
		event.TopicUser:         {"UserRegistered", "UserUpdated", "UserDeactivated"},
		event.TopicCatalog:      {"ProductCreated", "ProductUpdated", "ProductDiscontinued"},
		event.TopicInventory:    {"InventoryAdjusted", "InventoryReserved", "InventoryReleased"},
		event.TopicOrder:        {"CartCreated", "CartUpdated", "CartAbandoned", "OrderCreated", "OrderConfirmed", "OrderCancelled", "OrderShipped"},
		event.TopicPayment:      {"PaymentInitiated", "PaymentProcessed", "PaymentFailed", "PaymentRefunded"},
		event.TopicShipping:     {"ShippingCreated", "ShippingDispatched", "ShippingDelivered"},
		event.TopicNotification: {"NotificationSent", "NotificationFailed"},
	}
	n := 0
	for topic, types := range adr {
		for _, typ := range types {
			n++
			s, ok := event.Lookup(typ)
			wantVersion := "v1"
			switch typ {
			case "OrderCreated":
				wantVersion = "v3" // see TestOrderCreatedV1IsUpcast, TestOrderCreatedV2IsUpcast
			case "UserRegistered", "UserUpdated", "NotificationSent", "NotificationFailed", "ShippingCreated":
				wantVersion = "v2" // personal fields sealed (TestPersonalV1IsUpcast)
			}
			if !ok || s.Topic != topic || s.Version != wantVersion || s.Extension {
				t.Errorf("%s: spec %+v, want topic %s %s", typ, s, topic, wantVersion)
				continue
			}
			if p := s.New(); p.EventType() != typ {
				t.Errorf("%s: New() makes %s", typ, p.EventType())
			}
		}
	}
	for _, s := range event.Catalog() {
		if s.Extension {
			n++
		}
	}
	if got := len(event.Catalog()); got != n {
		t.Errorf("catalog has %d types, ADR list plus extensions is %d", got, n)
	}
}

func TestPartitionKeysAreEntityIDs(t *testing.T) {
	for _, c := range []struct {
		p    event.Payload
		want string
	}{
		{&event.UserUpdated{UserID: "u"}, "u"},
		{&event.ProductUpdated{ProductID: "p"}, "p"},
		{&event.InventoryAdjusted{ProductID: "p"}, "p"},
		{&event.InventoryReserved{OrderID: "o"}, "o"},
		{&event.CartUpdated{UserID: "u", CartID: "c"}, "u"},
		{&event.OrderShipped{OrderID: "o", UserID: "u"}, "o"},
		{&event.PaymentRefunded{OrderID: "o", PaymentID: "p"}, "o"},
		{&event.ShippingDelivered{OrderID: "o", ShipmentID: "s"}, "o"},
		{&event.NotificationSent{UserID: "u", NotificationID: "n"}, "u"},
		{&event.LoginFailed{Account: "a@b.c", Email: event.Plain("a@b.c")}, "a@b.c"},
		{&event.AccessDenied{UserID: "u"}, "u"},
		{&event.AccessDenied{}, "anonymous"},
		{&event.AuditRecorded{Key: "k", EventID: "e"}, "k"},
	} {
		if got := event.PartitionKey(c.p); got != c.want {
			t.Errorf("%s key = %q, want %q", c.p.EventType(), got, c.want)
		}
	}
}

// TestEventsOfAnOrderAreInItsSaga fails when a payload that carries an
// order id (a field named OrderID, or a Subject that may be an order) is not
// declared a member of the order's saga (`event:"order"`), so its events
// would be missing from GET /orders/{id}/events; and checks that OrderID
// reads the declared field.
func TestEventsOfAnOrderAreInItsSaga(t *testing.T) {
	members := 0
	for _, s := range event.Catalog() {
		p := s.New()
		v := reflect.ValueOf(p).Elem()
		var want string
		if f := v.FieldByName("OrderID"); f.IsValid() {
			f.SetString("order-1")
			want = "order-1"
		}
		if f := v.FieldByName("Subject"); f.IsValid() {
			f.Set(reflect.ValueOf(event.Subject{Type: "order", ID: "order-2"}))
			want = "order-2"
		}
		if got := s.OrderID(p); got != want || s.InSaga() != (want != "") {
			t.Errorf("%s: OrderID = %q, InSaga = %v; want %q: tag its order field `event:\"order\"`", s.Type, got, s.InSaga(), want)
		}
		if s.InSaga() {
			members++
		}
		if f := v.FieldByName("Subject"); f.IsValid() {
			f.Set(reflect.ValueOf(event.Subject{Type: "user", ID: "user-1"}))
			if got := s.OrderID(p); got != "" {
				t.Errorf("%s about a user: OrderID = %q, want none", s.Type, got)
			}
		}
	}
	if members != 18 { // the order's 4, inventory's 4, payment's 4, shipping's 4, notification's 2
		t.Errorf("%d event types in an order's saga, want 18", members)
	}
}

func TestTopicTableIsTheADRs(t *testing.T) {
	want := map[event.Topic]struct {
		parts int32
		ms    int64
	}{
		"user-events": {12, 2592000000}, "catalog-events": {8, 7776000000}, "inventory-events": {16, 604800000},
		"order-events": {20, 31536000000}, "payment-events": {12, 220752000000}, "shipping-events": {8, 31536000000},
		"notification-events": {4, 2592000000}, "audit-events": {4, 220752000000},
		"analytics-events": {4, 7776000000}, // the extension (docs/events.md)
	}
	if len(event.Topics) != len(want) {
		t.Fatalf("%d topics", len(event.Topics))
	}
	for _, ts := range event.Topics {
		w := want[ts.Name]
		if ts.Partitions != w.parts || ts.RetentionMs() != w.ms {
			t.Errorf("%s = %d partitions %d ms, want %d %d", ts.Name, ts.Partitions, ts.RetentionMs(), w.parts, w.ms)
		}
	}
}

func TestCatalogIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/events.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range event.Catalog() {
		saga := s.Saga
		if saga == "" {
			saga = "–"
		}
		row := fmt.Sprintf("| %s | %s | %s | %s | %s |", s.Topic, s.Type, s.Version, s.Key, saga)
		if !strings.Contains(string(doc), row) {
			t.Errorf("docs/events.md lacks the row %q", row)
		}
	}
}

// BenchmarkNew is the producer's cost of one event: key, marshal, schema
// check, envelope.
func BenchmarkNew(b *testing.B) {
	p := &event.PaymentProcessed{PaymentID: "p-1", OrderID: "o-1", UserID: "u-1", AmountCents: 1999, Currency: "EUR", AuthCode: "A1"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := event.New("payment-service", event.Origin{}, p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewDistinct is New over payloads that differ every time (as
// in production: no validation-cache hit), validated (under `go test`, and
// what New did for every event before ValidateBuilt) and trusted (outside
// tests): a payment and a 60-record audit block (~40 KB).
func BenchmarkNewDistinct(b *testing.B) {
	block := &event.AuditBlockRecorded{Chain: "main", PrevHash: strings.Repeat("a", 64), Hash: strings.Repeat("b", 64), Part: 1, Parts: 1}
	for i := range 60 {
		block.Records = append(block.Records, event.AuditBlockRecord{Seq: int64(i), EventID: event.NewID(), Type: "OrderCreated", Topic: "order-events",
			Envelope: json.RawMessage(`{"eventId":"` + event.NewID() + `","data":{"orderId":"o-1","lines":[{"productId":"p","quantity":1}]},"source":"` + strings.Repeat("x", 400) + `"}`)})
	}
	payloads := map[string]func(i int) event.Payload{
		"payment": func(i int) event.Payload {
			return &event.PaymentProcessed{PaymentID: fmt.Sprint("p-", i, "-", event.NewID()), OrderID: "o-1", UserID: "u-1", AmountCents: 1999, Currency: "EUR", AuthCode: "A1"}
		},
		"auditblock": func(i int) event.Payload {
			block.Records[0].Seq, block.Records[0].EventID = int64(i), event.NewID()
			return block
		},
	}
	for _, name := range []string{"payment", "auditblock"} {
		for _, validate := range []bool{true, false} {
			mode := map[bool]string{true: "validated", false: "trusted"}[validate]
			b.Run(name+"/"+mode, func(b *testing.B) {
				event.ValidateBuilt.Store(validate)
				defer event.ValidateBuilt.Store(true)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					i++
					if _, err := event.New("payment-service", event.Origin{}, payloads[name](i)); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestKeyAndOrderCostNoAllocation: the partition key and the order of an
// event are read from the fields the catalog found at registration, on
// every event, so reading them must not allocate.
func TestKeyAndOrderCostNoAllocation(t *testing.T) {
	spec, _ := event.Lookup("NotificationSent")
	p := &event.NotificationSent{UserID: "u", Subject: event.Subject{Type: "order", ID: "o"}}
	var key, order string
	if n := testing.AllocsPerRun(100, func() { key, order = event.PartitionKey(p), spec.OrderID(p) }); n != 0 {
		t.Errorf("%v allocations per event", n)
	}
	if key != "u" || order != "o" {
		t.Errorf("key %q, order %q", key, order)
	}
}
