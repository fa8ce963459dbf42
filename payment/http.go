package payment

import (
	"errors"
	"net/http"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/service"
)

// Routes registers the payment API.
func (s *Service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/payments/cards", s.handleVaultCard)
	mux.HandleFunc("GET /api/v1/payments", s.handleList)
	mux.HandleFunc("GET /api/v1/payments/{id}/ledger", s.handleLedger)
}

// CardInput is the body of POST /payments/cards.
type CardInput struct {
	Number string `json:"number"`
}

// handleVaultCard: POST /payments/cards {number} → 201 {token, last4,
// brand} for a card new to the caller, 200 with the card they vaulted
// before (the same token) for one they have (see vaultCard). The card
// belongs to the caller; only the caller's orders can charge it.
func (s *Service) handleVaultCard(w http.ResponseWriter, r *http.Request) {
	id, err := auth.Require(r.Context())
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	var in CardInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	if in.Number == "" {
		httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "number is required"))
		return
	}
	number, ok := normalizeCardNumber(in.Number)
	if !ok {
		httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "number: card number is not valid (12-19 digits passing the Luhn check)"))
		return
	}
	if s.vault == nil {
		httpx.Error(w, r, errors.New("payment: no card vault"))
		return
	}
	c, created, err := s.vaultCard(r.Context(), id.UserID, number)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	httpx.JSON(w, status, c)
}

// handleList: GET /payments?orderId=&limit=&offset= lists the payments of
// one order, or without orderId the caller's own. Customers see only their
// own payments (another customer's order lists nothing); admins see any.
func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	service.ServeOrderRecords(w, r, "payments", s.store.list)
}

// handleLedger: GET /payments/{id}/ledger (its owner or an admin) →
// {paymentId, orderId, userId, entries: [Entry]}: the payment's ledger,
// oldest first, each entry with its stream version, time, amount and the
// balance (captured − refunded) after it. Another customer's payment is
// not found, as one that does not exist.
func (s *Service) handleLedger(w http.ResponseWriter, r *http.Request) {
	id, err := auth.Require(r.Context())
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	l, err := readLedger(r.Context(), s.d.DB, r.PathValue("id"))
	if err == nil && !id.Can(l.UserID) {
		err = eventmart.Errorf(eventmart.ENOTFOUND, "payment %s not found", r.PathValue("id"))
	}
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, l)
}
