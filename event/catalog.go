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
	Version string // the version producers emit, "v1"
	Topic   Topic
	// Key names the payload field used as partition key, for documentation.
	Key string
	// Extension is true for event types the saga needs that ADR-0006 does
	// not list (see docs/events.md).
	Extension bool
	// New returns a pointer to a zero payload of this type.
	New func() Payload
}

var catalog = map[Type]Spec{}

func register(topic Topic, key string, extension bool, newPayload func() Payload) {
	t := newPayload().EventType()
	if _, dup := catalog[t]; dup {
		panic(fmt.Sprintf("event: %s registered twice", t)) // a programming error in this package's init
	}
	catalog[t] = Spec{Type: t, Version: "v1", Topic: topic, Key: key, Extension: extension, New: newPayload}
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
	register(TopicOrder, "orderId", false, func() Payload { return &OrderCreated{} })
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
