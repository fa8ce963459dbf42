package inventory

import (
	"net/http"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Routes registers the inventory API.
func (s *Service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/inventory/{productId}", s.handleGet)
	mux.HandleFunc("PUT /api/v1/inventory/{productId}", s.handleSet)
}

// handleGet answers a product's stock to anyone: availability is public in
// the catalog too.
func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	st, err := s.store.stock(r.Context(), s.d.DB, r.PathValue("productId"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, st)
}

// handleSet: PUT /inventory/{productId} {onHand} (admins) sets the stock on
// hand and emits InventoryAdjusted (reason "set"); setting the current
// value again changes nothing and emits nothing.
func (s *Service) handleSet(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if _, err := auth.RequireAdmin(ctx); err != nil {
		httpx.Error(w, r, err)
		return
	}
	var in StockInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	if in.OnHand == nil {
		httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "onHand is required"))
		return
	}
	onHand := *in.OnHand
	if onHand < 0 || onHand > MaxOnHand {
		httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "onHand must be between 0 and %d", MaxOnHand))
		return
	}
	var st *Stock
	changed := false
	err := s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		var err error
		if st, err = s.store.lockStock(ctx, tx, r.PathValue("productId")); err != nil {
			return err
		}
		if onHand < st.Reserved {
			return eventmart.Errorf(eventmart.ECONFLICT, "onHand %d is below the %d units of product %s reserved for open orders; set at least %d",
				onHand, st.Reserved, st.ProductID, st.Reserved)
		}
		if onHand == st.OnHand {
			return nil
		}
		delta := onHand - st.OnHand
		st.OnHand, st.Version = onHand, st.Version+1
		if err := s.store.saveLevel(ctx, tx, st, s.d.Now()); err != nil {
			return err
		}
		changed = true
		return outbox.Emit(ctx, tx, service.Source(Name), service.RequestOrigin(ctx),
			&event.InventoryAdjusted{ProductID: st.ProductID, Delta: delta, Level: st.Level(), Reason: "set"})
	})
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	if changed {
		s.d.Outbox.Notify()
	}
	httpx.JSON(w, http.StatusOK, st)
}
