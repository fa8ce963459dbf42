package cli

import (
	"context"
	"fmt"

	"github.com/eventmart/eventmart/analytics"
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

// allServices lists every domain service: the one place a service is
// registered. Scripts, the deployment files' tests and the cluster tests
// take the list from here (ServiceNames, `eventmart services`).
func allServices() []service.Def {
	return []service.Def{
		user.Def(), catalog.Def(), inventory.Def(), cart.Def(),
		order.Def(), payment.Def(), shipping.Def(), notification.Def(), audit.Def(), webhook.Def(), analytics.Def(),
	}
}

// ServiceNames returns the name of every domain service, in the order
// eventmart run starts them.
func ServiceNames() []string {
	defs := allServices()
	names := make([]string, len(defs))
	for i, d := range defs {
		names[i] = d.Name
	}
	return names
}

// servicesCmd prints ServiceNames, one a line, for scripts that start one
// process per service (deploy/scripts/services.sh, cluster.sh).
func servicesCmd(ctx context.Context, env *Env, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Sprintf("services: unexpected arguments %v", args)}
	}
	for _, n := range ServiceNames() {
		fmt.Fprintln(env.Stdout, n)
	}
	return nil
}
