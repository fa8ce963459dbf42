package inventory

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Routes registers the inventory API.
func (s *Service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/inventory/{productId}", s.handleGet)
	mux.HandleFunc("PUT /api/v1/inventory/{productId}", s.handleSet)
	mux.HandleFunc("GET /api/v1/inventory/{productId}/history", s.handleHistory)
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
	id := r.PathValue("productId")
	st, changed, err := s.setOnHand(ctx, id, onHand)
	if errors.Is(err, ErrUnknownProduct) && s.catalogHas(ctx, id) {
		// The catalog created the product, and its ProductCreated event is
		// on its way here: wait for it rather than answer 404 to an admin
		// who set the stock right after creating the product.
		st, changed, err = s.setOnceKnown(ctx, id, onHand)
	}
	if errors.Is(err, ErrUnknownProduct) {
		err = eventmart.Errorf(eventmart.ENOTFOUND, "unknown product %s", id)
	}
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	if changed {
		s.d.Outbox.Notify()
	}
	httpx.JSON(w, http.StatusOK, st)
}

// knownWait bounds how long a stock update waits for the ProductCreated
// event of a product the catalog has.
const knownWait = 10 * time.Second

// catalogHas asks the catalog whether it has product id; an error counts
// as no (the 404 stands).
func (s *Service) catalogHas(ctx context.Context, id string) bool {
	if s.d.Call == nil {
		return false
	}
	var p struct{ ID string }
	return s.d.CallJSON(ctx, "catalog", "GET", "/api/v1/products/"+url.PathEscape(id), nil, &p) == nil && p.ID == id
}

// setOnceKnown retries setOnHand, after growing pauses, while the product
// is unknown here, for up to knownWait.
func (s *Service) setOnceKnown(ctx context.Context, id string, onHand int64) (*Stock, bool, error) {
	deadline := time.Now().Add(knownWait)
	for pause := 5 * time.Millisecond; ; pause = min(2*pause, 200*time.Millisecond) {
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
		st, changed, err := s.setOnHand(ctx, id, onHand)
		if !errors.Is(err, ErrUnknownProduct) || time.Now().After(deadline) {
			return st, changed, err
		}
	}
}

// setOnHand sets product id's stock on hand, reporting whether it changed;
// ErrUnknownProduct if inventory has not learnt of the product.
func (s *Service) setOnHand(ctx context.Context, id string, onHand int64) (*Stock, bool, error) {
	var st *Stock
	changed := false
	// A conflicting append (a reservation committed meanwhile) decides
	// again on the new stock, in a new transaction.
	err := eventstore.Retry(ctx, s.d.DB, maxTries, func(tx *sqldb.Tx) error {
		changed = false
		if err := lockStock(ctx, tx, id); err != nil { // as batches do: see Prepare
			return err
		}
		cur, err := s.store.loadStock(ctx, tx, id)
		if err != nil {
			return err
		}
		evs, err := decide(cur.State, StockCommand{Kind: SetOnHand, OnHand: onHand, Reason: "set"})
		switch {
		case errors.Is(err, ErrUnknownProduct):
			return err
		case errors.Is(err, ErrBelowReserved):
			return eventmart.Errorf(eventmart.ECONFLICT, "onHand %d is below the %d units of product %s reserved for open orders; set at least %d",
				onHand, cur.State.Reserved, id, cur.State.Reserved)
		case err != nil:
			return err
		}
		if len(evs) == 0 {
			st = cur.view()
			return nil
		}
		origin := service.RequestOrigin(ctx)
		if err := s.store.saveStock(ctx, tx, cur, eventstore.OriginMetadata(origin), s.d.Now(), evs...); err != nil {
			return err
		}
		st, changed = cur.view(), true
		return outbox.Emit(ctx, tx, service.Source(Name), origin,
			&event.InventoryAdjusted{ProductID: id, Delta: evs[0].Delta, Level: st.Level(), Reason: "set"})
	})
	return st, changed, err
}

// handleHistory: GET /inventory/{productId}/history?from=&to=&limit=&offset=
// (admins) → {"history": [Movement]}: the product's stock movements
// recorded from from to to (RFC 3339, both optional and inclusive), oldest
// first, each with the stock after it, its stream version and time.
func (s *Service) handleHistory(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if _, err := auth.RequireAdmin(ctx); err != nil {
		httpx.Error(w, r, err)
		return
	}
	limit, offset, err := httpx.Page(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	var bounds [2]time.Time
	for i, name := range []string{"from", "to"} {
		v := r.URL.Query().Get(name)
		if v == "" {
			continue
		}
		if bounds[i], err = time.Parse(time.RFC3339Nano, v); err != nil {
			httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "%s: must be an RFC 3339 time such as 2026-01-02T15:04:05Z", name))
			return
		}
	}
	h, err := history(ctx, s.d.DB, r.PathValue("productId"), bounds[0], bounds[1], limit, offset)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, map[string]any{"history": h})
}
