package event

// ConsumerGroup is a service's consumer group and the event types its
// handlers take.
type ConsumerGroup struct {
	Group string
	Types []Type
}

// ConsumerGroups lists who consumes what, for the AsyncAPI document's
// receive operations (package asyncapi), which must be derivable from the
// event packages alone. The services' handlers are the truth: a test
// (internal/app/apptests) fails when this table and they differ.
var ConsumerGroups = []ConsumerGroup{
	{"audit-service", []Type{"AccessDenied", "AdminActionPerformed", "CartAbandoned", "CartCreated", "CartUpdated", "FraudSuspected", "InventoryAdjusted", "InventoryReleased", "InventoryReservationFailed", "InventoryReserved", "LoginFailed", "NotificationFailed", "NotificationSent", "OrderCancelled", "OrderConfirmed", "OrderCreated", "OrderShipped", "OrderSlaBreached", "PatternDetected", "PaymentFailed", "PaymentInitiated", "PaymentProcessed", "PaymentRefunded", "PersonalDataErased", "ProductCreated", "ProductDiscontinued", "ProductUpdated", "RegistrationRepeated", "SessionsRevoked", "ShippingCancelled", "ShippingCreated", "ShippingDelivered", "ShippingDispatched", "StockoutWithDemand", "UserDeactivated", "UserLoggedIn", "UserRegistered", "UserUpdated", "WebhookEndpointDisabled"}},
	{"cart-service", []Type{"OrderCreated", "ProductDiscontinued", "UserDeactivated"}},
	{"catalog-service", []Type{"InventoryAdjusted", "InventoryReleased", "InventoryReserved"}},
	{"inventory-service", []Type{"OrderCancelled", "OrderCreated", "OrderShipped", "ProductCreated", "ProductDiscontinued"}},
	{"notification-service", []Type{"OrderCancelled", "OrderShipped", "PersonalDataErased", "RegistrationRepeated", "UserDeactivated", "UserRegistered", "UserUpdated"}},
	{"order-service", []Type{"InventoryAdjusted", "InventoryReleased", "InventoryReservationFailed", "InventoryReserved", "NotificationFailed", "NotificationSent", "PaymentFailed", "PaymentInitiated", "PaymentProcessed", "PaymentRefunded", "PersonalDataErased", "ShippingCancelled", "ShippingCreated", "ShippingDelivered", "ShippingDispatched", "UserDeactivated", "UserRegistered", "UserUpdated"}},
	{"payment-service", []Type{"InventoryReserved", "OrderCancelled", "OrderCreated"}},
	{"shipping-service", []Type{"OrderCancelled", "OrderCreated", "OrderShipped", "PaymentProcessed"}},
	{"webhook-service", []Type{"CartAbandoned", "CartCreated", "CartUpdated", "FraudSuspected", "InventoryAdjusted", "InventoryReleased", "InventoryReservationFailed", "InventoryReserved", "NotificationFailed", "NotificationSent", "OrderCancelled", "OrderConfirmed", "OrderCreated", "OrderShipped", "OrderSlaBreached", "PatternDetected", "PaymentFailed", "PaymentInitiated", "PaymentProcessed", "PaymentRefunded", "PersonalDataErased", "ProductCreated", "ProductDiscontinued", "ProductUpdated", "ShippingCancelled", "ShippingCreated", "ShippingDelivered", "ShippingDispatched", "StockoutWithDemand", "UserDeactivated", "UserRegistered", "UserUpdated"}},
}
