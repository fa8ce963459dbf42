package order

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Routes registers the order API.
func (s *Service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/orders", s.handleCreate)
	mux.HandleFunc("GET /api/v1/orders", s.handleList)
	mux.HandleFunc("GET /api/v1/orders/{id}", s.handleGet)
	mux.HandleFunc("POST /api/v1/orders/{id}/cancel", s.handleCancel)
	mux.HandleFunc("GET /api/v1/orders/{id}/events", s.handleEvents)
	mux.HandleFunc("GET /api/v1/orders/{id}/history", s.handleHistory)
	mux.HandleFunc("GET /api/v1/admin/sagas", s.handleSagas)
}

// handleCreate: POST /orders, with an optional Idempotency-Key header: the
// same key from the same user with the same body answers with the first
// order again; with another body it is a 422 (as Stripe does), since
// answering the first order would hide that the second was not placed.
// While too many orders are PENDING (EVENTMART_ORDER_MAX_PENDING) a new
// order is refused with 503 and Retry-After before anything is stored.
// The 202 carries the order's ETag, a GET's until the order changes, so
// that the client's first GET can be held (see handleGet).
func (s *Service) handleCreate(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, err := auth.Require(ctx)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > MaxIdemKeyLen {
		httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "Idempotency-Key must be at most %d characters", MaxIdemKeyLen))
		return
	}
	var o *Order
	var rep httpx.Representation // o as a GET of it answers it, with its ETag
	var sum string               // the body's SHA-256, kept with the key
	if key != "" {
		if sum, err = bodySum(r); err != nil {
			httpx.Error(w, r, err)
			return
		}
	}
	// The caller's projection: placing needs it. From memory when it can
	// be trusted (userMemory), and then nothing is read before the order's
	// transaction: a retry's key is found by that transaction's insert of
	// it (errKeyTaken), or, should placing fail first, looked up then
	// (retried below). Else the row and the order placed with key, if
	// any, in one read.
	u, remembered := s.users.Lookup(id.UserID)
	keyUnread := remembered && key != ""
	if !remembered {
		read := s.users.Begin(id.UserID)
		var keyed idemKey
		u, keyed, err = s.store.userAndKey(ctx, id.UserID, key)
		s.users.EndOne(read, u, err == nil)
		if err == nil && keyed.orderID != "" {
			o, err = s.keyedOrder(ctx, key, sum, keyed)
		}
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
	}
	if o == nil {
		// A new order: shed it at the door while the pipeline is
		// saturated (admission.go); a retry of one already placed is
		// answered whatever the load.
		if shed := s.admit.admit(ctx); shed != nil {
			if o, err = s.retried(ctx, id.UserID, key, sum, keyUnread, shed); err != nil {
				if err == shed {
					w.Header().Set("Retry-After", s.admit.retryAfter())
				}
				httpx.Error(w, r, err)
				return
			}
		} else {
			o, rep, err = s.place(ctx, id, u, r, key, sum)
			if errors.Is(err, errKeyTaken) { // placed before with the key, or a concurrent request with it won
				o, err = s.orderByKey(ctx, id.UserID, key, sum)
			} else if err != nil {
				o, err = s.retried(ctx, id.UserID, key, sum, keyUnread, err)
			}
			if err != nil {
				httpx.Error(w, r, err)
				return
			}
		}
	}
	if rep.ETag == "" { // an order placed before, as it is now
		if rep, err = httpx.Represent(o); err != nil {
			httpx.Error(w, r, fmt.Errorf("order: encode order: %w", err))
			return
		}
	}
	w.Header().Set("Location", "/api/v1/orders/"+o.ID)
	rep.WriteFresh(w, http.StatusAccepted)
}

