package cart

import (
	"context"
	"net/http"
	"net/url"
	"unicode/utf8"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Routes registers the cart API. Every route works on the caller's cart.
func (s *Service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/cart", s.handleGet)
	mux.HandleFunc("POST /api/v1/cart/items", s.handleAdd)
	mux.HandleFunc("DELETE /api/v1/cart/items/{productId}", s.handleRemove)
}

// handleGet: GET /cart returns the caller's cart; admins may name another
// user with ?userId= (customers only themselves: 403).
func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	id, err := auth.Require(r.Context())
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	userID := id.UserID
	if u := r.URL.Query().Get("userId"); u != "" {
		if !id.Can(u) {
			httpx.Error(w, r, eventmart.Errorf(eventmart.EFORBIDDEN, "userId: only admins may read another user's cart"))
			return
		}
		userID = u
	}
	c, err := s.store.cart(r.Context(), s.d.DB, userID)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, c)
}

// handleAdd: POST /cart/items {productId, quantity} adds quantity of an
// active catalog product to the caller's cart and returns the cart.
func (s *Service) handleAdd(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, err := auth.Require(ctx)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	var in ItemInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	if err := in.validate(); err != nil {
		httpx.Error(w, r, err)
		return
	}
	productID, qty := *in.ProductID, *in.Quantity
	if err := s.checkActive(ctx, s.d.DB, id.UserID); err != nil {
		httpx.Error(w, r, err)
		return
	}
	if err := s.checkProduct(ctx, productID); err != nil {
		httpx.Error(w, r, err)
		return
	}
	var c *Cart
	err = s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		// Checked again in the transaction: UserDeactivated may have
		// arrived during the catalog call.
		if err := s.checkActive(ctx, tx, id.UserID); err != nil {
			return err
		}
		now := s.d.Now()
		cartID, created, err := s.store.ensureCart(ctx, tx, id.UserID, now)
		if err != nil {
			return err
		}
		have, err := s.store.quantity(ctx, tx, id.UserID, productID)
		if err != nil {
			return err
		}
		if have+qty > MaxLineQuantity {
			return eventmart.Errorf(eventmart.EINVALID, "quantity: the cart holds %d of product %s; adding %d would exceed the limit of %d per product",
				have, productID, qty, MaxLineQuantity)
		}
		if err := s.store.setQuantity(ctx, tx, id.UserID, productID, have+qty, now); err != nil {
			return err
		}
		if c, err = s.store.touch(ctx, tx, id.UserID, now); err != nil {
			return err
		}
		var events []event.Payload
		if created {
			events = append(events, &event.CartCreated{CartID: cartID, UserID: id.UserID})
		}
		events = append(events, &event.CartUpdated{CartID: cartID, UserID: id.UserID, Items: c.Items})
		return outbox.Emit(ctx, tx, service.Source(Name), service.RequestOrigin(ctx), events...)
	})
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	s.d.Outbox.Notify()
	httpx.JSON(w, http.StatusOK, c)
}

// handleRemove: DELETE /cart/items/{productId} removes the product's line
// from the caller's cart and returns the cart.
func (s *Service) handleRemove(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, err := auth.Require(ctx)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	productID := r.PathValue("productId")
	var c *Cart
	err = s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		if err := s.checkActive(ctx, tx, id.UserID); err != nil {
			return err
		}
		cartID, err := s.store.lockCart(ctx, tx, id.UserID)
		if err != nil {
			return err
		}
		removed := false
		if cartID != "" {
			if removed, err = s.store.deleteItem(ctx, tx, id.UserID, productID); err != nil {
				return err
			}
		}
		if !removed {
			return eventmart.Errorf(eventmart.ENOTFOUND, "product %s is not in your cart", productID)
		}
		if c, err = s.store.touch(ctx, tx, id.UserID, s.d.Now()); err != nil {
			return err
		}
		return outbox.Emit(ctx, tx, service.Source(Name), service.RequestOrigin(ctx),
			&event.CartUpdated{CartID: cartID, UserID: id.UserID, Items: c.Items})
	})
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	s.d.Outbox.Notify()
	httpx.JSON(w, http.StatusOK, c)
}

func (in ItemInput) validate() error {
	if in.ProductID == nil || *in.ProductID == "" {
		return eventmart.Errorf(eventmart.EINVALID, "productId is required")
	}
	if utf8.RuneCountInString(*in.ProductID) > 100 {
		return eventmart.Errorf(eventmart.EINVALID, "productId must be at most 100 characters")
	}
	if in.Quantity == nil {
		return eventmart.Errorf(eventmart.EINVALID, "quantity is required")
	}
	if *in.Quantity < 1 || *in.Quantity > MaxLineQuantity {
		return eventmart.Errorf(eventmart.EINVALID, "quantity must be between 1 and %d", MaxLineQuantity)
	}
	return nil
}

// checkActive fails with EFORBIDDEN if userID's account was deactivated.
func (s *Service) checkActive(ctx context.Context, q querier, userID string) error {
	off, err := s.store.deactivated(ctx, q, userID)
	if err != nil {
		return err
	}
	if off {
		return eventmart.Errorf(eventmart.EFORBIDDEN, "your account is deactivated; its cart cannot change")
	}
	return nil
}

// catalogProduct is the part of the catalog's product the cart needs.
type catalogProduct struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// checkProduct asks the catalog whether productID exists and can be
// ordered: ENOTFOUND "unknown product" or ECONFLICT if discontinued; a
// catalog that cannot be reached is EUNAVAILABLE.
func (s *Service) checkProduct(ctx context.Context, productID string) error {
	var p catalogProduct
	err := s.d.CallJSON(ctx, "catalog", "GET", "/api/v1/products/"+url.PathEscape(productID), nil, &p)
	switch {
	case eventmart.ErrorCode(err) == eventmart.ENOTFOUND:
		return eventmart.Errorf(eventmart.ENOTFOUND, "unknown product %s", productID)
	case err != nil:
		return err
	case p.Status == "discontinued":
		return eventmart.Errorf(eventmart.ECONFLICT, "product %s is discontinued", productID)
	}
	return nil
}
