package event

import (
	"encoding/json"
	"fmt"
	"time"
)

// This file holds the payload (the envelope's "data") of every event type
// at its current version (see Spec.Version), and of the prior versions
// consumers still accept. Field names are the JSON names consumers rely on; adding an
// optional field is a backward-compatible change, anything else needs a new
// version. A field's `event` tag declares the partition key (`event:"key"`)
// and the order whose saga the event belongs to (`event:"order"`): see
// Payload.

// ---- user-events (key: userId) ----

// UserRegistered (v2): a customer or admin account was created. v2 seals
// Email and Name with the user's key (Personal); v1 records, in clear, are
// upcast.
type UserRegistered struct {
	UserID string   `json:"userId" event:"key"`
	Email  Personal `json:"email"`
	Name   Personal `json:"name"`
	Role   string   `json:"role"` // "customer" or "admin"
}

// UserRegisteredV1 is UserRegistered at v1, with Email and Name in clear.
type UserRegisteredV1 struct {
	UserID string `json:"userId"`
	Email  string `json:"email"`
	Name   string `json:"name"`
	Role   string `json:"role"`
}

// UserUpdated (v2): profile fields changed; Changed lists which. v2 seals
// Email and Name (Personal); v1 records are upcast.
type UserUpdated struct {
	UserID  string   `json:"userId" event:"key"`
	Email   Personal `json:"email"`
	Name    Personal `json:"name"`
	Changed []string `json:"changed"`
}

// UserUpdatedV1 is UserUpdated at v1, with Email and Name in clear.
type UserUpdatedV1 struct {
	UserID  string   `json:"userId"`
	Email   string   `json:"email"`
	Name    string   `json:"name"`
	Changed []string `json:"changed"`
}

// PersonalDataErased (extension): the user's personal data was erased
// (DELETE /users/{id}/personal-data): the key that sealed it is destroyed,
// so every event of the user reads its personal fields as Erased, and
// every service deletes the clear copies it keeps.
type PersonalDataErased struct {
	UserID   string    `json:"userId" event:"key"`
	ErasedAt time.Time `json:"erasedAt"`
}

// UserDeactivated: the account can no longer log in or order.
type UserDeactivated struct {
	UserID string `json:"userId" event:"key"`
	Reason string `json:"reason,omitempty"`
}

// SessionsRevoked (extension): sessions of the user ended, and every
// process refuses their tokens from then on. With SessionID, that one
// session (a logout); without, every session that started at or before
// RevokedAt except KeepSessionID (the session that changed the password;
// empty when none is kept). Reason is "logout", "password-changed",
// "deactivated" or "revoked".
type SessionsRevoked struct {
	UserID        string    `json:"userId" event:"key"`
	SessionID     string    `json:"sessionId,omitempty"`
	KeepSessionID string    `json:"keepSessionId,omitempty"`
	RevokedAt     time.Time `json:"revokedAt"`
	Reason        string    `json:"reason"`
}

// RegistrationRepeated (extension): someone tried to register an email
// that already has an account. The registration was answered as any other
// (the answer does not tell which emails have accounts); the account holder
// is told instead.
type RegistrationRepeated struct {
	UserID string `json:"userId" event:"key"`
}

// ---- catalog-events (key: productId) ----

// ProductCreated: a product entered the catalog.
type ProductCreated struct {
	ProductID  string `json:"productId" event:"key"`
	SKU        string `json:"sku"`
	Name       string `json:"name"`
	PriceCents int64  `json:"priceCents"`
	Currency   string `json:"currency"`
}

// ProductUpdated: a product's name or price changed. It carries the full new
// state, so consumers need no earlier event to apply it.
type ProductUpdated struct {
	ProductID  string `json:"productId" event:"key"`
	SKU        string `json:"sku"`
	Name       string `json:"name"`
	PriceCents int64  `json:"priceCents"`
	Currency   string `json:"currency"`
}

// ProductDiscontinued: the product can no longer be ordered.
type ProductDiscontinued struct {
	ProductID string `json:"productId" event:"key"`
}

// ---- inventory-events ----

