package audit

import (
	"context"
	"fmt"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// onEvent appends e to the trail and publishes the new record as
// AuditRecorded to audit-events, in the same transaction. The inbox already drops redeliveries;
// event_id UNIQUE is the second guard (see store.appendRecord).
func (s *Service) onEvent(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, _ event.Payload) error {
	env, err := e.Marshal()
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	r := &record{
		EventID:       e.EventID,
		EventType:     string(e.EventType),
		Topic:         string(event.TopicOf(e.EventType)),
		Key:           e.Key,
		Partition:     e.Partition,
		Offset:        e.Offset,
		CorrelationID: e.CorrelationID,
		CausationID:   e.CausationID,
		Source:        e.Source,
		OccurredAt:    e.Timestamp.UnixMilli(),
		RecordedAt:    s.d.Now().UnixMilli(),
		Envelope:      env,
	}
	appended, err := s.store.appendRecord(ctx, tx, r)
	if err != nil {
		return err
	}
	if !appended {
		s.d.Log.Debug("event already in the audit trail", "eventId", e.EventID, "eventType", e.EventType)
		return nil
	}
	return outbox.Emit(ctx, tx, service.Source(Name), e.Origin(), &event.AuditRecorded{
		Seq: r.Seq, EventID: r.EventID, Type: r.EventType, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
		Key: r.Key, RecordedAt: r.RecordedAt, PrevHash: r.PrevHash, Hash: r.Hash, Envelope: r.Envelope,
	})
}
