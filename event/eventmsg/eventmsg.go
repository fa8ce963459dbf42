// Package eventmsg converts between event envelopes and bus messages: the
// envelope headers, the CloudEvents binary-mode headers and the W3C trace
// context that travel beside the JSON value. It sits between the event
// catalog and the bus so that neither depends on the other: bus and its
// drivers know only messages and headers, and event knows nothing of
// transport or tracing.
package eventmsg

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/eventmart/eventmart/bus"
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

// Encode encodes e as a message for its catalog topic, keyed by e.Key,
// with the envelope headers, the CloudEvents binary-mode ce_ headers and,
// when ctx carries a span, the W3C traceparent. It fails for a type missing from the catalog.
func Encode(ctx context.Context, e *event.Envelope) (*bus.Message, error) {
	spec, ok := event.Lookup(e.EventType)
	if !ok {
		return nil, fmt.Errorf("eventmsg: %w: %q", event.ErrUnknownType, e.EventType)
	}
	value, err := e.Marshal()
	if err != nil {
		return nil, err
	}
	// The key and the header values share one buffer: one allocation,
	// not sixteen. Each is capped at its length, so appending to one
	// cannot write into the next.
	buf := make([]byte, 0, 2*(len(e.Key)+len(e.EventID)+len(e.CorrelationID)+len(e.CausationID)+len(e.EventType)+
		len(e.EventVersion)+len(e.Source))+len("1.0/eventmart/eventmart..application/json")+len(time.RFC3339Nano))
	field := func(parts ...string) []byte {
		start := len(buf)
		for _, p := range parts {
			buf = append(buf, p...)
		}
		return buf[start:len(buf):len(buf)]
	}
	key := field(e.Key)
	start := len(buf)
	buf = e.Timestamp.UTC().AppendFormat(buf, time.RFC3339Nano)
	ceTime := buf[start:len(buf):len(buf)]
	headers := make([]bus.Header, 0, 17) // room for traceparent and tracestate
	headers = append(headers,
		bus.Header{Key: HeaderEventType, Value: field(string(e.EventType))},
		bus.Header{Key: HeaderEventVersion, Value: field(e.EventVersion)},
		bus.Header{Key: HeaderEventID, Value: field(e.EventID)},
		bus.Header{Key: HeaderCorrelationID, Value: field(e.CorrelationID)},
		bus.Header{Key: HeaderCausationID, Value: field(e.CausationID)},
		bus.Header{Key: HeaderSource, Value: field(e.Source)},
		bus.Header{Key: HeaderCESpecVersion, Value: field("1.0")},
		bus.Header{Key: HeaderCEID, Value: field(e.EventID)},
		bus.Header{Key: HeaderCESource, Value: field("/eventmart/", e.Source)},
		bus.Header{Key: HeaderCEType, Value: field("eventmart.", string(e.EventType), ".", e.EventVersion)},
		bus.Header{Key: HeaderCETime, Value: ceTime},
		bus.Header{Key: HeaderCESubject, Value: field(e.Key)},
		bus.Header{Key: HeaderCECorrelationID, Value: field(e.CorrelationID)},
		bus.Header{Key: HeaderCECausationID, Value: field(e.CausationID)},
		bus.Header{Key: HeaderContentType, Value: field("application/json")},
	)
	m := &bus.Message{Topic: string(spec.Topic), Key: key, Value: value, Headers: headers}
	traceContext.Inject(ctx, headerCarrier{m})
	return m, nil
}

// Decode strictly decodes m's value (see event.Decode) and sets the
// envelope's Key, Partition and Offset from the record.
func Decode(m *bus.Message) (*event.Envelope, error) {
	e, err := event.Decode(m.Value)
	if err != nil {
		return nil, err
	}
	e.Key, e.Partition, e.Offset = string(m.Key), m.Partition, m.Offset
	return e, nil
}

// DecodeShared is Decode for a reader that does not modify the envelope
// it gets: a message the bus hands to several readers (one with a
// bus.Memo) is decoded once, and every reader of it gets the same
// envelope. A consumer group's handlers are such readers; so are many
// groups reading one record of the embedded log.
func DecodeShared(m *bus.Message) (*event.Envelope, error) {
	r, err := DecodeRecord(m)
	if err != nil {
		return nil, err
	}
	return r.Envelope, nil
}

// Record is a message decoded for readers that modify neither its
// envelope nor its payload: for a message with a bus.Memo one Record,
// whose payload is decoded at most once, is shared by all of them.
type Record struct {
	Envelope *event.Envelope

	once sync.Once
	p    event.Payload
	err  error
}

// DecodeRecord is DecodeShared giving the Record, whose Payload is shared
// too: the consumer groups reading one record of the embedded log validate,
// unmarshal and upcast its payload once per process rather than once each.
// A message without a memo (Kafka, a read from SQLite), or a copy of one,
// gets a Record of its own at every call, as Decode and Payload would.
func DecodeRecord(m *bus.Message) (*Record, error) {
	v, err := m.Memo.Do(m, func() (any, error) {
		e, err := Decode(m)
		if err != nil {
			return nil, err
		}
		return &Record{Envelope: e}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*Record), nil
}

// Payload returns r.Envelope.Payload(), decoded on the first call only:
// every caller gets the same payload, or the same error.
func (r *Record) Payload() (event.Payload, error) {
	r.once.Do(func() { r.p, r.err = r.Envelope.Payload() })
	return r.p, r.err
}

// ContextWithTrace returns ctx carrying the remote span context of m's
// traceparent header, so a handler's spans join the publisher's trace.
func ContextWithTrace(ctx context.Context, m *bus.Message) context.Context {
	return traceContext.Extract(ctx, headerCarrier{m})
}

// headerCarrier adapts a message's headers to OpenTelemetry's TextMapCarrier.
type headerCarrier struct{ m *bus.Message }

func (c headerCarrier) Get(key string) string { return c.m.Header(key) }

func (c headerCarrier) Set(key, value string) {
	for i, h := range c.m.Headers {
		if h.Key == key {
			c.m.Headers[i].Value = []byte(value)
			return
		}
	}
	c.m.Headers = append(c.m.Headers, bus.Header{Key: key, Value: []byte(value)})
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
func SetTrace(ctx context.Context, m *bus.Message) {
	traceContext.Inject(ctx, headerCarrier{m})
}