// retried answers a request that failed with err before its key was
// looked up (keyUnread: the caller's row came from memory): if an order
// was placed with key, the request is its retry, answered with that order
// (or EUNPROCESSABLE, another body) as if the key had been read first —
// whatever the load, the products' status or the account's since; else
// err. With the key read first (keyUnread false), err.
func (s *Service) retried(ctx context.Context, userID, key, sum string, keyUnread bool, err error) (*Order, error) {
	if !keyUnread {
		return nil, err
	}
	prior, kerr := s.orderByKey(ctx, userID, key, sum)
	switch {
	case kerr != nil:
		return nil, kerr
	case prior != nil:
		return prior, nil
	}
	return nil, err
}

// orderByKey returns the order created with key, or nil; EUNPROCESSABLE
// if it was created with a body whose SHA-256 is not sum.
func (s *Service) orderByKey(ctx context.Context, userID, key, sum string) (*Order, error) {
	var k idemKey
	err := s.d.DB.QueryRow(ctx, `SELECT order_id, request_sha256 FROM idempotency_keys WHERE user_id = ? AND idem_key = ?`, userID, key).Scan(&k.orderID, &k.sum)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("order: look up idempotency key: %w", err)
	}
	return s.keyedOrder(ctx, key, sum, k)
}

// keyedOrder returns the order k, created with key; EUNPROCESSABLE if it
// was created with a body whose SHA-256 is not sum.
func (s *Service) keyedOrder(ctx context.Context, key, sum string, k idemKey) (*Order, error) {
	if k.sum != "" && k.sum != sum { // "": a key stored before bodies were hashed
		return nil, eventmart.Errorf(eventmart.EUNPROCESSABLE, "Idempotency-Key %q was used with another request body (order %s); use a new key for a new order", key, k.orderID)
	}
	o, err := s.store.order(ctx, s.d.DB, k.orderID)
	if err != nil {
		return nil, err
	}
	return s.openOrder(ctx, o)
}

// bodySum reads r's body (at most httpx.MaxBody bytes), leaves it to be
// read again, and returns its SHA-256 in hex.
func bodySum(r *http.Request) (string, error) {
	b, err := httpx.ReadBody(r)
	if err != nil {
		return "", err
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// place validates and prices an order of the caller id, whose projection
// is u (nil if none), vaults its card, and stores it PENDING together with
// OrderCreated. It returns the order with its representation: what a GET
// of it answers until it changes, which this instance remembers (known) as
// an answered GET.
func (s *Service) place(ctx context.Context, id auth.Identity, u *user, r *http.Request, key, sum string) (*Order, httpx.Representation, error) {
	var none httpx.Representation
	if u != nil && u.Status == userDeactivated {
		return nil, none, eventmart.Errorf(eventmart.EFORBIDDEN, "account deactivated")
	}
	var in OrderInput
	if err := httpx.Decode(r, &in); err != nil {
		return nil, none, err
	}
	lines, card, addr, err := in.validate()
	if err != nil {
		return nil, none, err
	}
	if in.FromCart {
		if lines, err = s.cartLines(ctx); err != nil {
			return nil, none, err
		}
	}
	items, total, currency, err := s.price(ctx, lines)
	if err != nil {
		return nil, none, err
	}
	if total > s.maxTotal {
		return nil, none, eventmart.Errorf(eventmart.EINVALID, "the order's total %d is over the limit of %d (EVENTMART_ORDER_MAX_TOTAL); split it, or ask the shop", total, s.maxTotal)
	}
	vaulted, err := s.vaultCard(ctx, card)
	if err != nil {
		return nil, none, err
	}
	// The projection may not have caught up with a new user yet; the
	// token's identity is the best data until it does.
	email, name := id.Email, id.Name
	if u != nil && u.Email != "" {
		email, name = u.Email, u.Name
	}
	// Sealed once, here: OrderCreated, the order's stream and the orders
	// table keep these values (personal.go).
	customer, sealedAddr, err := s.sealPlaced(ctx, id.UserID, email, name, addr)
	if err != nil {
		return nil, none, err
	}
	now := s.d.Now().UTC().Truncate(time.Millisecond) // as stored
	o := &Order{ID: event.NewID(), UserID: id.UserID, Status: StatusPending, Items: items, TotalCents: total, Currency: currency,
		ShippingAddress: sealedAddr, Customer: customer, CardLast4: vaulted.Last4, FromCart: in.FromCart, CreatedAt: now, UpdatedAt: now}
	created, err := event.New(service.Source(Name), service.RequestOrigin(ctx), &event.OrderCreated{
		OrderID:         o.ID,
		Customer:        event.Customer{UserID: o.UserID, Email: customer.Email, Name: customer.Name},
		Lines:           items,
		TotalCents:      total,
		Currency:        currency,
		Payment:         event.PaymentMethod{CardToken: vaulted.Token, CardLast4: vaulted.Last4},
		ShippingAddress: sealedAddr,
		FromCart:        in.FromCart,
		PlacedAt:        o.CreatedAt,
	})
	if err != nil {
		return nil, none, fmt.Errorf("order: %w", err)
	}
	o.correlationID, o.createdEventID = created.CorrelationID, created.EventID
	placing := OrderState{Order: *o, CorrelationID: o.correlationID, CreatedEventID: o.createdEventID}
	var rep httpx.Representation // the answer, remembered once the commit is over: see known.placed
	epoch := s.known.placing(o.ID)
	defer func() { s.known.placed(o.ID, o.UserID, rep.ETag, epoch) }()
	var placed *Order
	err = s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		if key != "" {
			s.store.storeKey(tx, o.UserID, key, o.ID, sum, o.CreatedAt)
		}
		var err error
		if placed, _, err = s.command(ctx, tx, service.RequestOrigin(ctx), o.ID, Command{Kind: Place, Order: placing}); err != nil {
			return err
		}
		return s.record(ctx, tx, created)
	})
	if err != nil {
		return nil, none, err
	}
	s.d.Outbox.Notify()
	// The order as stored (the orders row, as a GET reads it), with the
	// caller's own data as it was before sealing: what openOrder makes of
	// it, without opening anything.
	answer := *placed
	answer.Customer, answer.ShippingAddress = Customer{Email: event.Plain(email), Name: event.Plain(name)}, event.PlainAddress(addr)
	if rep, err = httpx.Represent(&answer); err != nil {
		return nil, none, fmt.Errorf("order: encode order: %w", err)
	}
	return &answer, rep, nil
}

