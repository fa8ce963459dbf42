package audit

import (
	"context"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// ExecForTest runs a statement on the service's database behind the
// append-only API, so tests can tamper with the trail.
func (s *Service) ExecForTest(ctx context.Context, q string, args ...any) error {
	_, err := s.d.DB.Exec(ctx, q, args...)
	return err
}

// AppendForTest records e in its own transaction, as the consumer would,
// so tests can append concurrently (several instances on PostgreSQL).
func (s *Service) AppendForTest(ctx context.Context, e *event.Envelope) error {
	return s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error { return s.onEvent(ctx, tx, e, nil) })
}
