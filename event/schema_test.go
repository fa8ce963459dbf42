package event_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/event"
)

func envelopeOf(t *testing.T, typ event.Type, version, data string) *event.Envelope {
	t.Helper()
	return &event.Envelope{EventID: event.NewID(), EventType: typ, EventVersion: version,
		Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Source: "test", CorrelationID: "c", CausationID: "c", Data: json.RawMessage(data)}
}

func TestEverySpecVersionHasASchema(t *testing.T) {
	for _, s := range event.Catalog() {
		for _, v := range s.Versions() {
			if _, ok := event.Schema(s.Type, v); !ok {
				t.Errorf("no schema for %s %s", s.Type, v)
			}
		}
	}
}

func TestPayloadRejectsWhatTheSchemaRejects(t *testing.T) {
	cases := []struct {
		name, data string
		want       []string // fragments of the violations
	}{
		{"missing required field", `{"productId":"p1","sku":"S","name":"N","currency":"EUR"}`, []string{"at '/'", "priceCents"}},
		{"wrong type", `{"productId":"p1","sku":"S","name":"N","priceCents":"12","currency":"EUR"}`, []string{"at '/priceCents'", "integer"}},
		{"unknown field", `{"productId":"p1","sku":"S","name":"N","priceCents":12,"currency":"EUR","colour":"red"}`, []string{"colour"}},
		{"fraction for an integer", `{"productId":"p1","sku":"S","name":"N","priceCents":12.5,"currency":"EUR"}`, []string{"at '/priceCents'"}},
	}
	for _, c := range cases {
		_, err := envelopeOf(t, "ProductCreated", "v1", c.data).Payload()
		var se *event.SchemaError
		if !errors.As(err, &se) || !errors.Is(err, event.ErrInvalidPayload) {
			t.Errorf("%s: Payload() = %v, want a SchemaError", c.name, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", c.name, err, w)
			}
		}
	}
	if _, err := envelopeOf(t, "ProductCreated", "v1", `{"productId":"p1","sku":"S","name":"N","priceCents":12,"currency":"EUR"}`).Payload(); err != nil {
		t.Errorf("valid payload: %v", err)
	}
}

// TestNewValidatesBuiltPayloadsUnderTest: outside tests New trusts the
// payloads it builds from Go values (see the package doc); under `go test`
// it validates them, so a producer whose code builds a payload its schema
// rejects (here raw JSON that is not the object the schema wants) fails its
// tests, and with validation off New trusts it.
func TestNewValidatesBuiltPayloadsUnderTest(t *testing.T) {
	if !event.ValidateBuilt.Load() {
		t.Fatal("ValidateBuilt is off under go test")
	}
	bad := &event.AuditRecorded{EventID: "e1", Key: "k", Envelope: json.RawMessage(`"not an object"`)}
	_, err := event.New("audit-service", event.Origin{}, bad)
	var se *event.SchemaError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "at '/envelope'") {
		t.Fatalf("New(invalid AuditRecorded) = %v, want a SchemaError at /envelope", err)
	}
	event.ValidateBuilt.Store(false)
	defer event.ValidateBuilt.Store(true)
	e, err := event.New("audit-service", event.Origin{}, bad)
	if err != nil {
		t.Fatalf("New with ValidateBuilt off = %v, want the payload trusted", err)
	}
	// A consumer still validates what it decodes: the same payload under
	// another version's bytes (any change) is checked in full.
	e.Data = json.RawMessage(strings.Replace(string(e.Data), `"e1"`, `"e2"`, 1))
	if _, err := e.Payload(); !errors.As(err, &se) {
		t.Errorf("Payload() of a changed untrusted payload = %v, want a SchemaError", err)
	}
}

func TestNewValidatesBeforePublishing(t *testing.T) {
	// A nested struct's required fields are checked too; a Go value always
	// marshals them, so the schema and the type agree: New succeeds...
	if _, err := event.New("s", event.Origin{}, &event.InventoryReserved{OrderID: "o1", Lines: []event.Line{{ProductID: "p"}}}); err != nil {
		t.Fatal(err)
	}
	// ...and the validator it runs is the consumer's: an envelope whose data
	// lost a required nested field is rejected by both sides.
	err := event.ValidatePayload("InventoryReserved", "v1", []byte(`{"orderId":"o1","lines":[{"productId":"p"}],"levels":null}`))
	if !errors.Is(err, event.ErrInvalidPayload) || !strings.Contains(err.Error(), "at '/lines/0'") || !strings.Contains(err.Error(), "quantity") {
		t.Errorf("ValidatePayload = %v", err)
	}
}