// StockLevel is a product's stock after a change. Version grows by one with
// every change of that product, so consumers reading levels from events on
// different partitions keep only the newest.
type StockLevel struct {
	ProductID string `json:"productId"`
	OnHand    int64  `json:"onHand"`
	Reserved  int64  `json:"reserved"`
	Available int64  `json:"available"`
	Version   int64  `json:"version"`
}

// Line is a product and a quantity.
type Line struct {
	ProductID string `json:"productId"`
	Quantity  int64  `json:"quantity"`
}

// InventoryAdjusted (key: productId): a product's stock on hand changed:
// an admin set it (reason "set"), or an order's reserved goods left the
// warehouse (reason "shipped", with orderId).
type InventoryAdjusted struct {
	ProductID string     `json:"productId" event:"key"`
	Delta     int64      `json:"delta"`
	Level     StockLevel `json:"level"`
	Reason    string     `json:"reason,omitempty"`
	OrderID   string     `json:"orderId,omitempty" event:"order"`
}

// InventoryReserved (key: orderId): every line of an order was reserved, atomically.
type InventoryReserved struct {
	OrderID string       `json:"orderId" event:"key,order"`
	Lines   []Line       `json:"lines"`
	Levels  []StockLevel `json:"levels"`
}

// InventoryReleased (key: orderId): an order's reservation was given back
// (payment failed, order cancelled, saga timed out).
type InventoryReleased struct {
	OrderID string       `json:"orderId" event:"key,order"`
	Lines   []Line       `json:"lines"`
	Levels  []StockLevel `json:"levels"`
	Reason  string       `json:"reason"`
}

// Shortage is a line that could not be reserved.
type Shortage struct {
	ProductID string `json:"productId"`
	Requested int64  `json:"requested"`
	Available int64  `json:"available"`
}

// InventoryReservationFailed (key: orderId; extension): an order could not be
// reserved in full, so nothing was reserved.
type InventoryReservationFailed struct {
	OrderID   string     `json:"orderId" event:"key,order"`
	Reason    string     `json:"reason"`
	Shortages []Shortage `json:"shortages"`
}

// ---- order-events: carts (key: userId) ----
// The ADR's topic table has no cart topic; carts are the first step of an
// order, so cart events travel on order-events, keyed by their owner.

// CartItem is a line of a cart.
type CartItem struct {
	ProductID string `json:"productId"`
	Quantity  int64  `json:"quantity"`
}

// CartCreated: a customer's cart came into being with its first item.
type CartCreated struct {
	CartID string `json:"cartId"`
	UserID string `json:"userId" event:"key"`
}

// CartUpdated: the cart's full contents after a change (an empty Items means
// emptied, for example by checkout).
type CartUpdated struct {
	CartID string     `json:"cartId"`
	UserID string     `json:"userId" event:"key"`
	Items  []CartItem `json:"items"`
	Reason string     `json:"reason,omitempty"` // "", "checkout", "product-discontinued", "user-deactivated"
}

// CartAbandoned: a non-empty cart was left idle past the configured time.
type CartAbandoned struct {
	CartID    string     `json:"cartId"`
	UserID    string     `json:"userId" event:"key"`
	Items     []CartItem `json:"items"`
	IdleSince time.Time  `json:"idleSince"`
}

// ---- order-events: orders (key: orderId) ----

// OrderLine is an order line with the price at the time of ordering.
type OrderLine struct {
	ProductID      string `json:"productId"`
	SKU            string `json:"sku"`
	Name           string `json:"name"`
	Quantity       int64  `json:"quantity"`
	UnitPriceCents int64  `json:"unitPriceCents"`
}

// Address is a postal address.
type Address struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	PostalCode string `json:"postalCode"`
	Country    string `json:"country"`
}

// PaymentMethod refers to a card without carrying its number: the payment
// service vaults the card and events carry only its token.
type PaymentMethod struct {
	CardToken string `json:"cardToken"`
	CardLast4 string `json:"cardLast4"`
}

// Customer is the customer data kept on an order. Since OrderCreated v3
// the email and name are sealed with the user's key (Personal).
type Customer struct {
	UserID string   `json:"userId"`
	Email  Personal `json:"email"`
	Name   Personal `json:"name"`
}

