package event

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Type is an event type name such as "OrderCreated".
type Type string

// Payload is the data of one event type. Every payload type in the catalog
// implements it (event/names.go) and is a pointer to a struct whose fields
// declare, in an `event:"…"` tag, what the catalog needs to know:
//
//   - `event:"key"` marks the partition key (exactly one string field): the
//     id of the entity the event is about. All events of one entity carry
//     the same key, land in one partition and stay in order.
//     `event:"key,default=anonymous"` keys an event whose field is empty
//     by "anonymous".
//   - `event:"order"` marks the id of the order whose saga the event belongs
//     to (a string field, or a Subject field: the order when its Type is
//     "order"). Such events are logged under that order by the order service
//     and listed by GET /orders/{id}/events.
//
// The tags are read once, when the type is registered; reading the fields
// per event costs a few nanoseconds and no allocation.
type Payload interface {
	// EventType names the payload's event type.
	EventType() Type
}

// Spec describes one event type of the catalog.
type Spec struct {
	Type    Type
	Version string // the version producers emit and handlers receive, "v1", "v2"…
	Topic   Topic
	// Key is the JSON name of the payload's partition key field (tagged
	// `event:"key"`), for documentation; PartitionKey reads it.
	Key string
	// Saga is the JSON name of the payload field naming the order whose saga
	// the event belongs to (tagged `event:"order"`), "" for an event of no
	// order's saga; OrderID reads it.
	Saga string
	// Extension is true for event types the saga needs that ADR-0006 does
	// not list (see docs/events.md).
	Extension bool
	// New returns a pointer to a zero payload of this type at Version.
	New func() Payload
	// Prior are the earlier versions consumers still accept, oldest first;
	// a record of one of them is upcast, step by step, to Version.
	Prior []Prior

	key        int    // index of the key field
	keyDefault string // the key of an event whose key field is empty
	order      int    // index of the order field, -1 without one
	orderIsSub bool   // the order field is a Subject
}

// Prior is an earlier version of an event type: its payload type and how
// to turn it into the next version's payload.
type Prior struct {
	Version string
	// New returns a pointer to a zero payload of this version.
	New func() any
	// Upcast returns the next version's payload (a pointer) for p, a
	// payload of this version carried by e. It must not fail on a payload
	// that passed this version's schema.
	Upcast func(e *Envelope, p any) (any, error)
	// Downcast, if set, returns this version's payload for next, a payload
	// of the next version: producers can keep emitting this version while
	// consumers that know only it are still running (see
	// Envelope.AtVersion).
	Downcast func(next any) (any, error)
	// NoDowncast says why the next version is never downcast to this one
	// (Downcast is then nil), for the error of a pin that asks for it
	// (CheckEmit).
	NoDowncast string
}

// CheckEmit reports whether producers can emit events of the type at
// version v (EVENTMART_EMIT_VERSIONS): the current version, or a prior one
// every version after it downcasts to. The error says why not.
func (s Spec) CheckEmit(v string) error {
	target := priorIndex(s, v)
	if target == len(s.Prior) && v != s.Version {
		return fmt.Errorf("event: %w: %s has no version %q (versions %v)", ErrUnsupportedVersion, s.Type, v, s.Versions())
	}
	for i := len(s.Prior) - 1; i >= target; i-- {
		p := s.Prior[i]
		switch {
		case p.NoDowncast != "":
			return fmt.Errorf("event: %w: %s is not emitted at %s: %s %s is never downcast to %s: %s", ErrUnsupportedVersion, s.Type, v, s.Type, s.versionAfter(i), p.Version, p.NoDowncast)
		case p.Downcast == nil:
			return fmt.Errorf("event: %w: %s has no downcast to %s", ErrUnsupportedVersion, s.Type, p.Version)
		}
	}
	return nil
}

// versionAfter is the version that follows s.Prior[i].
func (s Spec) versionAfter(i int) string {
	if i+1 < len(s.Prior) {
		return s.Prior[i+1].Version
	}
	return s.Version
}

// Versions returns every version of the type consumers accept, oldest
// first; the last one is Version.
func (s Spec) Versions() []string {
	vs := make([]string, 0, len(s.Prior)+1)
	for _, p := range s.Prior {
		vs = append(vs, p.Version)
	}
	return append(vs, s.Version)
}

// NewAt returns a pointer to a zero payload of version v, or nil if the
// type has no such version.
func (s Spec) NewAt(v string) any {
	if v == s.Version {
		return s.New()
	}
	for _, p := range s.Prior {
		if p.Version == v {
			return p.New()
		}
	}
	return nil
}

// hasVersion reports whether the type has version v (NewAt(v) != nil,
// without making a payload).
func (s Spec) hasVersion(v string) bool {
	return v == s.Version || priorIndex(s, v) < len(s.Prior)
}

