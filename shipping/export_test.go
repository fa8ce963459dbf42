package shipping

import (
	"context"

	"github.com/eventmart/eventmart/internal/service"
)

// Processed reports whether svc (the running shipping service) has consumed
// the event eventID, so that tests can wait for an event to be applied
// before sending the next and so control the arrival order.
func Processed(svc service.Service, eventID string) bool {
	var n int
	err := svc.(*Service).d.DB.QueryRow(context.Background(), `SELECT COUNT(*) FROM processed_events WHERE event_id = ?`, eventID).Scan(&n)
	return err == nil && n == 1
}