// catalogProduct is what this service reads of the catalog's products.
type catalogProduct struct {
	ID         string `json:"id"`
	SKU        string `json:"sku"`
	Name       string `json:"name"`
	PriceCents int64  `json:"priceCents"`
	Currency   string `json:"currency"`
	Status     string `json:"status"`
}

// price looks the lines' products up in the catalog and returns the order
// lines at current prices, the total and the currency.
func (s *Service) price(ctx context.Context, lines []event.Line) ([]event.OrderLine, int64, string, error) {
	ids := make([]string, len(lines))
	for i, l := range lines {
		ids[i] = l.ProductID
	}
	var resp struct {
		Products []catalogProduct `json:"products"`
	}
	q := url.Values{"ids": {strings.Join(ids, ",")}, "limit": {strconv.Itoa(len(ids))}}
	if err := s.d.CallJSON(ctx, "catalog", "GET", "/api/v1/products?"+q.Encode(), nil, &resp); err != nil {
		return nil, 0, "", fmt.Errorf("order: look up products: %w", err)
	}
	byID := map[string]catalogProduct{}
	for _, p := range resp.Products {
		byID[p.ID] = p
	}
	var out []event.OrderLine
	var total int64
	currency := ""
	for _, l := range lines {
		p, ok := byID[l.ProductID]
		switch {
		case !ok:
			return nil, 0, "", eventmart.Errorf(eventmart.EINVALID, "unknown product %s", l.ProductID)
		case p.Status == "discontinued":
			return nil, 0, "", eventmart.Errorf(eventmart.ECONFLICT, "product %s is discontinued", l.ProductID)
		case p.Status != "active":
			return nil, 0, "", eventmart.Errorf(eventmart.ECONFLICT, "product %s cannot be ordered (status %q)", l.ProductID, p.Status)
		case currency != "" && p.Currency != currency:
			return nil, 0, "", eventmart.Errorf(eventmart.EINVALID, "items: products priced in %s and %s cannot be ordered together; order them separately", currency, p.Currency)
		}
		currency = p.Currency
		total += p.PriceCents * l.Quantity
		out = append(out, event.OrderLine{ProductID: p.ID, SKU: p.SKU, Name: p.Name, Quantity: l.Quantity, UnitPriceCents: p.PriceCents})
	}
	return out, total, currency, nil
}