// CustomerV1 is Customer at OrderCreated v1 and v2, in clear.
type CustomerV1 struct {
	UserID string `json:"userId"`
	Email  string `json:"email"`
	Name   string `json:"name"`
}

// OrderCreated (v3): an order was accepted (HTTP 202) and its saga starts.
// PlacedAt (since v2, required) is when the customer placed the order, as
// the order service recorded it. v3 seals the customer's email and name
// and the shipping address with the user's key (docs/security.md); v1 and
// v2 records are upcast, their values in clear. v3 is never downcast: a
// pin to v2 or v1 would write the personal data unsealed (see
// Prior.NoDowncast).
type OrderCreated struct {
	OrderID         string          `json:"orderId" event:"key,order"`
	Customer        Customer        `json:"customer"`
	Lines           []OrderLine     `json:"lines"`
	TotalCents      int64           `json:"totalCents"`
	Currency        string          `json:"currency"`
	Payment         PaymentMethod   `json:"payment"`
	ShippingAddress PersonalAddress `json:"shippingAddress"`
	FromCart        bool            `json:"fromCart"`
	PlacedAt        time.Time       `json:"placedAt"`
}

// OrderCreatedV2 is OrderCreated at v2: the customer and address in clear.
type OrderCreatedV2 struct {
	OrderID         string        `json:"orderId"`
	Customer        CustomerV1    `json:"customer"`
	Lines           []OrderLine   `json:"lines"`
	TotalCents      int64         `json:"totalCents"`
	Currency        string        `json:"currency"`
	Payment         PaymentMethod `json:"payment"`
	ShippingAddress Address       `json:"shippingAddress"`
	FromCart        bool          `json:"fromCart"`
	PlacedAt        time.Time     `json:"placedAt"`
}

// OrderCreatedV1 is OrderCreated at v1, without PlacedAt. Producers no
// longer emit it; consumers still accept it.
type OrderCreatedV1 struct {
	OrderID         string        `json:"orderId"`
	Customer        CustomerV1    `json:"customer"`
	Lines           []OrderLine   `json:"lines"`
	TotalCents      int64         `json:"totalCents"`
	Currency        string        `json:"currency"`
	Payment         PaymentMethod `json:"payment"`
	ShippingAddress Address       `json:"shippingAddress"`
	FromCart        bool          `json:"fromCart"`
}

// upcastOrderCreatedV1 turns a v1 OrderCreated into v2: a v1 order was
// placed when its event was emitted, so PlacedAt is the envelope's timestamp.
func upcastOrderCreatedV1(e *Envelope, p any) (any, error) {
	v1, ok := p.(*OrderCreatedV1)
	if !ok {
		return nil, fmt.Errorf("event: upcast OrderCreated v1: got %T", p)
	}
	return &OrderCreatedV2{
		OrderID: v1.OrderID, Customer: v1.Customer, Lines: v1.Lines, TotalCents: v1.TotalCents,
		Currency: v1.Currency, Payment: v1.Payment, ShippingAddress: v1.ShippingAddress, FromCart: v1.FromCart,
		PlacedAt: e.Timestamp,
	}, nil
}

// OrderConfirmed: stock is reserved and payment processed.
type OrderConfirmed struct {
	OrderID    string `json:"orderId" event:"key,order"`
	UserID     string `json:"userId"`
	PaymentID  string `json:"paymentId"`
	TotalCents int64  `json:"totalCents"`
	Currency   string `json:"currency"`
}

// OrderCancelled: the order ended without shipping. Reason is for people,
// ReasonCode for programs: "out-of-stock", "payment-failed",
// "customer-cancelled", "timeout", "user-deactivated".
type OrderCancelled struct {
	OrderID    string `json:"orderId" event:"key,order"`
	UserID     string `json:"userId"`
	ReasonCode string `json:"reasonCode"`
	Reason     string `json:"reason"`
}

// OrderShipped: the order is paid and its shipment exists; it is final (the
// customer is told "on its way" after it).
type OrderShipped struct {
	OrderID        string `json:"orderId" event:"key,order"`
	UserID         string `json:"userId"`
	ShipmentID     string `json:"shipmentId"`
	TrackingNumber string `json:"trackingNumber"`
}

