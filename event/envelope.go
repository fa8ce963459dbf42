// Package event defines Eventmart's event envelope, the catalog of event
// types with their payloads, and the Kafka topic table of ADR-0006.
//
// It is the centre of the architecture: every service and every bus driver
// depends on it, and it depends on nothing of ours.
//
// # Schema validation: trusted and untrusted payloads
//
// Every payload decoded from the bus, an HTTP body or an import
// (Envelope.Payload, ValidatePayload) is validated against the JSON Schema
// of its type and version: it is untrusted. A payload New builds from a
// typed Go value is trusted: the schemas are generated from those types,
// so validating it again costs CPU (a JSON parse and a walk of the schema,
// 40 KB for an audit block) and finds nothing. New therefore validates only
// when ValidateBuilt is on, which it is under `go test` (testing.Testing):
// a service whose own code builds a payload its schema rejects still fails
// its tests. Outside tests New records the bytes it built as valid (see
// ValidatePayload's cache), as validating them did before, so consumers in
// the same process skip them too; a consumer in another process, which
// receives them over Kafka, validates them as any other record.
package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Envelope is the ADR-0006 event schema standard. Its JSON form is exactly
// the ADR's: eventId, eventType, eventVersion, timestamp, source,
// correlationId, causationId, data and metadata{userId, sessionId}.
type Envelope struct {
	EventID       string          `json:"eventId"`
	EventType     Type            `json:"eventType"`
	EventVersion  string          `json:"eventVersion"`
	Timestamp     time.Time       `json:"timestamp"`
	Source        string          `json:"source"`
	CorrelationID string          `json:"correlationId"`
	CausationID   string          `json:"causationId"`
	Data          json.RawMessage `json:"data"`
	Metadata      Metadata        `json:"metadata"`

	// Key is the partition key (the entity id). It is not part of the JSON
	// document: it travels as the record key.
	Key string `json:"-"`
	// Partition and Offset locate the record an envelope was decoded from
	// (set by eventmsg.Decode; -1 when it did not come from the bus).
	// Not part of the JSON document either.
	Partition int32 `json:"-"`
	Offset    int64 `json:"-"`

	// raw is the JSON e was decoded from or built with, which Marshal
	// returns while it still is e's JSON form (see Marshal); built says
	// New or NewJSON wrote it, its data compact and escaped.
	raw   []byte
	built bool
}

// Metadata carries who caused an event. Both fields may be empty for events
// caused by the system itself (a timeout, a simulated carrier).
type Metadata struct {
	UserID    string `json:"userId"`
	SessionID string `json:"sessionId"`
}

// Origin says what caused an event: the request that started a flow, or the
// event before it. Use FromRequest for the first event of a flow and
// Envelope.Origin for every event caused by another one.
type Origin struct {
	CorrelationID string
	CausationID   string
	Metadata      Metadata
}

// FromRequest is the origin of an event caused directly by a request with
// the given correlation id. Such a root event's causationId is the
// correlation id itself: the request caused it.
func FromRequest(correlationID string, md Metadata) Origin {
	return Origin{CorrelationID: correlationID, CausationID: correlationID, Metadata: md}
}

// Origin is the origin of events caused by e: they inherit e's correlationId
// and metadata and take e's eventId as their causationId.
func (e *Envelope) Origin() Origin {
	return Origin{CorrelationID: e.CorrelationID, CausationID: e.EventID, Metadata: e.Metadata}
}

// NewID returns a new time-ordered UUID (version 7) in canonical form.
func NewID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// New builds the envelope of payload p emitted by source with origin o. It
// assigns a UUIDv7 eventId and a UTC timestamp, looks up p's version in the
// catalog and sets Key to p's partition key (see PartitionKey).
//
// An origin without a correlation id starts a new flow: the event's own id
// becomes its correlationId and causationId. New fails if p's type is not in
// the catalog, p does not marshal, or, when ValidateBuilt is on (under `go
// test`), its JSON does not match the schema of its type and version (a
// *SchemaError). Off, the payload is trusted (see the package doc). Fields
// that payloads copy from requests are first cut to their bounds (Bound),
// in p itself.
func New(source string, o Origin, p Payload) (*Envelope, error) {
	spec, ok := Lookup(p.EventType())
	if !ok {
		return nil, fmt.Errorf("event: %w: %q", ErrUnknownType, p.EventType())
	}
	if b, ok := p.(bounded); ok {
		b.bound()
	}
	data, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("event: marshal %s: %w", p.EventType(), err)
	}
	if ValidateBuilt.Load() {
		if err := ValidatePayload(spec.Type, spec.Version, data); err != nil {
			return nil, err
		}
	} else {
		valid.add(validKey(spec.Type, spec.Version, data))
	}
	e := newEnvelope(spec, source, o, data, spec.partitionKey(p))
	e.raw, e.built = newJSON(e), true
	return e, nil
}

