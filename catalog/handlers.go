package catalog

import (
	"context"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/sqldb"
)

func (s *Service) onInventoryAdjusted(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p event.Payload) error {
	return s.applyLevels(ctx, tx, p.(*event.InventoryAdjusted).Level)
}

func (s *Service) onInventoryReserved(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p event.Payload) error {
	return s.applyLevels(ctx, tx, p.(*event.InventoryReserved).Levels...)
}

func (s *Service) onInventoryReleased(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, p event.Payload) error {
	return s.applyLevels(ctx, tx, p.(*event.InventoryReleased).Levels...)
}

func (s *Service) applyLevels(ctx context.Context, tx *sqldb.Tx, levels ...event.StockLevel) error {
	for _, l := range levels {
		if _, err := s.store.applyLevel(ctx, tx, l); err != nil {
			return err
		}
	}
	return nil
}
