package event

import "fmt"

// The upcasts of the versions before personal fields were sealed: their
// values were written in clear and stay so (Plain); only a record written
// since reads as erased once its user's key is destroyed.

func upcastUserRegisteredV1(_ *Envelope, p any) (any, error) {
	v1, ok := p.(*UserRegisteredV1)
	if !ok {
		return nil, fmt.Errorf("event: upcast UserRegistered v1: got %T", p)
	}
	return &UserRegistered{UserID: v1.UserID, Email: Plain(v1.Email), Name: Plain(v1.Name), Role: v1.Role}, nil
}

func upcastUserUpdatedV1(_ *Envelope, p any) (any, error) {
	v1, ok := p.(*UserUpdatedV1)
	if !ok {
		return nil, fmt.Errorf("event: upcast UserUpdated v1: got %T", p)
	}
	return &UserUpdated{UserID: v1.UserID, Email: Plain(v1.Email), Name: Plain(v1.Name), Changed: v1.Changed}, nil
}

func upcastUserLoggedInV1(_ *Envelope, p any) (any, error) {
	v1, ok := p.(*UserLoggedInV1)
	if !ok {
		return nil, fmt.Errorf("event: upcast UserLoggedIn v1: got %T", p)
	}
	return &UserLoggedIn{UserID: v1.UserID, Email: Plain(v1.Email), Role: v1.Role}, nil
}

func upcastLoginFailedV1(_ *Envelope, p any) (any, error) {
	v1, ok := p.(*LoginFailedV1)
	if !ok {
		return nil, fmt.Errorf("event: upcast LoginFailed v1: got %T", p)
	}
	return &LoginFailed{Account: v1.Email, Email: Plain(v1.Email), Reason: v1.Reason}, nil
}

func upcastNotificationSentV1(_ *Envelope, p any) (any, error) {
	v1, ok := p.(*NotificationSentV1)
	if !ok {
		return nil, fmt.Errorf("event: upcast NotificationSent v1: got %T", p)
	}
	return &NotificationSent{NotificationID: v1.NotificationID, UserID: v1.UserID, Channel: v1.Channel, Template: v1.Template,
		Recipient: Plain(v1.Recipient), Subject: v1.Subject}, nil
}

func upcastNotificationFailedV1(_ *Envelope, p any) (any, error) {
	v1, ok := p.(*NotificationFailedV1)
	if !ok {
		return nil, fmt.Errorf("event: upcast NotificationFailed v1: got %T", p)
	}
	return &NotificationFailed{NotificationID: v1.NotificationID, UserID: v1.UserID, Channel: v1.Channel, Template: v1.Template,
		Recipient: Plain(v1.Recipient), Subject: v1.Subject, Reason: v1.Reason, Attempts: v1.Attempts}, nil
}

func upcastOrderCreatedV2(_ *Envelope, p any) (any, error) {
	v2, ok := p.(*OrderCreatedV2)
	if !ok {
		return nil, fmt.Errorf("event: upcast OrderCreated v2: got %T", p)
	}
	return &OrderCreated{
		OrderID:  v2.OrderID,
		Customer: Customer{UserID: v2.Customer.UserID, Email: Plain(v2.Customer.Email), Name: Plain(v2.Customer.Name)},
		Lines:    v2.Lines, TotalCents: v2.TotalCents, Currency: v2.Currency, Payment: v2.Payment,
		ShippingAddress: PlainAddress(v2.ShippingAddress), FromCart: v2.FromCart, PlacedAt: v2.PlacedAt,
	}, nil
}

func upcastShippingCreatedV1(_ *Envelope, p any) (any, error) {
	v1, ok := p.(*ShippingCreatedV1)
	if !ok {
		return nil, fmt.Errorf("event: upcast ShippingCreated v1: got %T", p)
	}
	return &ShippingCreated{ShipmentID: v1.ShipmentID, OrderID: v1.OrderID, UserID: v1.UserID, Carrier: v1.Carrier,
		TrackingNumber: v1.TrackingNumber, Address: PlainAddress(v1.Address)}, nil
}