// newEnvelope is the envelope New and NewJSON build: a new id, the time
// now, the origin's ids (or the event's own for a new flow).
func newEnvelope(spec Spec, source string, o Origin, data []byte, key string) *Envelope {
	e := &Envelope{
		Partition:     -1,
		Offset:        -1,
		EventID:       NewID(),
		EventType:     spec.Type,
		EventVersion:  spec.Version,
		Timestamp:     time.Now().UTC().Truncate(time.Microsecond),
		Source:        source,
		CorrelationID: o.CorrelationID,
		CausationID:   o.CausationID,
		Data:          data,
		Metadata:      o.Metadata,
		Key:           key,
	}
	if e.CorrelationID == "" {
		e.CorrelationID = e.EventID
	}
	if e.CausationID == "" {
		e.CausationID = e.CorrelationID
	}
	return e
}

// ValidateBuilt makes New validate the payloads it builds against their
// schema, as consumers do. It is on under `go test` (testing.Testing) and
// off otherwise; see the package doc.
var ValidateBuilt atomic.Bool

func init() { ValidateBuilt.Store(testing.Testing()) }

// Errors returned (wrapped) by Decode and Envelope.Payload; test with errors.Is.
var (
	// ErrInvalidEnvelope: the record is not a well-formed envelope.
	ErrInvalidEnvelope = errors.New("invalid envelope")
	// ErrUnknownType: the eventType is not in the catalog.
	ErrUnknownType = errors.New("unknown event type")
	// ErrUnsupportedVersion: the eventType is known but not at this eventVersion.
	ErrUnsupportedVersion = errors.New("unsupported event version")
	// ErrInvalidPayload: data does not decode into the event's payload type.
	ErrInvalidPayload = errors.New("invalid payload")
)

// FieldError says which envelope field is wrong and why. It wraps
// ErrInvalidEnvelope.
type FieldError struct {
	Field  string // JSON name, "" for the document as a whole
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return "event: invalid envelope: " + e.Reason
	}
	return "event: invalid envelope: " + e.Field + ": " + e.Reason
}

// Unwrap makes errors.Is(err, ErrInvalidEnvelope) true.
func (e *FieldError) Unwrap() error { return ErrInvalidEnvelope }

// MaxEnvelopeSize is the largest envelope Decode accepts, in bytes. It
// matches Kafka's default max.message.bytes (1 MiB) less room for headers.
const MaxEnvelopeSize = 1000 * 1024

// Decode strictly parses one JSON envelope: unknown top-level fields,
// trailing data, a missing or malformed field (eventId must be a UUID,
// timestamp RFC 3339, data a JSON object) all fail with a *FieldError naming
// the field. It does not check the type against the catalog: see Payload.
// The envelope keeps b, for Marshal to return rather than encode again,
// and its Data is b's bytes, not a copy, when b is in the form Marshal
// writes: b must not be modified afterwards.
func Decode(b []byte) (*Envelope, error) {
	if len(b) > MaxEnvelopeSize {
		return nil, &FieldError{Reason: fmt.Sprintf("%d bytes exceeds the %d-byte limit", len(b), MaxEnvelopeSize)}
	}
	if e, ok := decodeValid(b); ok {
		return e, nil
	}
	return decodePrecisely(b)
}

