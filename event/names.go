package event

// Code below is the Payload method of each event type: its name. The
// partition key and saga membership are tags on the payload's fields
// (event/payloads.go).

func (*UserRegistered) EventType() Type             { return "UserRegistered" }
func (*UserUpdated) EventType() Type                { return "UserUpdated" }
func (*UserDeactivated) EventType() Type            { return "UserDeactivated" }
func (*SessionsRevoked) EventType() Type            { return "SessionsRevoked" }
func (*RegistrationRepeated) EventType() Type       { return "RegistrationRepeated" }
func (*PersonalDataErased) EventType() Type         { return "PersonalDataErased" }
func (*ProductCreated) EventType() Type             { return "ProductCreated" }
func (*ProductUpdated) EventType() Type             { return "ProductUpdated" }
func (*ProductDiscontinued) EventType() Type        { return "ProductDiscontinued" }
func (*InventoryAdjusted) EventType() Type          { return "InventoryAdjusted" }
func (*InventoryReserved) EventType() Type          { return "InventoryReserved" }
func (*InventoryReleased) EventType() Type          { return "InventoryReleased" }
func (*InventoryReservationFailed) EventType() Type { return "InventoryReservationFailed" }
func (*CartCreated) EventType() Type                { return "CartCreated" }
func (*CartUpdated) EventType() Type                { return "CartUpdated" }
func (*CartAbandoned) EventType() Type              { return "CartAbandoned" }
func (*OrderCreated) EventType() Type               { return "OrderCreated" }
func (*OrderConfirmed) EventType() Type             { return "OrderConfirmed" }
func (*OrderCancelled) EventType() Type             { return "OrderCancelled" }
func (*OrderShipped) EventType() Type               { return "OrderShipped" }
func (*PaymentInitiated) EventType() Type           { return "PaymentInitiated" }
func (*PaymentProcessed) EventType() Type           { return "PaymentProcessed" }
func (*PaymentFailed) EventType() Type              { return "PaymentFailed" }
func (*PaymentRefunded) EventType() Type            { return "PaymentRefunded" }
func (*ShippingCreated) EventType() Type            { return "ShippingCreated" }
func (*ShippingDispatched) EventType() Type         { return "ShippingDispatched" }
func (*ShippingDelivered) EventType() Type          { return "ShippingDelivered" }
func (*ShippingCancelled) EventType() Type          { return "ShippingCancelled" }
func (*NotificationSent) EventType() Type           { return "NotificationSent" }
func (*NotificationFailed) EventType() Type         { return "NotificationFailed" }
func (*UserLoggedIn) EventType() Type               { return "UserLoggedIn" }
func (*LoginFailed) EventType() Type                { return "LoginFailed" }
func (*AccessDenied) EventType() Type               { return "AccessDenied" }
func (*AdminActionPerformed) EventType() Type       { return "AdminActionPerformed" }
func (*AuditRecorded) EventType() Type              { return "AuditRecorded" }
func (*AuditBlockRecorded) EventType() Type         { return "AuditBlockRecorded" }
func (*WebhookEndpointDisabled) EventType() Type    { return "WebhookEndpointDisabled" }
func (*FraudSuspected) EventType() Type             { return "FraudSuspected" }
func (*OrderSlaBreached) EventType() Type           { return "OrderSlaBreached" }
func (*StockoutWithDemand) EventType() Type         { return "StockoutWithDemand" }
func (*PatternDetected) EventType() Type            { return "PatternDetected" }