// cartLines returns the caller's cart (the call carries their token).
func (s *Service) cartLines(ctx context.Context) ([]event.Line, error) {
	var cart struct {
		Items []event.CartItem `json:"items"`
	}
	err := s.d.CallJSON(ctx, "cart", "GET", "/api/v1/cart", nil, &cart)
	if err != nil && eventmart.ErrorCode(err) != eventmart.ENOTFOUND { // no cart at all is an empty one
		return nil, fmt.Errorf("order: read cart: %w", err)
	}
	if len(cart.Items) == 0 {
		return nil, eventmart.Errorf(eventmart.ECONFLICT, "cart is empty")
	}
	in := make([]LineInput, len(cart.Items))
	for i, it := range cart.Items {
		in[i] = LineInput{ProductID: it.ProductID, Quantity: it.Quantity}
	}
	return mergeLines("cart", in)
}

// vaultedCard is the payment service's answer to vaulting a card.
type vaultedCard struct {
	Token string `json:"token"`
	Last4 string `json:"last4"`
}

// vaultCard hands the card number to the payment service, which keeps it
// and returns a token: the number never enters this service's data or any
// event.
func (s *Service) vaultCard(ctx context.Context, number string) (vaultedCard, error) {
	var c vaultedCard
	if err := s.d.CallJSON(ctx, "payment", "POST", "/api/v1/payments/cards", map[string]string{"number": number}, &c); err != nil {
		return c, fmt.Errorf("order: vault card: %w", err)
	}
	if c.Token == "" {
		return c, fmt.Errorf("order: vault card: the payment service returned no token")
	}
	if c.Last4 == "" {
		c.Last4 = number[len(number)-4:]
	}
	return c, nil
}

// handleList: GET /orders?limit=&offset=&status=&userId= — the caller's
// orders, newest first; admins see everyone's, or one user's with userId.
func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	id, err := auth.Require(r.Context())
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	q := r.URL.Query()
	limit, offset, err := httpx.Page(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	status := strings.ToUpper(q.Get("status"))
	switch status {
	case "", StatusPending, StatusConfirmed, StatusShipped, StatusCancelled:
	default:
		httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "status must be one of PENDING, CONFIRMED, SHIPPED, CANCELLED"))
		return
	}
	userID, err := id.ListOwner(q.Get("userId"), "orders")
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	orders, err := s.store.list(r.Context(), userID, status, limit, offset)
	if err == nil {
		err = s.openOrders(r.Context(), orders)
	}
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, map[string]any{"orders": orders, "limit": limit, "offset": offset, "next": httpx.NextPage(r, len(orders), limit, offset)})
}