// decodeValid is Decode's path for a well-formed envelope, every record
// but the rare bad one: an envelope in the form Marshal writes, with
// strings of printable ASCII, is cut apart where its fields are
// (cutCanonical), its data only run through the JSON scanner; any other
// takes one pass of the decoder, metadata included, into plain fields. It reports false for anything it does not accept, and
// decodePrecisely then finds what is wrong: it tells a missing field from
// an empty one, names the field, and accepts exactly what this accepts.
func decodeValid(b []byte) (*Envelope, bool) {
	if f, ok := cutCanonical(b); ok {
		return f.envelope(b)
	}
	var raw struct {
		EventID       string          `json:"eventId"`
		EventType     string          `json:"eventType"`
		EventVersion  string          `json:"eventVersion"`
		Timestamp     string          `json:"timestamp"`
		Source        string          `json:"source"`
		CorrelationID string          `json:"correlationId"`
		CausationID   string          `json:"causationId"`
		Data          json.RawMessage `json:"data"`
		Metadata      *Metadata       `json:"metadata"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields() // in metadata too
	if dec.Decode(&raw) != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return envelopeFields(raw).envelope(b)
}

// envelopeFields are an envelope's fields as decoded, before they are checked.
type envelopeFields struct {
	EventID, EventType, EventVersion, Timestamp, Source, CorrelationID, CausationID string

	Data     json.RawMessage
	Metadata *Metadata
}

// envelope checks f as decodeValid does and returns its envelope, decoded
// from b; false for anything decodePrecisely would refuse.
func (f envelopeFields) envelope(b []byte) (*Envelope, bool) {
	if f.EventID == "" || f.EventType == "" || f.EventVersion == "" || f.Timestamp == "" || f.Source == "" ||
		f.CorrelationID == "" || f.CausationID == "" || len(f.Data) == 0 || f.Data[0] != '{' ||
		len(f.EventID) != 36 || uuid.Validate(f.EventID) != nil {
		return nil, false
	}
	ts, err := time.Parse(time.RFC3339Nano, f.Timestamp)
	if err != nil {
		return nil, false
	}
	ts = ts.UTC()
	if y := ts.Year(); y < 1 || y > 9999 {
		return nil, false
	}
	e := &Envelope{
		Partition:     -1,
		Offset:        -1,
		EventID:       f.EventID,
		EventType:     Type(f.EventType),
		EventVersion:  f.EventVersion,
		Timestamp:     ts,
		Source:        f.Source,
		CorrelationID: f.CorrelationID,
		CausationID:   f.CausationID,
		Data:          f.Data,
		raw:           b,
	}
	if f.Metadata != nil {
		e.Metadata = *f.Metadata
	}
	return e, true
}

// decodePrecisely is Decode for a record decodeValid did not accept: it
// returns the *FieldError that says why (or the envelope, should it be
// valid after all).
func decodePrecisely(b []byte) (*Envelope, error) {
	// Decode into pointers first so a missing field can be told from a zero one.
	var raw struct {
		EventID       *string          `json:"eventId"`
		EventType     *string          `json:"eventType"`
		EventVersion  *string          `json:"eventVersion"`
		Timestamp     *string          `json:"timestamp"`
		Source        *string          `json:"source"`
		CorrelationID *string          `json:"correlationId"`
		CausationID   *string          `json:"causationId"`
		Data          *json.RawMessage `json:"data"`
		Metadata      *json.RawMessage `json:"metadata"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, &FieldError{Reason: jsonReason(err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &FieldError{Reason: "trailing data after the JSON object"}
	}
	e := &Envelope{Partition: -1, Offset: -1}
	var err error
	if e.EventID, err = requireUUID("eventId", raw.EventID); err != nil {
		return nil, err
	}
	if e.CorrelationID, err = requireString("correlationId", raw.CorrelationID); err != nil {
		return nil, err
	}
	if e.CausationID, err = requireString("causationId", raw.CausationID); err != nil {
		return nil, err
	}
	typ, err := requireString("eventType", raw.EventType)
	if err != nil {
		return nil, err
	}
	e.EventType = Type(typ)
	if e.EventVersion, err = requireString("eventVersion", raw.EventVersion); err != nil {
		return nil, err
	}
	if e.Source, err = requireString("source", raw.Source); err != nil {
		return nil, err
	}
	ts, err := requireString("timestamp", raw.Timestamp)
	if err != nil {
		return nil, err
	}
	if e.Timestamp, err = time.Parse(time.RFC3339Nano, ts); err != nil {
		return nil, &FieldError{Field: "timestamp", Reason: "not an RFC 3339 time: " + ts}
	}
	e.Timestamp = e.Timestamp.UTC()
	if y := e.Timestamp.Year(); y < 1 || y > 9999 {
		return nil, &FieldError{Field: "timestamp", Reason: fmt.Sprintf("year %d is outside 0001-9999", y)}
	}
	if raw.Data == nil || len(*raw.Data) == 0 || (*raw.Data)[0] != '{' {
		return nil, &FieldError{Field: "data", Reason: "must be a JSON object"}
	}
	e.Data = *raw.Data
	if raw.Metadata != nil && string(*raw.Metadata) != "null" {
		md := json.NewDecoder(bytes.NewReader(*raw.Metadata))
		md.DisallowUnknownFields()
		if err := md.Decode(&e.Metadata); err != nil {
			return nil, &FieldError{Field: "metadata", Reason: jsonReason(err)}
		}
	}
	e.raw = b
	return e, nil
}

// Payload validates e's data against the schema of e's eventType at e's
// eventVersion, decodes it into that version's payload type and, for a
// prior version, upcasts it step by step to the catalog's current version:
// handlers always receive the current version. Errors wrap ErrUnknownType,
// ErrUnsupportedVersion or ErrInvalidPayload (a *SchemaError says which
// fields are wrong).
func (e *Envelope) Payload() (Payload, error) {
	spec, p, err := e.known()
	if err != nil {
		return nil, err
	}
	if err := ValidatePayload(e.EventType, e.EventVersion, e.Data); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(e.Data, p); err != nil {
		return nil, fmt.Errorf("event: %w: %s: %s", ErrInvalidPayload, e.EventType, jsonReason(err))
	}
	for _, prior := range spec.Prior[priorIndex(spec, e.EventVersion):] {
		next, err := prior.Upcast(e, p)
		if err != nil {
			return nil, fmt.Errorf("event: %w: upcast %s %s: %v", ErrInvalidPayload, e.EventType, prior.Version, err)
		}
		p = next
	}
	cur, ok := p.(Payload)
	if !ok {
		return nil, fmt.Errorf("event: upcast %s %s gave %T, not a payload", e.EventType, e.EventVersion, p)
	}
	return cur, nil
}

// Known returns the error Payload would for an envelope whose type or
// version the catalog lacks (ErrUnknownType, ErrUnsupportedVersion), nil
// for one it has: what a reader of envelopes alone checks, without
// decoding or validating the payload.
func (e *Envelope) Known() error {
	_, _, err := e.known()
	return err
}

// known returns e's type's spec and a new payload of e's version.
func (e *Envelope) known() (Spec, any, error) {
	spec, ok := Lookup(e.EventType)
	if !ok {
		return spec, nil, fmt.Errorf("event: %w: %q", ErrUnknownType, e.EventType)
	}
	p := spec.NewAt(e.EventVersion)
	if p == nil {
		return spec, nil, fmt.Errorf("event: %w: %s %q (supported: %s)", ErrUnsupportedVersion, e.EventType, e.EventVersion, strings.Join(spec.Versions(), ", "))
	}
	return spec, p, nil
}

// AtVersion returns a copy of e, an envelope of its type's current version,
// carrying its payload at the prior version v: the payload is downcast
// step by step and must match v's schema. It lets producers keep emitting
// v while consumers that know only v are still running. e itself is
// returned when it is already at v.
func (e *Envelope) AtVersion(v string) (*Envelope, error) {
	if e.EventVersion == v {
		return e, nil
	}
	spec, ok := Lookup(e.EventType)
	if !ok {
		return nil, fmt.Errorf("event: %w: %q", ErrUnknownType, e.EventType)
	}
	target := priorIndex(spec, v)
	if e.EventVersion != spec.Version || target == len(spec.Prior) {
		return nil, fmt.Errorf("event: %w: cannot turn %s %s into %q (from the current version %s to one of its prior versions only)", ErrUnsupportedVersion, e.EventType, e.EventVersion, v, spec.Version)
	}
	if err := spec.CheckEmit(v); err != nil {
		return nil, err
	}
	p, err := e.Payload()
	if err != nil {
		return nil, err
	}
	var cur any = p
	for i := len(spec.Prior) - 1; i >= target; i-- {
		if cur, err = spec.Prior[i].Downcast(cur); err != nil {
			return nil, err
		}
	}
	data, err := json.Marshal(cur)
	if err != nil {
		return nil, fmt.Errorf("event: marshal %s %s: %w", e.EventType, v, err)
	}
	if err := ValidatePayload(e.EventType, v, data); err != nil {
		return nil, err
	}
	out := *e
	out.EventVersion, out.Data, out.raw, out.built = v, data, nil, false
	return &out, nil
}

// priorIndex is the index of version v in spec.Prior, or len(spec.Prior)
// for the current version.
func priorIndex(spec Spec, v string) int {
	for i, p := range spec.Prior {
		if p.Version == v {
			return i
		}
	}
	return len(spec.Prior)
}

func requireString(field string, v *string) (string, error) {
	if v == nil {
		return "", &FieldError{Field: field, Reason: "missing"}
	}
	if *v == "" {
		return "", &FieldError{Field: field, Reason: "empty"}
	}
	return *v, nil
}

func requireUUID(field string, v *string) (string, error) {
	s, err := requireString(field, v)
	if err != nil {
		return "", err
	}
	if _, err := uuid.Parse(s); err != nil || len(s) != 36 {
		return "", &FieldError{Field: field, Reason: "not a UUID: " + s}
	}
	return s, nil
}

// jsonReason turns encoding/json errors into a short reason with the field.
func jsonReason(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return fmt.Sprintf("field %q: expected %s, got JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
	}
	var synErr *json.SyntaxError
	if errors.As(err, &synErr) {
		return fmt.Sprintf("malformed JSON at byte %d: %v", synErr.Offset, err)
	}
	if errors.Is(err, io.EOF) {
		return "empty document"
	}
	return err.Error()
}
