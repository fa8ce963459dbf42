package event

// Code below is the Payload method set of each event type: its name and
// partition key. Kept together so the keys can be reviewed at a glance.

func (*UserRegistered) EventType() Type        { return "UserRegistered" }
func (p *UserRegistered) PartitionKey() string { return p.UserID }

func (*UserUpdated) EventType() Type        { return "UserUpdated" }
func (p *UserUpdated) PartitionKey() string { return p.UserID }

func (*UserDeactivated) EventType() Type        { return "UserDeactivated" }
func (p *UserDeactivated) PartitionKey() string { return p.UserID }

func (*ProductCreated) EventType() Type        { return "ProductCreated" }
func (p *ProductCreated) PartitionKey() string { return p.ProductID }

func (*ProductUpdated) EventType() Type        { return "ProductUpdated" }
func (p *ProductUpdated) PartitionKey() string { return p.ProductID }

func (*ProductDiscontinued) EventType() Type        { return "ProductDiscontinued" }
func (p *ProductDiscontinued) PartitionKey() string { return p.ProductID }

func (*InventoryAdjusted) EventType() Type        { return "InventoryAdjusted" }
func (p *InventoryAdjusted) PartitionKey() string { return p.ProductID }

func (*InventoryReserved) EventType() Type        { return "InventoryReserved" }
func (p *InventoryReserved) PartitionKey() string { return p.OrderID }

func (*InventoryReleased) EventType() Type        { return "InventoryReleased" }
func (p *InventoryReleased) PartitionKey() string { return p.OrderID }

func (*InventoryReservationFailed) EventType() Type        { return "InventoryReservationFailed" }
func (p *InventoryReservationFailed) PartitionKey() string { return p.OrderID }

func (*CartCreated) EventType() Type        { return "CartCreated" }
func (p *CartCreated) PartitionKey() string { return p.UserID }

func (*CartUpdated) EventType() Type        { return "CartUpdated" }
func (p *CartUpdated) PartitionKey() string { return p.UserID }

func (*CartAbandoned) EventType() Type        { return "CartAbandoned" }
func (p *CartAbandoned) PartitionKey() string { return p.UserID }

func (*OrderCreated) EventType() Type        { return "OrderCreated" }
func (p *OrderCreated) PartitionKey() string { return p.OrderID }

func (*OrderConfirmed) EventType() Type        { return "OrderConfirmed" }
func (p *OrderConfirmed) PartitionKey() string { return p.OrderID }

func (*OrderCancelled) EventType() Type        { return "OrderCancelled" }
func (p *OrderCancelled) PartitionKey() string { return p.OrderID }

func (*OrderShipped) EventType() Type        { return "OrderShipped" }
func (p *OrderShipped) PartitionKey() string { return p.OrderID }

func (*PaymentInitiated) EventType() Type        { return "PaymentInitiated" }
func (p *PaymentInitiated) PartitionKey() string { return p.OrderID }

func (*PaymentProcessed) EventType() Type        { return "PaymentProcessed" }
func (p *PaymentProcessed) PartitionKey() string { return p.OrderID }

func (*PaymentFailed) EventType() Type        { return "PaymentFailed" }
func (p *PaymentFailed) PartitionKey() string { return p.OrderID }

func (*PaymentRefunded) EventType() Type        { return "PaymentRefunded" }
func (p *PaymentRefunded) PartitionKey() string { return p.OrderID }

func (*ShippingCreated) EventType() Type        { return "ShippingCreated" }
func (p *ShippingCreated) PartitionKey() string { return p.OrderID }

func (*ShippingDispatched) EventType() Type        { return "ShippingDispatched" }
func (p *ShippingDispatched) PartitionKey() string { return p.OrderID }

func (*ShippingDelivered) EventType() Type        { return "ShippingDelivered" }
func (p *ShippingDelivered) PartitionKey() string { return p.OrderID }

func (*ShippingCancelled) EventType() Type        { return "ShippingCancelled" }
func (p *ShippingCancelled) PartitionKey() string { return p.OrderID }

func (*NotificationSent) EventType() Type        { return "NotificationSent" }
func (p *NotificationSent) PartitionKey() string { return p.UserID }

func (*NotificationFailed) EventType() Type        { return "NotificationFailed" }
func (p *NotificationFailed) PartitionKey() string { return p.UserID }

func (*UserLoggedIn) EventType() Type        { return "UserLoggedIn" }
func (p *UserLoggedIn) PartitionKey() string { return p.UserID }

func (*LoginFailed) EventType() Type        { return "LoginFailed" }
func (p *LoginFailed) PartitionKey() string { return p.Email }

func (*AccessDenied) EventType() Type { return "AccessDenied" }
func (p *AccessDenied) PartitionKey() string {
	if p.UserID == "" {
		return "anonymous"
	}
	return p.UserID
}

func (*AdminActionPerformed) EventType() Type        { return "AdminActionPerformed" }
func (p *AdminActionPerformed) PartitionKey() string { return p.AdminID }

func (*AuditRecorded) EventType() Type        { return "AuditRecorded" }
func (p *AuditRecorded) PartitionKey() string { return p.Key }