// handleGet: GET /orders/{id}. The answer carries an ETag; with
// If-None-Match naming it the answer is 304 Not Modified, and with
// "Prefer: wait=N" as well (N ≤ 30 seconds) it is held until the order
// changes or N seconds pass: clients follow an order's saga with one
// request per change instead of polling. With "Prefer: wait=N,
// until=final" (If-None-Match or not) it is held instead until the order's
// status is final (finalStatus) or N seconds pass — a change to another
// status does not end it — and answered as a plain conditional GET then:
// a client that wants only the outcome asks once. With ?asOf=<RFC 3339
// time> it is the order as it was at that instant, folded from its stream
// (404 before it was placed), without ETag or waiting.
func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	wait := httpx.PreferWait(r)
	untilFinal := wait > 0 && preferUntilFinal(r)
	held := wait > 0 && (untilFinal || r.Header.Get("If-None-Match") != "")
	if held && !r.URL.Query().Has("asOf") && s.holdKnown(w, r, wait, untilFinal) {
		return
	}
	// The GET watches the order before reading it: a change committed in
	// between wakes a held one, so its first wait needs no second read
	// (see awaitChange), and keeps what it read from being remembered
	// (known) as current.
	pathID := r.PathValue("id")
	changed, release, epoch := s.known.watch(pathID)
	defer release()
	_, o, err := s.visibleOrder(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	if q := r.URL.Query(); q.Has("asOf") {
		at, err := time.Parse(time.RFC3339Nano, q.Get("asOf"))
		if err != nil {
			httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "asOf must be an RFC 3339 time such as 2026-12-06T10:02:13Z or 2026-12-06T11:02:13.5+01:00, got %q", q.Get("asOf")))
			return
		}
		then, err := s.store.asOf(r.Context(), s.d.DB, o.ID, at)
		if err == nil {
			then, err = s.openOrder(r.Context(), then)
		}
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		httpx.JSON(w, http.StatusOK, then)
		return
	}
	if o.ID != pathID { // changed and epoch watch another id
		changed = nil
	}
	if untilFinal && !finalStatus(o.Status) {
		// Not represented: only the final status is answered before the
		// deadline.
		s.answerFinal(w, r, o.ID, wait, changed)
		return
	}
	rep, err := s.represent(r.Context(), o)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	if changed != nil {
		s.known.remember(o.ID, o.UserID, rep.ETag, finalStatus(o.Status), changed, epoch)
	}
	if untilFinal {
		w.Header().Set("Preference-Applied", untilFinalApplied)
	} else if held && httpx.NoneMatch(r, rep.ETag) {
		if rep, err = s.awaitChange(r.Context(), o.ID, rep, wait, changed); err != nil {
			httpx.Error(w, r, err)
			return
		}
		w.Header().Set("Preference-Applied", "wait="+strconv.Itoa(int(wait/time.Second)))
	}
	rep.Write(w, r, http.StatusOK)
}

// holdKnown answers a held GET without reading the order first when this
// instance knows (known) that the order is still what the request's
// If-None-Match names and that the caller may see it: it waits for the
// order's next change (untilFinal: for its final status, answering at once
// if it is final) and reads it then. It returns false, having answered
// nothing, when it does not know; handleGet then reads the order.
func (s *Service) holdKnown(w http.ResponseWriter, r *http.Request, wait time.Duration, untilFinal bool) bool {
	caller, err := auth.Require(r.Context())
	if err != nil {
		return false // handleGet answers the error
	}
	id := r.PathValue("id")
	e, changed, release, ok := s.known.hold(id, func(etag string) bool { return httpx.NoneMatch(r, etag) })
	if !ok {
		return false
	}
	defer release()
	if !caller.Can(e.owner) {
		return false // handleGet answers "not found", as for any order the caller may not see
	}
	if untilFinal {
		if e.final { // the caller has the final representation
			w.Header().Set("Preference-Applied", untilFinalApplied)
			httpx.Representation{ETag: e.etag}.Write(w, r, http.StatusOK) // 304
			return true
		}
		s.answerFinal(w, r, id, wait, changed)
		return true
	}
	rep, err := s.awaitChange(r.Context(), id, httpx.Representation{ETag: e.etag}, wait, changed)
	if err != nil {
		httpx.Error(w, r, err)
		return true
	}
	w.Header().Set("Preference-Applied", "wait="+strconv.Itoa(int(wait/time.Second)))
	rep.Write(w, r, http.StatusOK) // unchanged: 304, whose answer has no body
	return true
}

// untilFinalPref=untilFinalValue is the preference (RFC 7240) that holds
// a GET of an order until its status is final: "Prefer: wait=N,
// until=final". A separate preference rather than a parameter of wait
// ("wait=N; until=final"), which releases before this one read as no wait
// at all; and not a query parameter, which they refuse (400): to them it
// is an unknown preference, ignored, and the GET is held until the next
// change as before.
const untilFinalPref, untilFinalValue = "until", "final"