// partitionKey returns the partition key of p, a payload of s's type.
func (s *Spec) partitionKey(p Payload) string {
	k := reflect.ValueOf(p).Elem().Field(s.key).String()
	if k == "" {
		return s.keyDefault
	}
	return k
}

// PartitionKey returns the partition key of p: its field tagged
// `event:"key"`. It returns "" if p's type is not in the catalog.
func PartitionKey(p Payload) string {
	s, ok := catalog[p.EventType()]
	if !ok {
		return ""
	}
	return s.partitionKey(p)
}

// InSaga reports whether events of the type belong to an order's saga:
// their payload has a field tagged `event:"order"`.
func (s Spec) InSaga() bool { return s.order >= 0 }

// OrderID returns the id of the order whose saga p, a payload of s's type,
// belongs to, or "" if it belongs to none (the type is no saga member, the
// field is empty, or its Subject is not an order).
func (s Spec) OrderID(p Payload) string {
	if s.order < 0 {
		return ""
	}
	f := reflect.ValueOf(p).Elem().Field(s.order)
	if !s.orderIsSub {
		return f.String()
	}
	if f.Field(subjectType).String() != "order" {
		return ""
	}
	return f.Field(subjectID).String()
}

// The indexes of Subject's fields, for OrderID.
var subjectType, subjectID = fieldIndex[Subject]("Type"), fieldIndex[Subject]("ID")

func fieldIndex[T any](name string) int {
	f, _ := reflect.TypeFor[T]().FieldByName(name)
	return f.Index[0]
}

var catalog = map[Type]Spec{}

// register adds the payload type newPayload returns to the catalog; its
// partition key and saga membership come from its fields' `event` tags
// (see Payload). It panics on a mistake: a programming error in this
// package's init.
func register(topic Topic, extension bool, newPayload func() Payload, prior ...Prior) {
	t := newPayload().EventType()
	if _, dup := catalog[t]; dup {
		panic(fmt.Sprintf("event: %s registered twice", t))
	}
	version := fmt.Sprintf("v%d", len(prior)+1)
	for i, p := range prior {
		if p.Version != fmt.Sprintf("v%d", i+1) || p.New == nil || p.Upcast == nil {
			panic(fmt.Sprintf("event: %s: prior version %d is incomplete or misnumbered", t, i+1))
		}
	}
	s := Spec{Type: t, Version: version, Topic: topic, Extension: extension, New: newPayload, Prior: prior, key: -1, order: -1}
	if err := s.readTags(reflect.TypeOf(newPayload()).Elem()); err != nil {
		panic(fmt.Sprintf("event: %s: %v", t, err))
	}
	catalog[t] = s
}

// readTags sets s's key and saga fields from the `event` tags of st.
func (s *Spec) readTags(st reflect.Type) error {
	for i := range st.NumField() {
		f := st.Field(i)
		tag, ok := f.Tag.Lookup("event")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		for _, opt := range strings.Split(tag, ",") {
			switch opt, arg, _ := strings.Cut(opt, "="); {
			case opt == "key" && f.Type.Kind() == reflect.String && s.key < 0:
				s.key, s.Key = i, name
			case opt == "default" && s.key == i:
				s.keyDefault = arg
			case opt == "order" && (f.Type.Kind() == reflect.String || f.Type == reflect.TypeFor[Subject]()) && s.order < 0:
				s.order, s.Saga, s.orderIsSub = i, name, f.Type.Kind() != reflect.String
			default:
				return fmt.Errorf("field %s: tag `event:%q`: %q is not a key or order of the right type, or is the second one", f.Name, tag, opt)
			}
		}
	}
	if s.key < 0 {
		return fmt.Errorf("no string field tagged `event:\"key\"`")
	}
	return nil
}

// Lookup returns the catalog entry of t.
func Lookup(t Type) (Spec, bool) {
	s, ok := catalog[t]
	return s, ok
}

// Catalog returns every event type's spec, sorted by topic then type.
func Catalog() []Spec {
	specs := make([]Spec, 0, len(catalog))
	for _, s := range catalog {
		specs = append(specs, s)
	}
	order := map[Topic]int{}
	for i, t := range Topics {
		order[t.Name] = i
	}
	sort.Slice(specs, func(i, j int) bool {
		if specs[i].Topic != specs[j].Topic {
			return order[specs[i].Topic] < order[specs[j].Topic]
		}
		return specs[i].Type < specs[j].Type
	})
	return specs
}

// TopicOf returns the topic events of type t are published to, or "" if t is
// not in the catalog.
func TopicOf(t Type) Topic { return catalog[t].Topic }

