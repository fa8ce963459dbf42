package catalog

import (
	"context"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// onStockEvent keeps the availability read model: every inventory event
// carries the stock levels it changed.
func (s *Service) onStockEvent(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p event.Payload) error {
	return s.applyStock(ctx, tx, stockTable, e, p)
}

// applyStock applies an inventory event's stock levels to table (the live
// one, or a fresh one being rebuilt); other events change nothing.
func (s *Service) applyStock(ctx context.Context, tx *sqldb.Tx, table string, _ *event.Envelope, p event.Payload) error {
	var levels []event.StockLevel
	switch p := p.(type) {
	case *event.InventoryAdjusted:
		levels = []event.StockLevel{p.Level}
	case *event.InventoryReserved:
		levels = p.Levels
	case *event.InventoryReleased:
		levels = p.Levels
	}
	for _, l := range levels {
		if err := s.store.applyLevel(ctx, tx, table, l); err != nil {
			return err
		}
	}
	return nil
}