// untilFinalApplied is the Preference-Applied of a GET answered under
// until=final: the preference is named whether the GET was held or the
// order was final already, so that a client can tell this release from an
// older one by any answer.
const untilFinalApplied = "until=final"

// preferUntilFinal reports whether the request asks to be held until the
// order's status is final (Prefer: until=final).
func preferUntilFinal(r *http.Request) bool {
	v, ok := httpx.Preference(r, untilFinalPref)
	return ok && strings.EqualFold(v, untilFinalValue)
}

// finalStatus reports whether an order with status can no longer change
// status: SHIPPED or CANCELLED (docs/saga.md). Its representation can
// still change (the customer's name or e-mail follows the user's profile).
func finalStatus(status string) bool {
	return status == StatusShipped || status == StatusCancelled
}

// answerFinal answers a GET of order id held until its status is final
// (Prefer: until=final; the caller may see the order) with the order once
// it is final, or as it is after wait: 304 if the request's If-None-Match
// names it then. changed, if not nil, is a watch of id taken before the
// order was last read or known, not final: the first wait is on it.
func (s *Service) answerFinal(w http.ResponseWriter, r *http.Request, id string, wait time.Duration, changed <-chan struct{}) {
	rep, err := s.awaitFinal(r.Context(), id, wait, changed)
	if r.Context().Err() != nil {
		return // the client is gone: nobody to answer
	}
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	w.Header().Set("Preference-Applied", "wait="+strconv.Itoa(int(wait/time.Second))+", "+untilFinalApplied)
	rep.Write(w, r, http.StatusOK)
}

// awaitFinal waits up to wait for order id's status to be final and
// returns its representation then, or, after wait, its current one.
// changed, if not nil, is a watch of id taken before the order was read
// (or known) not final: the first wait is on it, without reading the order
// again. Only a final order is represented (opened and encoded); a change
// to another status costs a read.
func (s *Service) awaitFinal(ctx context.Context, id string, wait time.Duration, changed <-chan struct{}) (httpx.Representation, error) {
	rep, expired, err := s.holdUntil(ctx, id, wait, changed, func(o *Order, changed <-chan struct{}, epoch uint64) (httpx.Representation, bool, error) {
		if !finalStatus(o.Status) {
			return httpx.Representation{}, false, nil
		}
		rep, err := s.represent(ctx, o)
		if err == nil {
			s.known.remember(id, o.UserID, rep.ETag, true, changed, epoch)
		}
		return rep, true, err
	})
	if expired {
		return s.current(ctx, id)
	}
	return rep, err
}

// current reads order id and returns its representation, remembering it
// (known).
func (s *Service) current(ctx context.Context, id string) (httpx.Representation, error) {
	changed, release, epoch := s.known.watch(id)
	defer release()
	o, err := s.store.order(ctx, s.d.DB, id)
	if err != nil {
		return httpx.Representation{}, err
	}
	rep, err := s.represent(ctx, o)
	if err == nil {
		s.known.remember(id, o.UserID, rep.ETag, finalStatus(o.Status), changed, epoch)
	}
	return rep, err
}

// represent is o as GET /orders/{id} answers it, opened, with its ETag.
func (s *Service) represent(ctx context.Context, o *Order) (httpx.Representation, error) {
	o, err := s.openOrder(ctx, o)
	if err != nil {
		return httpx.Representation{}, err
	}
	rep, err := httpx.Represent(o)
	if err != nil {
		return rep, fmt.Errorf("order: encode order: %w", err)
	}
	return rep, nil
}

// How often a held GET reads the order again without a notification, on
// PostgreSQL: a change committed by another instance of the service
// (several serve processes) notifies this instance through RunInstance's
// LISTEN, so while it listens the recheck is a safety net
// (safetyRecheckEvery); while it does not, recheckEvery. On SQLite every
// change is this process's and notifies: no recheck.
const (
	recheckEvery       = 500 * time.Millisecond
	safetyRecheckEvery = 5 * time.Second
)

