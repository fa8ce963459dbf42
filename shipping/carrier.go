package shipping

import (
	"context"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/settings"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// carrierSettings configure the simulated carrier (see the package comment).
type carrierSettings struct {
	enabled       bool
	dispatchAfter time.Duration
	deliverAfter  time.Duration
	tick          time.Duration
	maxPerTick    int
}

// readCarrierSettings returns the carrier the settings ask for.
func readCarrierSettings(v *settings.Values) carrierSettings {
	c := carrierSettings{tick: v.Duration(settings.CarrierTick), maxPerTick: 100}
	if !v.IsSet(settings.CarrierDispatchAfter) {
		return c
	}
	c.enabled = true
	c.dispatchAfter = v.Duration(settings.CarrierDispatchAfter)
	c.deliverAfter = c.dispatchAfter
	if v.IsSet(settings.CarrierDeliverAfter) {
		c.deliverAfter = v.Duration(settings.CarrierDeliverAfter)
	}
	return c
}

// carryOnce dispatches parcels of shipped orders whose time has come and
// delivers dispatched ones likewise, in one transaction. It returns how
// many shipments moved.
func (s *Service) carryOnce(ctx context.Context) (int, error) {
	now := s.d.Now().UTC()
	moved := 0
	err := s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		due, err := s.store.due(ctx, tx, now.Add(-s.carrier.dispatchAfter), now.Add(-s.carrier.deliverAfter), s.carrier.maxPerTick)
		if err != nil {
			return err
		}
		if err := s.store.lockBatch(ctx, tx, due, now); err != nil {
			return err
		}
		for _, orderID := range due {
			sh, err := s.store.lock(ctx, tx, orderID, now)
			if err != nil {
				return err
			}
			// The carrier's events continue the shipment's saga; nobody in
			// particular caused them, so their metadata is empty.
			o := event.Origin{CorrelationID: sh.correlationID, CausationID: sh.lastEventID}
			var p event.Payload
			// Checked again under the lock: another instance may have moved it.
			switch {
			case sh.Status == StatusCreated && sh.shippedOrder && !orZero(sh.shippedAt).After(now.Add(-s.carrier.dispatchAfter)):
				p = s.dispatch(sh, now)
			case sh.Status == StatusDispatched && !orZero(sh.DispatchedAt).After(now.Add(-s.carrier.deliverAfter)):
				p = s.deliver(sh, now)
			default:
				continue
			}
			if err := s.saveAndEmit(ctx, tx, o, sh, now, p); err != nil {
				return err
			}
			moved++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return moved, nil
}

// orZero is *t, or the zero time for nil.
func orZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