// ---- payment-events (key: orderId; one payment per order) ----

// PaymentInitiated: a charge for an order was started.
type PaymentInitiated struct {
	PaymentID   string `json:"paymentId"`
	OrderID     string `json:"orderId" event:"key,order"`
	UserID      string `json:"userId"`
	AmountCents int64  `json:"amountCents"`
	Currency    string `json:"currency"`
	CardLast4   string `json:"cardLast4"`
}

// PaymentProcessed: the charge was approved.
type PaymentProcessed struct {
	PaymentID   string `json:"paymentId"`
	OrderID     string `json:"orderId" event:"key,order"`
	UserID      string `json:"userId"`
	AmountCents int64  `json:"amountCents"`
	Currency    string `json:"currency"`
	AuthCode    string `json:"authCode"`
}

// PaymentFailed: the charge was declined or could not be made.
type PaymentFailed struct {
	PaymentID   string `json:"paymentId"`
	OrderID     string `json:"orderId" event:"key,order"`
	UserID      string `json:"userId"`
	AmountCents int64  `json:"amountCents"`
	Currency    string `json:"currency"`
	Code        string `json:"code"` // e.g. "card-declined"
	Reason      string `json:"reason"`
}

// PaymentRefunded: an approved charge was given back.
type PaymentRefunded struct {
	PaymentID   string `json:"paymentId"`
	OrderID     string `json:"orderId" event:"key,order"`
	UserID      string `json:"userId"`
	AmountCents int64  `json:"amountCents"`
	Currency    string `json:"currency"`
	Reason      string `json:"reason"`
}

// ---- shipping-events (key: orderId; one shipment per order) ----

// ShippingCreated (v2): a shipping label was created. v2 seals the
// address with the user's key (the order's sealed address, as it came);
// v1 is upcast.
type ShippingCreated struct {
	ShipmentID     string          `json:"shipmentId"`
	OrderID        string          `json:"orderId" event:"key,order"`
	UserID         string          `json:"userId"`
	Carrier        string          `json:"carrier"`
	TrackingNumber string          `json:"trackingNumber"`
	Address        PersonalAddress `json:"address"`
}

// ShippingCreatedV1 is ShippingCreated at v1, with the address in clear.
type ShippingCreatedV1 struct {
	ShipmentID     string  `json:"shipmentId"`
	OrderID        string  `json:"orderId"`
	UserID         string  `json:"userId"`
	Carrier        string  `json:"carrier"`
	TrackingNumber string  `json:"trackingNumber"`
	Address        Address `json:"address"`
}

// ShippingDispatched: the carrier picked the parcel up.
type ShippingDispatched struct {
	ShipmentID     string `json:"shipmentId"`
	OrderID        string `json:"orderId" event:"key,order"`
	UserID         string `json:"userId"`
	TrackingNumber string `json:"trackingNumber"`
}

// ShippingDelivered: the parcel reached the customer.
type ShippingDelivered struct {
	ShipmentID     string `json:"shipmentId"`
	OrderID        string `json:"orderId" event:"key,order"`
	UserID         string `json:"userId"`
	TrackingNumber string `json:"trackingNumber"`
}

// ShippingCancelled (extension): a label was voided because its order was
// cancelled before dispatch.
type ShippingCancelled struct {
	ShipmentID string `json:"shipmentId"`
	OrderID    string `json:"orderId" event:"key,order"`
	UserID     string `json:"userId"`
	Reason     string `json:"reason"`
}

// ---- notification-events (key: userId, the recipient) ----

// NotificationSent (v2): a message was delivered to the sender (mailbox,
// SMTP). Subject says what it was about, e.g. {Type: "order", ID: orderId}.
// v2 seals Recipient with the user's key (Personal); v1 is upcast.
type NotificationSent struct {
	NotificationID string   `json:"notificationId"`
	UserID         string   `json:"userId" event:"key"`
	Channel        string   `json:"channel"` // "email"
	Template       string   `json:"template"`
	Recipient      Personal `json:"recipient"`
	Subject        Subject  `json:"subject" event:"order"`
}