// recheckAfter returns how long a held GET waits for a notification before
// it reads the order again; 0 for never.
func (s *Service) recheckAfter() time.Duration {
	switch {
	case s.d.DB.Dialect != sqldb.Postgres:
		return 0
	case s.listening.Load():
		return time.Duration(s.safetyRecheck.Load())
	default:
		return time.Duration(s.recheck.Load())
	}
}

// awaitChange waits up to wait for order id's representation to differ
// from rep and returns the newest one (rep itself if nothing changed).
// changed, if not nil, is a watch of id taken before rep was read: the
// first wait is on it, without reading the order again.
func (s *Service) awaitChange(ctx context.Context, id string, rep httpx.Representation, wait time.Duration, changed <-chan struct{}) (httpx.Representation, error) {
	cur, expired, err := s.holdUntil(ctx, id, wait, changed, func(o *Order, changed <-chan struct{}, epoch uint64) (httpx.Representation, bool, error) {
		cur, err := s.represent(ctx, o)
		if err != nil {
			return cur, true, err
		}
		s.known.remember(id, o.UserID, cur.ETag, finalStatus(o.Status), changed, epoch)
		return cur, cur.ETag != rep.ETag, nil
	})
	if expired || ctx.Err() != nil {
		return rep, nil // as it was: 304, to a client that may be gone
	}
	return cur, err
}

// holdUntil holds a GET of order id for up to wait: it reads the order (unless
// changed, a watch of id taken before the order was last read, is given:
// the first wait is then on it) and asks settle whether the hold ends
// (with rep, or err); while not, it waits for a notification of a change
// or the recheck, and reads again. A read after a notification may take
// the row heard of (heardOrOrder); a recheck reads. expired reports that
// wait passed first; the end of ctx is its error.
func (s *Service) holdUntil(ctx context.Context, id string, wait time.Duration, changed <-chan struct{},
	settle func(o *Order, changed <-chan struct{}, epoch uint64) (rep httpx.Representation, done bool, err error)) (rep httpx.Representation, expired bool, err error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	woken := false
	for {
		release := func() {}
		if changed == nil {
			// Watch before reading, so a change committed in between wakes
			// the wait.
			var epoch uint64
			changed, release, epoch = s.known.watch(id)
			var o *Order
			if woken {
				o, err = s.heardOrOrder(ctx, id)
			} else {
				o, err = s.store.order(ctx, s.d.DB, id)
			}
			var done bool
			if err == nil {
				rep, done, err = settle(o, changed, epoch)
			}
			if done || err != nil {
				release()
				return rep, false, err
			}
		}
		var recheck <-chan time.Time // nil: never
		var t *time.Timer
		if d := s.recheckAfter(); d > 0 {
			t = time.NewTimer(d)
			recheck = t.C
		}
		woken = false
		select {
		case <-changed:
			woken = true
		case <-recheck:
		case <-deadline.C:
			expired = true
		case <-ctx.Done():
			err = ctx.Err()
		}
		release()
		if t != nil {
			t.Stop()
		}
		if expired || err != nil {
			return httpx.Representation{}, expired, err
		}
		changed = nil
	}
}

// heardOrOrder returns order id as its last change heard of left it, if
// this instance wrote that change (known.heardRow: the row it wrote, read
// as a read of it would), else as read. Only for held GETs woken by the
// notification of a change: a recheck (a safety net) reads, and so does a
// GET that must see its caller's own change, maybe not heard of yet.
func (s *Service) heardOrOrder(ctx context.Context, id string) (*Order, error) {
	if row, ok := s.known.heardRow(id); ok {
		o, err := scanOrder(rowScanner(row))
		if err != nil {
			return nil, fmt.Errorf("order: the row of order %s written: %w", id, err)
		}
		return o, nil
	}
	return s.store.order(ctx, s.d.DB, id)
}

