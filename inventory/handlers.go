package inventory

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

func (s *Service) onProductCreated(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p *event.ProductCreated) error {
	return s.command(ctx, tx, e, p.ProductID, StockCommand{Kind: Register})
}

func (s *Service) onProductDiscontinued(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p *event.ProductDiscontinued) error {
	return s.command(ctx, tx, e, p.ProductID, StockCommand{Kind: Discontinue})
}

// command decides c on one product's stock and saves what it causes,
// retrying on a conflicting append.
func (s *Service) command(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, productID string, c StockCommand) error {
	return eventstore.RetryInTx(ctx, tx, maxTries, func() error {
		st, err := s.store.loadStockCached(ctx, tx, productID)
		if err != nil {
			return err
		}
		evs, err := decide(st.State, c)
		if err != nil {
			return err
		}
		return s.store.saveStock(ctx, tx, st, eventstore.OriginMetadata(e.Origin()), s.d.Now(), evs...)
	})
}

// onOrderCreated reserves every line of the order or none. The reservation
// row it leaves (reserved or failed) makes a second OrderCreated of the
// order a no-op, and a tombstone left by an earlier OrderCancelled stops it.
//
// The lines' stocks are loaded from their streams, decided on, and the
// StockReserved events appended to every stream in this one transaction
// (with the row, the projection and the outbox): all or none. An append
// that loses a race with another transaction (another instance, on
// PostgreSQL) fails with a version conflict, and the whole command is
// decided again on what the winner committed (eventstore.RetryInTx): the
// oversell guarantee is the streams' expected versions.
func (s *Service) onOrderCreated(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, oc *event.OrderCreated) error {
	var outcome event.Payload
	err := eventstore.RetryInTx(ctx, tx, maxTries, func() error {
		outcome = nil
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
		stocks := make([]*stock, len(lines))
		decided := make([][]StockEvent, len(lines))
		for i, l := range lines { // sorted by product id: a deterministic order of appends
			st, err := s.store.loadStockCached(ctx, tx, l.ProductID)
			if err != nil {
				return err
			}
			evs, err := decide(st.State, StockCommand{Kind: Reserve, OrderID: oc.OrderID, Quantity: l.Quantity})
			switch {
			case errors.Is(err, ErrUnknownProduct):
				shortages = append(shortages, event.Shortage{ProductID: l.ProductID, Requested: l.Quantity})
				reasons = append(reasons, fmt.Sprintf("unknown product %s", l.ProductID))
			case errors.Is(err, ErrDiscontinued):
				shortages = append(shortages, event.Shortage{ProductID: l.ProductID, Requested: l.Quantity})
				reasons = append(reasons, fmt.Sprintf("product %s is discontinued", l.ProductID))
			case errors.Is(err, ErrNotEnoughStock):
				avail := st.State.Available()
				shortages = append(shortages, event.Shortage{ProductID: l.ProductID, Requested: l.Quantity, Available: avail})
				reasons = append(reasons, fmt.Sprintf("not enough stock for %s: %d requested, %d available", l.ProductID, l.Quantity, avail))
			case err != nil:
				return err
			}
			stocks[i], decided[i] = st, evs
		}
		now := s.d.Now()
		if len(reasons) > 0 {
			reason := strings.Join(reasons, "; ")
			inserted, err := s.store.insertReservation(ctx, tx, &reservation{OrderID: oc.OrderID, Status: StatusFailed, Lines: lines, Reason: reason}, now)
			if err == nil && inserted {
				outcome = &event.InventoryReservationFailed{OrderID: oc.OrderID, Reason: reason, Shortages: shortages}
			}
			return err
		}
		inserted, err := s.store.insertReservation(ctx, tx, &reservation{OrderID: oc.OrderID, Status: StatusReserved, Lines: lines}, now)
		if err != nil || !inserted {
			return err
		}
		levels := make([]event.StockLevel, len(lines))
		md := eventstore.OriginMetadata(e.Origin())
		for i, st := range stocks {
			if err := s.store.saveStock(ctx, tx, st, md, now, decided[i]...); err != nil {
				return err
			}
			levels[i] = st.view().Level()
		}
		outcome = &event.InventoryReserved{OrderID: oc.OrderID, Lines: lines, Levels: levels}
		return nil
	})
	if err != nil || outcome == nil {
		return err
	}
	return s.emit(ctx, tx, e, outcome)
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
	var outcome event.Payload
	err := eventstore.RetryInTx(ctx, tx, maxTries, func() error {
		outcome = nil
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
		levels, _, err := s.takeReserved(ctx, tx, e, r, StockCommand{Kind: Release, OrderID: oc.OrderID, Reason: oc.ReasonCode})
		if err != nil {
			return err
		}
		outcome = &event.InventoryReleased{OrderID: oc.OrderID, Lines: r.Lines, Levels: levels, Reason: oc.ReasonCode}
		return nil
	})
	if err != nil || outcome == nil {
		return err
	}
	return s.emit(ctx, tx, e, outcome)
}

// onOrderShipped takes a held reservation's goods off the shelf: on hand
// and reserved drop by each line's quantity, so availability is unchanged.
func (s *Service) onOrderShipped(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, sh *event.OrderShipped) error {
	var outcome []event.Payload
	err := eventstore.RetryInTx(ctx, tx, maxTries, func() error {
		outcome = nil
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
		levels, taken, err := s.takeReserved(ctx, tx, e, r, StockCommand{Kind: Ship, OrderID: sh.OrderID})
		if err != nil {
			return err
		}
		for i, l := range levels {
			outcome = append(outcome, &event.InventoryAdjusted{ProductID: l.ProductID, Delta: -taken[i], Level: l, Reason: "shipped", OrderID: sh.OrderID})
		}
		return nil
	})
	if err != nil || len(outcome) == 0 {
		return err
	}
	return s.emit(ctx, tx, e, outcome...)
}

// takeReserved releases or ships (c) the hold of r's order on each of its
// lines' products, and returns the new levels and the quantities taken. A
// product whose stream holds nothing for the order (which the invariants
// rule out) is skipped and logged: an error would make the bus redeliver
// the event forever.
func (s *Service) takeReserved(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, r *reservation, c StockCommand) ([]event.StockLevel, []int64, error) {
	now := s.d.Now()
	md := eventstore.OriginMetadata(e.Origin())
	levels := []event.StockLevel{}
	var taken []int64
	for _, l := range r.Lines { // sorted by product id when reserved
		st, err := s.store.loadStockCached(ctx, tx, l.ProductID)
		if err != nil {
			return nil, nil, err
		}
		evs, err := decide(st.State, c)
		if err != nil {
			return nil, nil, err
		}
		if len(evs) == 0 {
			s.d.Log.Error("reserved product holds nothing for the order", "orderId", r.OrderID, "productId", l.ProductID)
			continue
		}
		if q := evs[0].Quantity; q < l.Quantity {
			s.d.Log.Error("reserved stock below the reservation", "orderId", r.OrderID, "productId", l.ProductID, "reserved", st.State.Reserved, "quantity", l.Quantity)
		}
		if err := s.store.saveStock(ctx, tx, st, md, now, evs...); err != nil {
			return nil, nil, err
		}
		levels, taken = append(levels, st.view().Level()), append(taken, evs[0].Quantity)
	}
	return levels, taken, nil
}

func (s *Service) emit(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, payloads ...event.Payload) error {
	return outbox.Emit(ctx, tx, service.Source(Name), e.Origin(), payloads...)
}
