package inventory

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

func (s *Service) onProductCreated(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p *event.ProductCreated) error {
	return s.store.createStock(ctx, tx, p.ProductID, s.d.Now())
}

func (s *Service) onProductDiscontinued(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p *event.ProductDiscontinued) error {
	return s.store.discontinue(ctx, tx, p.ProductID, s.d.Now())
}

// onOrderCreated reserves every line of the order or none. The reservation
// row it leaves (reserved or failed) makes a second OrderCreated of the
// order a no-op, and a tombstone left by an earlier OrderCancelled stops it.
func (s *Service) onOrderCreated(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, oc *event.OrderCreated) error {
	r, err := s.store.reservation(ctx, tx, oc.OrderID)
	if err != nil {
		return err
	}
	if r != nil {
		s.d.Log.Debug("OrderCreated ignored: the order is known", "orderId", oc.OrderID, "status", r.Status, "eventId", e.EventID)
		return nil
	}
	lines, reasons := mergeLines(oc.Lines)
	shortages := []event.Shortage{}
	var stocks []*Stock
	for _, l := range lines { // sorted by product id: a deterministic lock order
		st, err := s.store.lockStock(ctx, tx, l.ProductID)
		switch {
		case eventmart.ErrorCode(err) == eventmart.ENOTFOUND:
			shortages = append(shortages, event.Shortage{ProductID: l.ProductID, Requested: l.Quantity})
			reasons = append(reasons, fmt.Sprintf("unknown product %s", l.ProductID))
		case err != nil:
			return err
		case st.Discontinued:
			shortages = append(shortages, event.Shortage{ProductID: l.ProductID, Requested: l.Quantity})
			reasons = append(reasons, fmt.Sprintf("product %s is discontinued", l.ProductID))
		case st.Available < l.Quantity:
			shortages = append(shortages, event.Shortage{ProductID: l.ProductID, Requested: l.Quantity, Available: st.Available})
			reasons = append(reasons, fmt.Sprintf("not enough stock for %s: %d requested, %d available", l.ProductID, l.Quantity, st.Available))
		default:
			stocks = append(stocks, st)
		}
	}
	now := s.d.Now()
	if len(reasons) > 0 {
		reason := strings.Join(reasons, "; ")
		inserted, err := s.store.insertReservation(ctx, tx, &reservation{OrderID: oc.OrderID, Status: StatusFailed, Lines: lines, Reason: reason}, now)
		if err != nil || !inserted {
			return err
		}
		return s.emit(ctx, tx, e, &event.InventoryReservationFailed{OrderID: oc.OrderID, Reason: reason, Shortages: shortages})
	}
	inserted, err := s.store.insertReservation(ctx, tx, &reservation{OrderID: oc.OrderID, Status: StatusReserved, Lines: lines}, now)
	if err != nil || !inserted {
		return err
	}
	levels := make([]event.StockLevel, len(stocks))
	for i, st := range stocks {
		st.Reserved += lines[i].Quantity
		st.Version++
		if err := s.store.saveLevel(ctx, tx, st, now); err != nil {
			return err
		}
		levels[i] = st.Level()
	}
	return s.emit(ctx, tx, e, &event.InventoryReserved{OrderID: oc.OrderID, Lines: lines, Levels: levels})
}

// mergeLines returns the order's lines as one line per product (quantities
// of repeated products summed), sorted by product id, and what makes the
// order unreservable regardless of stock.
func mergeLines(in []event.OrderLine) ([]event.Line, []string) {
	var problems []string
	if len(in) == 0 {
		problems = append(problems, "the order has no lines")
	}
	qty := map[string]int64{}
	for _, l := range in {
		if l.ProductID == "" || l.Quantity <= 0 {
			problems = append(problems, fmt.Sprintf("invalid line: product %q, quantity %d", l.ProductID, l.Quantity))
			continue
		}
		qty[l.ProductID] += l.Quantity
	}
	lines := make([]event.Line, 0, len(qty))
	for id, q := range qty {
		lines = append(lines, event.Line{ProductID: id, Quantity: q})
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i].ProductID < lines[j].ProductID })
	return lines, problems
}