// visibleOrder returns the caller and the order of the path if the caller
// may see it. Another customer's order is "not found", like a missing one,
// so ids cannot be probed.
func (s *Service) visibleOrder(r *http.Request) (auth.Identity, *Order, error) {
	id, err := auth.Require(r.Context())
	if err != nil {
		return id, nil, err
	}
	o, err := s.store.order(r.Context(), s.d.DB, r.PathValue("id"))
	if err != nil {
		return id, nil, err
	}
	if !id.Can(o.UserID) {
		return id, nil, eventmart.Errorf(eventmart.ENOTFOUND, "order %s not found", o.ID)
	}
	return id, o, nil
}

// handleCancel: POST /orders/{id}/cancel by the owner or an admin, while
// the order is PENDING or CONFIRMED.
func (s *Service) handleCancel(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, o, err := s.visibleOrder(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	reason := "cancelled by the customer"
	if id.UserID != o.UserID {
		reason = "cancelled by an administrator"
	}
	// The cancellation belongs to the order's saga (its compensations
	// carry the saga's correlation id); the request caused it.
	origin := event.Origin{CorrelationID: o.correlationID, CausationID: httpx.CorrelationID(ctx), Metadata: service.RequestOrigin(ctx).Metadata}
	err = s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		after, _, err := s.command(ctx, tx, origin, o.ID, Command{Kind: Cancel, ReasonCode: ReasonCustomerCancelled, Reason: reason})
		if errors.Is(err, ErrNotCancellable) {
			return eventmart.Errorf(eventmart.ECONFLICT, "order %s is %s and can no longer be cancelled", after.ID, after.Status)
		}
		if err != nil {
			return err
		}
		o = after
		return nil
	})
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	s.d.Outbox.Notify()
	if o, err = s.openOrder(ctx, o); err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, o)
}

// handleHistory: GET /orders/{id}/history?limit=&offset= — the domain
// events of the order's stream, oldest first, each with its version, id,
// time, payload and the order as it was right after it (the shape of GET
// /orders/{id}); its owner or an admin.
func (s *Service) handleHistory(w http.ResponseWriter, r *http.Request) {
	_, o, err := s.visibleOrder(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	limit, offset, err := httpx.Page(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	items, err := s.store.history(r.Context(), s.d.DB, o.ID, limit, offset)
	if err == nil {
		err = s.openHistory(r.Context(), items)
	}
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, map[string]any{"items": items, "limit": limit, "offset": offset})
}

// handleEvents: GET /orders/{id}/events — every event of the order's saga
// seen so far, causes before their effects.
func (s *Service) handleEvents(w http.ResponseWriter, r *http.Request) {
	_, o, err := s.visibleOrder(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	evs, err := s.store.sagaEvents(r.Context(), o.ID)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	out := causalOrder(evs)
	for i, e := range out { // personal fields opened for the owner or an admin
		if out[i], err = event.OpenEnvelope(r.Context(), s.d.Keys, e); err != nil {
			httpx.Error(w, r, err)
			return
		}
	}
	httpx.JSON(w, http.StatusOK, map[string]any{"events": out})
}

// causalOrder orders a saga's events so that every event comes after the
// event that caused it (its causationId), and otherwise by timestamp then
// eventId. evs must be sorted by timestamp then eventId. An event whose
// cause is not among evs (the root, or a request) may come at any point its
// timestamp puts it. Timestamps of different services need not agree,
// which is why the causation link, not the clock, decides first.
func causalOrder(evs []sagaEvent) []json.RawMessage {
	inSet := make(map[string]bool, len(evs))
	for _, ev := range evs {
		inSet[ev.EventID] = true
	}
	done := make(map[string]bool, len(evs))
	used := make([]bool, len(evs))
	out := make([]json.RawMessage, 0, len(evs))
	for len(out) < len(evs) {
		next := -1
		for i, ev := range evs {
			if !used[i] && (!inSet[ev.CausationID] || done[ev.CausationID] || ev.CausationID == ev.EventID) {
				next = i
				break
			}
		}
		if next < 0 { // a causation cycle, which well-formed events cannot make: fall back to time order
			for i := range evs {
				if !used[i] {
					next = i
					break
				}
			}
		}
		used[next], done[evs[next].EventID] = true, true
		out = append(out, evs[next].Envelope)
	}
	return out
}