// noDowncastSealed is why a version that seals personal fields is not
// downcast to the one before: the downcast would write them in clear into
// the log and the audit trail, where no erasure reaches (docs/security.md).
const noDowncastSealed = "its personal fields are sealed with the user's key, and a downcast would write them in clear into the event log and the 7-year audit trail, where an erasure cannot reach them; upgrade the consumers that know only the older version instead (docs/security.md)"

func init() {
	const ext = true
	register(TopicUser, false, func() Payload { return &UserRegistered{} },
		Prior{Version: "v1", New: func() any { return &UserRegisteredV1{} }, Upcast: upcastUserRegisteredV1})
	register(TopicUser, false, func() Payload { return &UserUpdated{} },
		Prior{Version: "v1", New: func() any { return &UserUpdatedV1{} }, Upcast: upcastUserUpdatedV1})
	register(TopicUser, false, func() Payload { return &UserDeactivated{} })
	register(TopicUser, ext, func() Payload { return &SessionsRevoked{} })
	register(TopicUser, ext, func() Payload { return &RegistrationRepeated{} })
	register(TopicUser, ext, func() Payload { return &PersonalDataErased{} })

	register(TopicCatalog, false, func() Payload { return &ProductCreated{} })
	register(TopicCatalog, false, func() Payload { return &ProductUpdated{} })
	register(TopicCatalog, false, func() Payload { return &ProductDiscontinued{} })

	register(TopicInventory, false, func() Payload { return &InventoryAdjusted{} })
	register(TopicInventory, false, func() Payload { return &InventoryReserved{} })
	register(TopicInventory, false, func() Payload { return &InventoryReleased{} })
	register(TopicInventory, ext, func() Payload { return &InventoryReservationFailed{} })

	register(TopicOrder, false, func() Payload { return &CartCreated{} })
	register(TopicOrder, false, func() Payload { return &CartUpdated{} })
	register(TopicOrder, false, func() Payload { return &CartAbandoned{} })
	register(TopicOrder, false, func() Payload { return &OrderCreated{} },
		Prior{Version: "v1", New: func() any { return &OrderCreatedV1{} }, Upcast: upcastOrderCreatedV1},
		Prior{Version: "v2", New: func() any { return &OrderCreatedV2{} }, Upcast: upcastOrderCreatedV2, NoDowncast: noDowncastSealed})
	register(TopicOrder, false, func() Payload { return &OrderConfirmed{} })
	register(TopicOrder, false, func() Payload { return &OrderCancelled{} })
	register(TopicOrder, false, func() Payload { return &OrderShipped{} })

	register(TopicPayment, false, func() Payload { return &PaymentInitiated{} })
	register(TopicPayment, false, func() Payload { return &PaymentProcessed{} })
	register(TopicPayment, false, func() Payload { return &PaymentFailed{} })
	register(TopicPayment, false, func() Payload { return &PaymentRefunded{} })

	register(TopicShipping, false, func() Payload { return &ShippingCreated{} },
		Prior{Version: "v1", New: func() any { return &ShippingCreatedV1{} }, Upcast: upcastShippingCreatedV1, NoDowncast: noDowncastSealed})
	register(TopicShipping, false, func() Payload { return &ShippingDispatched{} })
	register(TopicShipping, false, func() Payload { return &ShippingDelivered{} })
	register(TopicShipping, ext, func() Payload { return &ShippingCancelled{} })

	register(TopicNotification, false, func() Payload { return &NotificationSent{} },
		Prior{Version: "v1", New: func() any { return &NotificationSentV1{} }, Upcast: upcastNotificationSentV1})
	register(TopicNotification, false, func() Payload { return &NotificationFailed{} },
		Prior{Version: "v1", New: func() any { return &NotificationFailedV1{} }, Upcast: upcastNotificationFailedV1})

	register(TopicAudit, ext, func() Payload { return &UserLoggedIn{} },
		Prior{Version: "v1", New: func() any { return &UserLoggedInV1{} }, Upcast: upcastUserLoggedInV1})
	register(TopicAudit, ext, func() Payload { return &LoginFailed{} },
		Prior{Version: "v1", New: func() any { return &LoginFailedV1{} }, Upcast: upcastLoginFailedV1})
	register(TopicAudit, ext, func() Payload { return &AccessDenied{} })
	register(TopicAudit, ext, func() Payload { return &AdminActionPerformed{} })
	register(TopicAudit, ext, func() Payload { return &AuditRecorded{} })
	register(TopicAudit, ext, func() Payload { return &AuditBlockRecorded{} })
	register(TopicAudit, ext, func() Payload { return &WebhookEndpointDisabled{} })

	register(TopicAnalytics, ext, func() Payload { return &FraudSuspected{} })
	register(TopicAnalytics, ext, func() Payload { return &OrderSlaBreached{} })
	register(TopicAnalytics, ext, func() Payload { return &StockoutWithDemand{} })
	register(TopicAnalytics, ext, func() Payload { return &PatternDetected{} })
}