func TestOrderCreatedV1IsUpcast(t *testing.T) {
	v1 := `{"orderId":"o1","customer":{"userId":"u1","email":"a@b","name":"A"},"lines":[{"productId":"p1","sku":"S","name":"N","quantity":2,"unitPriceCents":100}],
		"totalCents":200,"currency":"EUR","payment":{"cardToken":"tok","cardLast4":"4242"},
		"shippingAddress":{"name":"A","line1":"1 St","city":"C","postalCode":"P","country":"GB"},"fromCart":true}`
	e := envelopeOf(t, "OrderCreated", "v1", v1)
	p, err := e.Payload()
	if err != nil {
		t.Fatal(err)
	}
	oc, ok := p.(*event.OrderCreated)
	if !ok {
		t.Fatalf("Payload() = %T, want the current *event.OrderCreated", p)
	}
	if oc.OrderID != "o1" || oc.TotalCents != 200 || len(oc.Lines) != 1 || !oc.FromCart || !oc.PlacedAt.Equal(e.Timestamp) {
		t.Errorf("upcast = %+v", oc)
	}
	// A v1 record with v2's field is not a v1 record.
	withField := strings.Replace(v1, `"fromCart":true`, `"fromCart":true,"placedAt":"2026-01-01T00:00:00Z"`, 1)
	if _, err := envelopeOf(t, "OrderCreated", "v1", withField).Payload(); !errors.Is(err, event.ErrInvalidPayload) {
		t.Errorf("v1 with placedAt: %v", err)
	}
	// v2 without its required field is rejected.
	if _, err := envelopeOf(t, "OrderCreated", "v2", v1).Payload(); !errors.Is(err, event.ErrInvalidPayload) || !strings.Contains(err.Error(), "placedAt") {
		t.Errorf("v2 without placedAt: %v", err)
	}
	if _, err := envelopeOf(t, "OrderCreated", "v4", v1).Payload(); !errors.Is(err, event.ErrUnsupportedVersion) || !strings.Contains(err.Error(), "v1, v2, v3") {
		t.Errorf("v4: %v", err)
	}
	// Upcast through v2 to v3: the customer and address in clear.
	if oc.Customer != (event.Customer{UserID: "u1", Email: event.Plain("a@b"), Name: event.Plain("A")}) ||
		oc.ShippingAddress != event.PlainAddress(event.Address{Name: "A", Line1: "1 St", City: "C", PostalCode: "P", Country: "GB"}) {
		t.Errorf("upcast customer %+v address %+v", oc.Customer, oc.ShippingAddress)
	}
}

// OrderCreated v3 and ShippingCreated v2 seal personal fields: they are
// never downcast (the prior versions would carry them in clear), and the
// refusal says why.
func TestAtVersionRefusesToUnsealPersonalData(t *testing.T) {
	placed := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	e, err := event.New("order-service", event.Origin{}, &event.OrderCreated{OrderID: "o1", Currency: "EUR", PlacedAt: placed})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"v1", "v2"} {
		if _, err := e.AtVersion(v); !errors.Is(err, event.ErrUnsupportedVersion) || !strings.Contains(err.Error(), "sealed") {
			t.Errorf("AtVersion(%s) = %v", v, err)
		}
	}
	spec, _ := event.Lookup("ShippingCreated")
	if err := spec.CheckEmit("v1"); !errors.Is(err, event.ErrUnsupportedVersion) || !strings.Contains(err.Error(), "sealed") {
		t.Errorf("ShippingCreated CheckEmit(v1) = %v", err)
	}
	if err := spec.CheckEmit("v2"); err != nil {
		t.Errorf("CheckEmit(current) = %v", err)
	}
	if same, err := e.AtVersion("v3"); err != nil || same != e {
		t.Errorf("AtVersion(current) = %v, %v", same, err)
	}
	if _, err := e.AtVersion("v4"); !errors.Is(err, event.ErrUnsupportedVersion) {
		t.Errorf("AtVersion(v4) = %v", err)
	}
	other, _ := event.New("s", event.Origin{}, &event.ProductDiscontinued{ProductID: "p"})
	if _, err := other.AtVersion("v0"); !errors.Is(err, event.ErrUnsupportedVersion) {
		t.Errorf("ProductDiscontinued v0: %v", err)
	}
}

// BenchmarkValidatePayload: the cost of schema validation of an
// OrderCreated with three lines: "first" for payload bytes this process
// has not seen (every order's own), "again" for bytes it validated before
// (each further consumer group in the same process).
func BenchmarkValidatePayload(b *testing.B) {
	p := &event.OrderCreated{OrderID: event.NewID(), Customer: event.Customer{UserID: "u", Email: event.Plain("e@example.com"), Name: event.Plain("N")},
		Lines: []event.OrderLine{{ProductID: "p1", SKU: "S1", Name: "A", Quantity: 1, UnitPriceCents: 100}, {ProductID: "p2", SKU: "S2", Name: "B", Quantity: 2, UnitPriceCents: 200},
			{ProductID: "p3", SKU: "S3", Name: "C", Quantity: 3, UnitPriceCents: 300}},
		TotalCents: 1400, Currency: "EUR", Payment: event.PaymentMethod{CardToken: "t", CardLast4: "4242"},
		ShippingAddress: event.PlainAddress(event.Address{Name: "N", Line1: "1", City: "C", PostalCode: "P", Country: "GB"}), PlacedAt: time.Now()}
	b.Run("first", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			b.StopTimer()
			i++
			p.TotalCents = int64(i) // new bytes
			data, _ := json.Marshal(p)
			b.StartTimer()
			if err := event.ValidatePayload("OrderCreated", "v2", data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("again", func(b *testing.B) {
		data, _ := json.Marshal(p)
		b.ReportAllocs()
		for b.Loop() {
			if err := event.ValidatePayload("OrderCreated", "v2", data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
