package cep

import "time"

// StandardRules are the rules issue 12 names, with the order SLA given:
//   - FraudSuspected: three PaymentFailed for one customer (userId) within 10 minutes;
//   - OrderSlaBreached: an OrderCreated not followed by OrderShipped or
//     OrderCancelled of the same order within orderSLA;
//   - StockoutWithDemand: a product's available stock falling to zero or
//     below (an admin's InventoryAdjusted "set" downwards, or an
//     InventoryReserved leaving it at zero) while carts hold it; a cart
//     holds what its latest CartUpdated lists, for 72 hours at most.
//
// testdata/standard-rules.json is the same set as a document (SLA 24h).
func StandardRules(orderSLA time.Duration) []Rule {
	return []Rule{
		{
			Name:        "FraudSuspected",
			Description: "three or more failed payments of one customer within 10 minutes",
			Kind:        Count,
			Count:       3,
			Within:      Duration(10 * time.Minute),
			First:       Step{EventType: "PaymentFailed", Key: "userId"},
		},
		{
			Name:        "OrderSlaBreached",
			Description: "an order neither shipped nor cancelled within the SLA",
			Kind:        NotFollowedBy,
			Within:      Duration(orderSLA),
			First:       Step{EventType: "OrderCreated", Key: "orderId"},
			Then: []Step{
				{EventType: "OrderShipped", Key: "orderId"},
				{EventType: "OrderCancelled", Key: "orderId"},
			},
		},
		{
			Name:        "StockoutWithDemand",
			Description: "a product ran out of stock while carts hold it",
			Kind:        WhileHeld,
			Within:      Duration(72 * time.Hour),
			First: Step{EventType: "CartUpdated", Each: "items", Key: "productId", Holder: "cartId",
				Where: []Condition{{Path: "quantity", Op: "gt", Value: 0}}},
			Then: []Step{
				{EventType: "InventoryAdjusted", Key: "productId", Where: []Condition{
					{Path: "reason", Op: "eq", Value: "set"},
					{Path: "delta", Op: "lt", Value: 0},
					{Path: "level.available", Op: "le", Value: 0},
				}},
				{EventType: "InventoryReserved", Each: "levels", Key: "productId", Where: []Condition{
					{Path: "available", Op: "le", Value: 0},
				}},
			},
		},
	}
}
