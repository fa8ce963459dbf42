package catalog

import (
	"context"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// onInventoryAdjusted, onInventoryReserved and onInventoryReleased keep
// the availability read model: every inventory event carries the stock
// levels it changed. The levels are written with the batch's others in
// one statement before the transaction commits (store.applyLevelsLater).
func (s *Service) onInventoryAdjusted(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p *event.InventoryAdjusted) error {
	s.store.applyLevelsLater(tx, p.Level)
	return nil
}

func (s *Service) onInventoryReserved(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p *event.InventoryReserved) error {
	s.store.applyLevelsLater(tx, p.Levels...)
	return nil
}

func (s *Service) onInventoryReleased(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p *event.InventoryReleased) error {
	s.store.applyLevelsLater(tx, p.Levels...)
	return nil
}

// applyStock applies an inventory event's stock levels to table (the live
// one, or a fresh one being rebuilt); other events change nothing. It is
// the availability projection's Apply, which sees every event of the topic.
func (s *Service) applyStock(ctx context.Context, tx *sqldb.Tx, table string, _ *event.Envelope, p event.Payload) error {
	switch p := p.(type) {
	case *event.InventoryAdjusted:
		return s.applyLevels(ctx, tx, table, p.Level)
	case *event.InventoryReserved:
		return s.applyLevels(ctx, tx, table, p.Levels...)
	case *event.InventoryReleased:
		return s.applyLevels(ctx, tx, table, p.Levels...)
	}
	return nil
}

// applyLevels keeps the newest of levels in table: in the live one as the
// handlers do (catching up after a rebuild's swap), so that memory hears of
// them; in a table being rebuilt, which nothing reads yet, one at a time.
func (s *Service) applyLevels(ctx context.Context, tx *sqldb.Tx, table string, levels ...event.StockLevel) error {
	if table == stockTable {
		s.store.applyLevelsLater(tx, levels...)
		return nil
	}
	for _, l := range levels {
		if err := s.store.applyLevel(ctx, tx, table, l); err != nil {
			return err
		}
	}
	return nil
}
