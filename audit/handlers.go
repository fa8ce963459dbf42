package audit

import (
	"context"
	"fmt"
	"strconv"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// onEvent adds e to the block of the batch being consumed (the inbox
// applies a partition's batch in one transaction, tx): the block is
// appended to the trail once the batch's work is done, just before tx
// commits (block.Flush), and archived on audit-events with it or with the
// blocks after it (archiver.go). The inbox already
// drops redeliveries; event_id UNIQUE is the second guard (see
// store.appendBlock).
//
// Adding to the block is onEvent's last step and cannot fail, so a
// record the inbox rolls back to its savepoint never left anything in the
// block.
func (s *Service) onEvent(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, _ event.Payload) error {
	env, err := e.Marshal()
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	b := tx.Pending(blockKey{}, func() sqldb.Pending { return &block{s: s} }).(*block)
	b.records = append(b.records, &record{
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
	})
	return nil
}

// blockKey names the block among a transaction's pending writes.
type blockKey struct{}

// block is the records a transaction's work recorded, appended to the
// chain as one block before it commits.
type block struct {
	s       *Service
	records []*record
}

// Flush appends the block to the trail, and archives what is unarchived
// of the trail when it is due (see archiver.go): sqldb.Pending.
func (b *block) Flush(ctx context.Context, tx *sqldb.Tx) error {
	rs := b.records
	b.records = nil
	s := b.s
	if len(rs) == 0 {
		return nil
	}
	h, err := lockHead(ctx, tx)
	if err != nil {
		return err
	}
	appended, err := s.store.appendBlock(ctx, tx, &h, rs)
	if err != nil {
		return err
	}
	if len(appended) < len(rs) {
		s.d.Log.Debug("events already in the audit trail", "events", len(rs)-len(appended))
	}
	if len(appended) == 0 {
		return nil
	}
	if s.arch.due(h, appended, s.d.Now()) {
		if err := s.archiveBlock(ctx, tx, &h, appended); err != nil {
			return err
		}
	}
	if err := setHead(ctx, tx, h); err != nil {
		return err
	}
	tx.OnCommit(func() { s.arch.committed(h, appended) })
	return nil
}

// Discard drops the block: the work that recorded it was rolled back.
func (b *block) Discard() { b.records = nil }

// MaxArchivePart bounds the records of one AuditBlockRecorded, in bytes of
// their JSON (estimated from above, see archiveSize): a block beyond it is
// archived in several parts, so that a part stays well under Kafka's
// default max.message.bytes (1 MiB) with its envelope and headers. A
// single record beyond it (its event's envelope alone may be up to
// event.MaxEnvelopeSize) is a part of its own.
const MaxArchivePart = 512 << 10

// archiveSize bounds the JSON of r in an AuditBlockRecorded from above:
// the envelope is compact JSON with HTML characters escaped already (as
// event.Envelope.Marshal writes it), so it is copied as is; the key may
// be anything, escaped at worst to 6 bytes a byte; the rest is names and
// numbers.
func archiveSize(r *record) int {
	return len(r.Envelope) + 6*len(r.Key) + len(r.EventID) + len(r.EventType) + len(r.Topic) + 200
}

// chainName is the partition key of every AuditBlockRecorded: the blocks
// sit on one partition of audit-events, in chain order.
const chainName = "audit"

// archive publishes rs, consecutive records of the chain (one block or
// several, in seq order), to audit-events as AuditBlockRecorded, in as
// few parts as MaxArchivePart allows: one outbox row, and one Kafka
// record, per part.
func archive(ctx context.Context, tx *sqldb.Tx, rs []*record) error {
	if len(rs) == 0 {
		return nil
	}
	var parts [][]*record
	size := 0
	for i, r := range rs {
		n := archiveSize(r)
		if i == 0 || size+n > MaxArchivePart {
			parts = append(parts, nil)
			size = 0
		}
		parts[len(parts)-1] = append(parts[len(parts)-1], r)
		size += n
	}
	// The records have as many causes as correlation ids: the archive
	// record is its own, named by its seqs.
	first, last := rs[0].Seq, rs[len(rs)-1].Seq
	o := event.FromRequest("audit-block-"+strconv.FormatInt(first, 10)+"-"+strconv.FormatInt(last, 10), event.Metadata{})
	payloads := make([]event.Payload, len(parts))
	for i, part := range parts {
		p := &event.AuditBlockRecorded{Chain: chainName, PrevHash: part[0].PrevHash, Hash: part[len(part)-1].Hash,
			Part: i + 1, Parts: len(parts), Records: make([]event.AuditBlockRecord, len(part))}
		for j, r := range part {
			p.Records[j] = event.AuditBlockRecord{Seq: r.Seq, EventID: r.EventID, Type: r.EventType, Topic: r.Topic,
				Partition: r.Partition, Offset: r.Offset, Key: r.Key, RecordedAt: r.RecordedAt, Envelope: r.Envelope}
		}
		payloads[i] = p
	}
	return outbox.Emit(ctx, tx, service.Source(Name), o, payloads...)
}
