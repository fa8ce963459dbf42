package payment

import (
	"context"
	"fmt"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Processed reports whether svc (the running payment service) has consumed
// the event eventID, so that tests can wait for an event to be applied
// before sending the next and so control the arrival order.
func Processed(svc service.Service, eventID string) bool {
	var n int
	err := svc.(*Service).d.DB.QueryRow(context.Background(), `SELECT COUNT(*) FROM processed_events WHERE event_id = ?`, eventID).Scan(&n)
	return err == nil && n == 1
}

// PaymentID is the id of an order's payment.
var PaymentID = paymentID

// Handle runs svc's handler of e in a transaction of its own, as its
// consumer would, so that tests can run handlers of one order at the same
// moment.
func Handle(ctx context.Context, svc service.Service, e *event.Envelope) error {
	s := svc.(*Service)
	p, err := e.Payload()
	if err != nil {
		return err
	}
	return s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		switch p := p.(type) {
		case *event.OrderCreated:
			return s.onOrderCreated(ctx, tx, e, p)
		case *event.InventoryReserved:
			return s.onInventoryReserved(ctx, tx, e, p)
		case *event.OrderCancelled:
			return s.onOrderCancelled(ctx, tx, e, p)
		}
		return fmt.Errorf("no handler of %s", e.EventType)
	})
}

// RememberedVersion returns the stream version at which svc (a running
// payment service) remembers the payment of orderID, and whether it does.
func RememberedVersion(svc service.Service, orderID string) (int64, bool) {
	return svc.(*Service).store.memory.Version(ledgerStream(paymentID(orderID)))
}

// RememberedCards returns how many cards svc (a running payment service)
// remembers having vaulted.
func RememberedCards(svc service.Service) int { return svc.(*Service).cards.len() }

// InsertCard stores number as userID's card under a new token as a
// vaulting that found no card would, past the memory and the look-up: as
// the insert of a request racing another that vaulted the same card.
func InsertCard(ctx context.Context, svc service.Service, userID, number string) (Card, bool, error) {
	s := svc.(*Service)
	return s.store.insertCard(ctx, s.newCard(userID, number, s.vault.fingerprint(number)), s.d.Now().UTC())
}
