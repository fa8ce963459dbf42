package cli

import (
	"github.com/eventmart/eventmart/audit"
	"github.com/eventmart/eventmart/cart"
	"github.com/eventmart/eventmart/catalog"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/inventory"
	"github.com/eventmart/eventmart/notification"
	"github.com/eventmart/eventmart/order"
	"github.com/eventmart/eventmart/payment"
	"github.com/eventmart/eventmart/shipping"
	"github.com/eventmart/eventmart/user"
	"github.com/eventmart/eventmart/webhook"
)

// allServices lists every domain service.
func allServices() []service.Def {
	return []service.Def{
		user.Def(), catalog.Def(), inventory.Def(), cart.Def(),
		order.Def(), payment.Def(), shipping.Def(), notification.Def(), audit.Def(), webhook.Def(),
	}
}