// NotificationSentV1 is NotificationSent at v1, with Recipient in clear.
type NotificationSentV1 struct {
	NotificationID string  `json:"notificationId"`
	UserID         string  `json:"userId"`
	Channel        string  `json:"channel"`
	Template       string  `json:"template"`
	Recipient      string  `json:"recipient"`
	Subject        Subject `json:"subject"`
}

// NotificationFailed (v2): a message could not be sent after retries. v2
// seals Recipient (empty when there is no address) with the user's key;
// v1 is upcast.
type NotificationFailed struct {
	NotificationID string   `json:"notificationId"`
	UserID         string   `json:"userId" event:"key"`
	Channel        string   `json:"channel"`
	Template       string   `json:"template"`
	Recipient      Personal `json:"recipient"`
	Subject        Subject  `json:"subject" event:"order"`
	Reason         string   `json:"reason"`
	Attempts       int      `json:"attempts"`
}

// NotificationFailedV1 is NotificationFailed at v1, with Recipient in clear.
type NotificationFailedV1 struct {
	NotificationID string  `json:"notificationId"`
	UserID         string  `json:"userId"`
	Channel        string  `json:"channel"`
	Template       string  `json:"template"`
	Recipient      string  `json:"recipient"`
	Subject        Subject `json:"subject"`
	Reason         string  `json:"reason"`
	Attempts       int     `json:"attempts"`
}

// Subject is what a notification is about.
type Subject struct {
	Type string `json:"type"` // "order", "user", "cart"
	ID   string `json:"id"`
}

// ---- audit-events (extensions: ADR-0006 names the topic, not its events) ----

// UserLoggedIn (v2; key: userId): a user was issued a token. v2 seals
// Email (Personal); v1 records are upcast.
type UserLoggedIn struct {
	UserID string   `json:"userId" event:"key"`
	Email  Personal `json:"email"`
	Role   string   `json:"role"`
}

// UserLoggedInV1 is UserLoggedIn at v1, with Email in clear.
type UserLoggedInV1 struct {
	UserID string `json:"userId"`
	Email  string `json:"email"`
	Role   string `json:"role"`
}

// LoginFailed (v2): a token was refused. Reason is "invalid-credentials"
// (unknown email or wrong password: the API does not tell them apart),
// "deactivated", "throttled" (the first refusal of a throttling block) or
// "wrong-current-password" (PATCH /users/me).
//
// Account, the partition key, is the id of the account the typed email
// names, with Email sealed by that user's key; for an email of no account
// it is the email itself (lower-cased) and Email is in clear. v1 (key:
// the email, in clear) is upcast.
type LoginFailed struct {
	Account string   `json:"account" event:"key"`
	Email   Personal `json:"email"`
	Reason  string   `json:"reason"`
}

// LoginFailedV1 is LoginFailed at v1, keyed by the email in clear.
type LoginFailedV1 struct {
	Email  string `json:"email"`
	Reason string `json:"reason"`
}

// AccessDenied (key: userId, or "anonymous"): a request was refused with
// 401 or 403. Path is the request path without its query.
type AccessDenied struct {
	UserID string `json:"userId,omitempty" event:"key,default=anonymous"`
	Role   string `json:"role,omitempty"`
	Method string `json:"method"`
	Path   string `json:"path"`
	Status int    `json:"status"`
	Reason string `json:"reason"`
}

// AdminActionPerformed (key: adminId): an admin changed something through
// the API (a request other than GET/HEAD that succeeded). The business
// events the change caused carry the same correlationId.
type AdminActionPerformed struct {
	AdminID string `json:"adminId" event:"key"`
	Method  string `json:"method"`
	Path    string `json:"path"`
	Status  int    `json:"status"`
}

// WebhookEndpointDisabled (key: endpointId): the webhook service stopped
// delivering to an endpoint: it answered 410 Gone, or every delivery to it
// failed for longer than EVENTMART_WEBHOOK_DISABLE_AFTER. Its deliveries
// wait until an admin enables it again.
type WebhookEndpointDisabled struct {
	EndpointID string `json:"endpointId" event:"key"`
	URL        string `json:"url"`
	Reason     string `json:"reason"`
}