// onOrderCancelled gives a held reservation back. An order cancelled before
// its OrderCreated arrived gets a tombstone, so that OrderCreated reserves
// nothing.
func (s *Service) onOrderCancelled(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, oc *event.OrderCancelled) error {
	now := s.d.Now()
	r, err := s.store.reservation(ctx, tx, oc.OrderID)
	if err != nil {
		return err
	}
	if r == nil {
		inserted, err := s.store.insertReservation(ctx, tx, &reservation{OrderID: oc.OrderID, Status: StatusCancelled, Reason: oc.ReasonCode}, now)
		if err != nil || inserted {
			return err
		}
		// A concurrent OrderCreated recorded the order first: release it.
		if r, err = s.store.reservation(ctx, tx, oc.OrderID); err != nil || r == nil {
			return err
		}
	}
	if r.Status != StatusReserved {
		s.d.Log.Debug("OrderCancelled ignored: nothing reserved", "orderId", oc.OrderID, "status", r.Status, "eventId", e.EventID)
		return nil
	}
	if ok, err := s.store.transition(ctx, tx, oc.OrderID, StatusReserved, StatusReleased, oc.ReasonCode, now); err != nil || !ok {
		return err
	}
	levels, _, err := s.takeReserved(ctx, tx, r, false)
	if err != nil {
		return err
	}
	return s.emit(ctx, tx, e, &event.InventoryReleased{OrderID: oc.OrderID, Lines: r.Lines, Levels: levels, Reason: oc.ReasonCode})
}

// onOrderShipped takes a held reservation's goods off the shelf: on hand
// and reserved drop by each line's quantity, so availability is unchanged.
func (s *Service) onOrderShipped(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, sh *event.OrderShipped) error {
	r, err := s.store.reservation(ctx, tx, sh.OrderID)
	if err != nil {
		return err
	}
	if r == nil || r.Status != StatusReserved {
		s.d.Log.Debug("OrderShipped ignored: nothing reserved", "orderId", sh.OrderID, "eventId", e.EventID)
		return nil
	}
	if ok, err := s.store.transition(ctx, tx, sh.OrderID, StatusReserved, StatusFulfilled, r.Reason, s.d.Now()); err != nil || !ok {
		return err
	}
	levels, taken, err := s.takeReserved(ctx, tx, r, true)
	if err != nil {
		return err
	}
	events := make([]event.Payload, len(levels))
	for i, l := range levels {
		events[i] = &event.InventoryAdjusted{ProductID: l.ProductID, Delta: -taken[i], Level: l, Reason: "shipped", OrderID: sh.OrderID}
	}
	return s.emit(ctx, tx, e, events...)
}

// takeReserved lowers the reserved stock of r's lines by their quantities
// (and on hand too when shipped), and returns the new levels and the
// quantities taken. A product that holds less than its line (which the
// invariants rule out) gives what it has, and a missing product is
// skipped, both logged: an error would make the bus redeliver the event
// forever.
func (s *Service) takeReserved(ctx context.Context, tx *sqldb.Tx, r *reservation, shipped bool) ([]event.StockLevel, []int64, error) {
	now := s.d.Now()
	levels := []event.StockLevel{}
	var taken []int64
	for _, l := range r.Lines { // sorted by product id when reserved
		st, err := s.store.lockStock(ctx, tx, l.ProductID)
		if eventmart.ErrorCode(err) == eventmart.ENOTFOUND {
			s.d.Log.Error("reserved product has no stock row", "orderId", r.OrderID, "productId", l.ProductID)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		take := min(l.Quantity, st.Reserved)
		if take < l.Quantity {
			s.d.Log.Error("reserved stock below the reservation", "orderId", r.OrderID, "productId", l.ProductID, "reserved", st.Reserved, "quantity", l.Quantity)
		}
		st.Reserved -= take
		if shipped {
			st.OnHand -= take
		}
		st.Version++
		if err := s.store.saveLevel(ctx, tx, st, now); err != nil {
			return nil, nil, err
		}
		levels, taken = append(levels, st.Level()), append(taken, take)
	}
	return levels, taken, nil
}

func (s *Service) emit(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, payloads ...event.Payload) error {
	return outbox.Emit(ctx, tx, service.Source(Name), e.Origin(), payloads...)
}
