package eventmsg_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	ce "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/spec"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
)

// kafkaRecord reads a bus message the way the CloudEvents Kafka protocol
// binding reads a record in binary content mode (as the SDK's Kafka
// bindings do): ce_* headers are attributes or extensions, content-type is
// datacontenttype, the value is the data.
type kafkaRecord struct{ m *bus.Message }

func (r kafkaRecord) ReadEncoding() binding.Encoding {
	if r.m.Header("ce_specversion") != "" {
		return binding.EncodingBinary
	}
	return binding.EncodingUnknown
}

func (r kafkaRecord) ReadStructured(context.Context, binding.StructuredWriter) error {
	return binding.ErrNotStructured
}

func (r kafkaRecord) ReadBinary(ctx context.Context, w binding.BinaryWriter) error {
	version := spec.WithPrefix("ce_").Version(r.m.Header("ce_specversion"))
	if version == nil {
		return binding.ErrNotBinary
	}
	for _, h := range r.m.Headers {
		name := strings.ToLower(h.Key)
		switch {
		case name == "content-type":
			if err := w.SetAttribute(version.AttributeFromKind(spec.DataContentType), string(h.Value)); err != nil {
				return err
			}
		case strings.HasPrefix(name, "ce_"):
			if a := version.Attribute(name); a != nil {
				if a.Kind() == spec.SpecVersion {
					continue
				}
				if err := w.SetAttribute(a, string(h.Value)); err != nil {
					return err
				}
			} else if err := w.SetExtension(strings.TrimPrefix(name, "ce_"), string(h.Value)); err != nil {
				return err
			}
		}
	}
	return w.SetData(bytes.NewReader(r.m.Value))
}

func (r kafkaRecord) Finish(error) error { return nil }

// GetAttribute and GetExtension make it a binding.MessageMetadataReader.
func (r kafkaRecord) GetAttribute(k spec.Kind) (spec.Attribute, any) {
	version := spec.WithPrefix("ce_").Version(r.m.Header("ce_specversion"))
	if version == nil {
		return nil, nil
	}
	a := version.AttributeFromKind(k)
	if a == nil {
		return nil, nil
	}
	name := a.PrefixedName()
	if k == spec.DataContentType {
		name = "content-type"
	}
	if v := r.m.Header(name); v != "" {
		return a, v
	}
	return a, nil
}

func (r kafkaRecord) GetExtension(name string) any {
	if v := r.m.Header("ce_" + name); v != "" {
		return v
	}
	return nil
}

func TestRecordReadsAsACloudEvent(t *testing.T) {
	e, err := event.New("order-service", event.FromRequest("corr-7", event.Metadata{UserID: "u1"}),
		&event.OrderCreated{OrderID: "o-7", Customer: event.Customer{UserID: "u1"}, Currency: "EUR", PlacedAt: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	m, err := eventmsg.Encode(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := binding.ToEvent(context.Background(), kafkaRecord{m})
	if err != nil {
		t.Fatalf("not a CloudEvent: %v", err)
	}
	if err := got.Validate(); err != nil {
		t.Fatalf("invalid CloudEvent: %v", err)
	}
	if got.SpecVersion() != ce.VersionV1 || got.ID() != e.EventID || got.Type() != "eventmart.OrderCreated.v3" ||
		got.Source() != "/eventmart/order-service" || got.Subject() != "o-7" || got.DataContentType() != "application/json" {
		t.Errorf("attributes: %s", got)
	}
	if !got.Time().Equal(e.Timestamp) {
		t.Errorf("time %v, want %v", got.Time(), e.Timestamp)
	}
	ext := got.Extensions()
	if ext["correlationid"] != "corr-7" || ext["causationid"] != "corr-7" {
		t.Errorf("extensions %v", ext)
	}
	// The data is the ADR envelope, unchanged.
	var env event.Envelope
	if err := json.Unmarshal(got.Data(), &env); err != nil || env.EventID != e.EventID || env.EventType != "OrderCreated" {
		t.Errorf("data is not the envelope: %v %s", err, got.Data())
	}
}