// AuditRecorded (key: the recorded event's key): the audit service
// appended an event to its hash-chained trail. It carries the whole record,
// so audit-events (kept 7 years) is an archive of every business event:
// replay reads it where a topic's own retention has deleted records.
// Written one per record until the trail was recorded in blocks (issue
// #19); since then the archive is AuditBlockRecorded, and the AuditRecorded
// already on the topic stay readable beside it.
type AuditRecorded struct {
	Seq        int64  `json:"seq"`
	EventID    string `json:"eventId"`
	Type       string `json:"eventType"` // the recorded event's type
	Topic      string `json:"topic"`
	Partition  int32  `json:"partition"`
	Offset     int64  `json:"offset"`
	Key        string `json:"key" event:"key"`
	RecordedAt int64  `json:"recordedAt"` // Unix milliseconds
	PrevHash   string `json:"prevHash"`
	Hash       string `json:"hash"`
	// Envelope is the recorded event's envelope, byte for byte.
	Envelope json.RawMessage `json:"envelope"`
}

// AuditBlockRecorded (key: chain, always "audit", so the blocks sit on one
// partition in chain order): the audit service appended blocks — each the
// records of one consumed batch — to its hash-chained trail. It carries a
// stretch of consecutive blocks (those of up to 100 ms, see
// audit.ArchiveDelay) with their records whole, like AuditRecorded, in seq
// order: audit-events is the archive of every business event. Each
// record's hash chains from the one before it, so a reader checks Records
// from PrevHash alone. A stretch whose records would make a record larger
// than the audit service's bound (audit.MaxArchivePart) travels as several,
// Part 1 to Parts, each a contiguous stretch of the chain.
type AuditBlockRecorded struct {
	Chain    string             `json:"chain" event:"key"`
	PrevHash string             `json:"prevHash"` // the hash the first of Records links to
	Hash     string             `json:"hash"`     // the last of Records' hash: the chain head after them
	Part     int                `json:"part"`     // 1..Parts
	Parts    int                `json:"parts"`
	Records  []AuditBlockRecord `json:"records"`
}

// AuditBlockRecord is one record of an AuditBlockRecorded: a recorded
// event where it sat on its topic, and its place in the chain.
type AuditBlockRecord struct {
	Seq        int64  `json:"seq"`
	EventID    string `json:"eventId"`
	Type       string `json:"eventType"` // the recorded event's type
	Topic      string `json:"topic"`
	Partition  int32  `json:"partition"`
	Offset     int64  `json:"offset"`
	Key        string `json:"key"`
	RecordedAt int64  `json:"recordedAt"` // Unix milliseconds
	// Envelope is the recorded event's envelope, byte for byte.
	Envelope json.RawMessage `json:"envelope"`
}

// --- analytics-events (extension, issue 12) ---

// Detection is what the analytics service's detection events carry: one
// match of a pattern rule (docs/stream-processing.md). The event types
// differ only in their name, so consumers subscribe to the ones they act on.
type Detection struct {
	DetectionID string `json:"detectionId"` // the same whenever the same events match (a replay, a backtest)
	Rule        string `json:"rule"`
	// Key is what the rule matched on: a customer id, an order id, a product id.
	Key string    `json:"key" event:"key"`
	At  time.Time `json:"at"` // event time (log time) of the match
	// Evidence are the eventIds of the events that make the match.
	Evidence []string `json:"evidence"`
	Holders  int      `json:"holders,omitempty"` // StockoutWithDemand: carts holding the product
}

// FraudSuspected: three or more PaymentFailed of one customer (Key: userId) within 10 minutes.
type FraudSuspected Detection

// OrderSlaBreached: an order (Key: orderId) neither shipped nor cancelled within the SLA.
type OrderSlaBreached Detection

// StockoutWithDemand: a product (Key: productId) ran out of stock while carts hold it.
type StockoutWithDemand Detection

// PatternDetected: a match of any other rule (Rule names it).
type PatternDetected Detection
