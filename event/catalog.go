package event

import (
	"fmt"
	"sort"
)

// Type is an event type name such as "OrderCreated".
type Type string

// Payload is the data of one event type. Every payload type in the catalog
// implements it.
type Payload interface {
	// EventType names the payload's event type.
	EventType() Type
	// PartitionKey is the id of the entity the event is about; all events of
	// one entity carry the same key, land in one partition and stay in order.
	PartitionKey() string
}

// Spec describes one event type of the catalog.
type Spec struct {
	Type    Type
	Version string // the version producers emit and handlers receive, "v1", "v2"…
	Topic   Topic
	// Key names the payload field used as partition key, for documentation.
	Key string
	// Extension is true for event types the saga needs that ADR-0006 does
	// not list (see docs/events.md).
	Extension bool
	// New returns a pointer to a zero payload of this type at Version.
	New func() Payload
	// Prior are the earlier versions consumers still accept, oldest first;
	// a record of one of them is upcast, step by step, to Version.
	Prior []Prior
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

var catalog = map[Type]Spec{}

func register(topic Topic, key string, extension bool, newPayload func() Payload, prior ...Prior) {
	t := newPayload().EventType()
	if _, dup := catalog[t]; dup {
		panic(fmt.Sprintf("event: %s registered twice", t)) // a programming error in this package's init
	}
	version := fmt.Sprintf("v%d", len(prior)+1)
	for i, p := range prior {
		if p.Version != fmt.Sprintf("v%d", i+1) || p.New == nil || p.Upcast == nil {
			panic(fmt.Sprintf("event: %s: prior version %d is incomplete or misnumbered", t, i+1))
		}
	}
	catalog[t] = Spec{Type: t, Version: version, Topic: topic, Key: key, Extension: extension, New: newPayload, Prior: prior}
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

func init() {
	const ext = true
	register(TopicUser, "userId", false, func() Payload { return &UserRegistered{} })
	register(TopicUser, "userId", false, func() Payload { return &UserUpdated{} })
	register(TopicUser, "userId", false, func() Payload { return &UserDeactivated{} })

	register(TopicCatalog, "productId", false, func() Payload { return &ProductCreated{} })
	register(TopicCatalog, "productId", false, func() Payload { return &ProductUpdated{} })
	register(TopicCatalog, "productId", false, func() Payload { return &ProductDiscontinued{} })

	register(TopicInventory, "productId", false, func() Payload { return &InventoryAdjusted{} })
	register(TopicInventory, "orderId", false, func() Payload { return &InventoryReserved{} })
	register(TopicInventory, "orderId", false, func() Payload { return &InventoryReleased{} })
	register(TopicInventory, "orderId", ext, func() Payload { return &InventoryReservationFailed{} })

	register(TopicOrder, "userId", false, func() Payload { return &CartCreated{} })
	register(TopicOrder, "userId", false, func() Payload { return &CartUpdated{} })
	register(TopicOrder, "userId", false, func() Payload { return &CartAbandoned{} })
	register(TopicOrder, "orderId", false, func() Payload { return &OrderCreated{} },
		Prior{Version: "v1", New: func() any { return &OrderCreatedV1{} }, Upcast: upcastOrderCreatedV1, Downcast: downcastOrderCreatedToV1})
	register(TopicOrder, "orderId", false, func() Payload { return &OrderConfirmed{} })
	register(TopicOrder, "orderId", false, func() Payload { return &OrderCancelled{} })
	register(TopicOrder, "orderId", false, func() Payload { return &OrderShipped{} })

	register(TopicPayment, "orderId", false, func() Payload { return &PaymentInitiated{} })
	register(TopicPayment, "orderId", false, func() Payload { return &PaymentProcessed{} })
	register(TopicPayment, "orderId", false, func() Payload { return &PaymentFailed{} })
	register(TopicPayment, "orderId", false, func() Payload { return &PaymentRefunded{} })

	register(TopicShipping, "orderId", false, func() Payload { return &ShippingCreated{} })
	register(TopicShipping, "orderId", false, func() Payload { return &ShippingDispatched{} })
	register(TopicShipping, "orderId", false, func() Payload { return &ShippingDelivered{} })
	register(TopicShipping, "orderId", ext, func() Payload { return &ShippingCancelled{} })

	register(TopicNotification, "userId", false, func() Payload { return &NotificationSent{} })
	register(TopicNotification, "userId", false, func() Payload { return &NotificationFailed{} })

	register(TopicAudit, "userId", ext, func() Payload { return &UserLoggedIn{} })
	register(TopicAudit, "email", ext, func() Payload { return &LoginFailed{} })
	register(TopicAudit, "userId", ext, func() Payload { return &AccessDenied{} })
	register(TopicAudit, "adminId", ext, func() Payload { return &AdminActionPerformed{} })
	register(TopicAudit, "key", ext, func() Payload { return &AuditRecorded{} })
}
