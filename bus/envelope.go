package bus

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/eventmart/eventmart/event"
)

// Header names under which envelope fields travel beside the JSON value,
// so routing, filtering and tracing need no decoding.
const (
	HeaderEventType     = "eventType"
	HeaderEventVersion  = "eventVersion"
	HeaderEventID       = "eventId"
	HeaderCorrelationID = "correlationId"
	HeaderCausationID   = "causationId"
	HeaderSource        = "source"
	HeaderTraceparent   = "traceparent" // W3C Trace Context
	HeaderTracestate    = "tracestate"
)

// CloudEvents 1.0 Kafka protocol binding, binary content mode: the same
// record read by a CloudEvents-aware tool is an event whose data is the
// record value (the ADR envelope, JSON). ce_type is
// "eventmart.<eventType>.<eventVersion>", ce_source "/eventmart/<source>",
// ce_subject the record key; correlationid and causationid are extension
// attributes.
const (
	HeaderCESpecVersion   = "ce_specversion"
	HeaderCEID            = "ce_id"
	HeaderCESource        = "ce_source"
	HeaderCEType          = "ce_type"
	HeaderCETime          = "ce_time"
	HeaderCESubject       = "ce_subject"
	HeaderCECorrelationID = "ce_correlationid"
	HeaderCECausationID   = "ce_causationid"
	HeaderContentType     = "content-type" // the binding's datacontenttype
)

// CloudEventType is the CloudEvents type of an event type at a version.
func CloudEventType(t event.Type, version string) string {
	return "eventmart." + string(t) + "." + version
}

var traceContext = propagation.TraceContext{}

// NewMessage encodes e as a message for its catalog topic, keyed by e.Key,
// with the envelope headers, the CloudEvents binary-mode ce_ headers and,
// when ctx carries a span, the W3C traceparent. It fails for a type missing from the catalog.
func NewMessage(ctx context.Context, e *event.Envelope) (*Message, error) {
	spec, ok := event.Lookup(e.EventType)
	if !ok {
		return nil, fmt.Errorf("bus: %w: %q", event.ErrUnknownType, e.EventType)
	}
	value, err := e.Marshal()
	if err != nil {
		return nil, err
	}
	m := &Message{
		Topic: string(spec.Topic),
		Key:   []byte(e.Key),
		Value: value,
		Headers: []Header{
			{HeaderEventType, []byte(e.EventType)},
			{HeaderEventVersion, []byte(e.EventVersion)},
			{HeaderEventID, []byte(e.EventID)},
			{HeaderCorrelationID, []byte(e.CorrelationID)},
			{HeaderCausationID, []byte(e.CausationID)},
			{HeaderSource, []byte(e.Source)},
			{HeaderCESpecVersion, []byte("1.0")},
			{HeaderCEID, []byte(e.EventID)},
			{HeaderCESource, []byte("/eventmart/" + e.Source)},
			{HeaderCEType, []byte(CloudEventType(e.EventType, e.EventVersion))},
			{HeaderCETime, []byte(e.Timestamp.UTC().Format(time.RFC3339Nano))},
			{HeaderCESubject, []byte(e.Key)},
			{HeaderCECorrelationID, []byte(e.CorrelationID)},
			{HeaderCECausationID, []byte(e.CausationID)},
			{HeaderContentType, []byte("application/json")},
		},
	}
	traceContext.Inject(ctx, headerCarrier{m})
	return m, nil
}

// DecodeEnvelope strictly decodes m's value (see event.Decode) and sets the
// envelope's Key from the record key.
func DecodeEnvelope(m *Message) (*event.Envelope, error) {
	e, err := event.Decode(m.Value)
	if err != nil {
		return nil, err
	}
	e.Key, e.Partition, e.Offset = string(m.Key), m.Partition, m.Offset
	return e, nil
}

// ContextWithTrace returns ctx carrying the remote span context of m's
// traceparent header, so a handler's spans join the publisher's trace.
func ContextWithTrace(ctx context.Context, m *Message) context.Context {
	return traceContext.Extract(ctx, headerCarrier{m})
}

// headerCarrier adapts a message's headers to OpenTelemetry's TextMapCarrier.
type headerCarrier struct{ m *Message }

func (c headerCarrier) Get(key string) string { return c.m.Header(key) }

func (c headerCarrier) Set(key, value string) {
	for i, h := range c.m.Headers {
		if h.Key == key {
			c.m.Headers[i].Value = []byte(value)
			return
		}
	}
	c.m.Headers = append(c.m.Headers, Header{key, []byte(value)})
}

func (c headerCarrier) Keys() []string {
	ks := make([]string, len(c.m.Headers))
	for i, h := range c.m.Headers {
		ks[i] = h.Key
	}
	return ks
}

// SetTrace sets m's traceparent (and tracestate) to the span context of
// ctx, replacing what m had; without a valid span in ctx it changes nothing.
func SetTrace(ctx context.Context, m *Message) {
	traceContext.Inject(ctx, headerCarrier{m})
}
