package event

import "time"

// Topic is a Kafka topic name from ADR-0006's topic table.
type Topic string

// The eight topics of ADR-0006.
const (
	TopicUser         Topic = "user-events"
	TopicCatalog      Topic = "catalog-events"
	TopicInventory    Topic = "inventory-events"
	TopicOrder        Topic = "order-events"
	TopicPayment      Topic = "payment-events"
	TopicShipping     Topic = "shipping-events"
	TopicNotification Topic = "notification-events"
	TopicAudit        Topic = "audit-events"
	// TopicAnalytics is an extension of the ADR's table (docs/events.md):
	// the analytics service's pattern detections (issue 12).
	TopicAnalytics Topic = "analytics-events"
)

// Day and Year are the units of the ADR's retention column. A year is 365
// days, so "7 years" is 2555 days (220752000000 ms).
const (
	Day  = 24 * time.Hour
	Year = 365 * Day
)

// TopicSpec is one row of the ADR's topic table.
type TopicSpec struct {
	Name        Topic
	Partitions  int32
	Retention   time.Duration
	Description string
}

// RetentionMs is the retention as Kafka's retention.ms.
func (t TopicSpec) RetentionMs() int64 { return t.Retention.Milliseconds() }

// Topics is ADR-0006's topic table, exactly (names, partitions,
// retention), then its documented extensions (docs/events.md).
var Topics = []TopicSpec{
	{TopicUser, 12, 30 * Day, "User lifecycle events"},
	{TopicCatalog, 8, 90 * Day, "Product and catalog changes"},
	{TopicInventory, 16, 7 * Day, "Stock level changes"},
	{TopicOrder, 20, 1 * Year, "Order lifecycle events"},
	{TopicPayment, 12, 7 * Year, "Payment processing events"},
	{TopicShipping, 8, 1 * Year, "Shipping and delivery events"},
	{TopicNotification, 4, 30 * Day, "Communication events"},
	{TopicAudit, 4, 7 * Year, "Compliance and audit trail"},
	{TopicAnalytics, 4, 90 * Day, "Analytics detections (extension): patterns the analytics service's rules matched"},
}

// BusinessTopics are the topics that carry business events: all but audit.
func BusinessTopics() []Topic {
	var ts []Topic
	for _, t := range Topics {
		if t.Name != TopicAudit {
			ts = append(ts, t.Name)
		}
	}
	return ts
}

// LookupTopic returns the ADR table's row of name.
func LookupTopic(name Topic) (TopicSpec, bool) {
	for _, t := range Topics {
		if t.Name == name {
			return t, true
		}
	}
	return TopicSpec{}, false
}
