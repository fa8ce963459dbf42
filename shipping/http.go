package shipping

import (
	"net/http"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Routes registers the shipping API.
func (s *Service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/shipments", s.handleList)
	mux.HandleFunc("POST /api/v1/shipments/{id}/dispatch", s.handleDispatch)
	mux.HandleFunc("POST /api/v1/shipments/{id}/deliver", s.handleDeliver)
}

// handleList: GET /shipments?orderId=&limit=&offset= lists the shipments of
// one order, or without orderId the caller's own. Customers see only their
// own shipments (another customer's order lists nothing); admins see any.
func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	service.ServeOrderRecords(w, r, "shipments", s.listOpened)
}

// handleDispatch: POST /shipments/{id}/dispatch (admins) hands a labelled
// parcel of a shipped order to the carrier → 200 with the shipment and
// ShippingDispatched; 409 in any other state.
func (s *Service) handleDispatch(w http.ResponseWriter, r *http.Request) {
	s.advanceByHand(w, r, func(sh *Shipment, now time.Time) (event.Payload, error) {
		if sh.Status != StatusCreated {
			return nil, eventmart.Errorf(eventmart.ECONFLICT, "shipment %s is %s; only a created shipment can be dispatched", sh.ID, sh.Status)
		}
		if !sh.shippedOrder {
			return nil, eventmart.Errorf(eventmart.ECONFLICT, "order %s has not shipped yet; its parcel can be dispatched once the order is shipped", sh.OrderID)
		}
		return s.dispatch(sh, now), nil
	})
}

// handleDeliver: POST /shipments/{id}/deliver (admins) marks a dispatched
// parcel delivered → 200 with the shipment and ShippingDelivered; 409 in
// any other state.
func (s *Service) handleDeliver(w http.ResponseWriter, r *http.Request) {
	s.advanceByHand(w, r, func(sh *Shipment, now time.Time) (event.Payload, error) {
		if sh.Status != StatusDispatched {
			return nil, eventmart.Errorf(eventmart.ECONFLICT, "shipment %s is %s; only a dispatched shipment can be delivered", sh.ID, sh.Status)
		}
		return s.deliver(sh, now), nil
	})
}

// advanceByHand runs an admin's change of one shipment: lock it, let fn
// check and change it and name the event, store both in one transaction.
func (s *Service) advanceByHand(w http.ResponseWriter, r *http.Request, fn func(*Shipment, time.Time) (event.Payload, error)) {
	ctx := r.Context()
	if _, err := auth.RequireAdmin(ctx); err != nil {
		httpx.Error(w, r, err)
		return
	}
	var sh *Shipment
	err := s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		now := s.d.Now().UTC()
		var err error
		if sh, err = s.store.lockByID(ctx, tx, r.PathValue("id"), now); err != nil {
			return err
		}
		p, err := fn(sh, now)
		if err != nil {
			return err
		}
		return s.saveAndEmit(ctx, tx, service.RequestOrigin(ctx), sh, now, p)
	})
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	s.d.Outbox.Notify()
	if sh, err = s.openShipment(ctx, sh); err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, sh)
}
