package audit

import (
	"context"
	"fmt"
	"strconv"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/jsonw"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// onEvent adds e to the block of the batch being consumed (the inbox
// applies a partition's batch in one transaction, tx): the block is
// appended to the trail once the batch's work is done, just before tx
// commits (block.Flush), and archived on audit-events with it or with the
// blocks after it (archiver.go). A redelivered or replayed event is left
// out by the block itself (event_id UNIQUE, see store.appendBlock): the
// audit service deduplicates on its own (DeduplicatesEvents), so its
// consumer keeps no processed-event records besides the trail.
//
// Adding to the block is onEvent's last step and cannot fail, so a
// record the inbox rolls back to its savepoint never left anything in the
// block.
// DeduplicatesEvents marks the audit service as deduplicating events on
// its own (inbox.OwnDeduplication): the trail's event_id is UNIQUE and a
// block leaves out an event already recorded or twice in its batch.
func (s *Service) DeduplicatesEvents() {}

// ReadsEnvelopesOnly marks the audit service as reading envelopes only
// (inbox.EnvelopeReader): the trail records each envelope as it was
// published, so its consumer neither decodes nor validates payloads.
func (s *Service) ReadsEnvelopesOnly() {}

func (s *Service) onEvent(ctx context.Context, tx *sqldb.Tx, e *event.Envelope, _ event.Payload) error {
	// What json.Marshal of the envelope gives, as always (the chain hashes
	// it, Verify decodes it): the record's own bytes, not encoded again,
	// when they are that already, as Eventmart's publishers write them.
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
	h, row, err := s.claimHead(ctx, tx, rs)
	if err != nil {
		return err
	}
	base := h
	appended, err := s.store.appendBlock(ctx, tx, &h, rs)
	if err != nil {
		return err
	}
	if len(appended) < len(rs) {
		s.d.Log.Debug("events already in the audit trail", "events", len(rs)-len(appended))
	}
	if len(appended) > 0 && s.arch.due(h, appended, s.d.Now()) {
		if err := s.archiveBlock(ctx, tx, &h, appended); err != nil {
			return err
		}
	}
	if h != row {
		if err := setHead(ctx, tx, h); err != nil {
			return err
		}
	}
	if h != base {
		tx.OnCommit(func() { s.arch.committed(h, appended) })
	}
	return nil
}

// claimHead locks the chain head for the block rs and returns it (the
// head the block follows) and what the head's row holds now. Knowing the
// head it last committed, the process chains rs after it and moves the
// head's row past them at once, archived if the archive is due: the
// UPDATE takes the row's lock, and matches only if the head is still the
// one known (another instance may have appended since). Then the row
// holds the head Flush most likely ends with, and the block costs no
// SELECT. Otherwise the head is read locked (lockHead) and the row holds
// it.
func (s *Service) claimHead(ctx context.Context, tx *sqldb.Tx, rs []*record) (h, row head, err error) {
	if c, ok := s.arch.lastHead(); ok {
		chainRecords(c.Seq, c.Hash, rs)
		want := c
		want.Seq, want.Hash = rs[len(rs)-1].Seq, rs[len(rs)-1].Hash
		if s.arch.due(want, rs, s.d.Now()) {
			want.ArchivedSeq, want.ArchivedHash = want.Seq, want.Hash
		}
		res, err := tx.Exec(ctx, `UPDATE chain_head SET seq = ?, hash = ?, archived_seq = ?, archived_hash = ?
			WHERE id = 1 AND seq = ? AND hash = ? AND archived_seq = ? AND archived_hash = ?`,
			want.Seq, want.Hash, want.ArchivedSeq, want.ArchivedHash, c.Seq, c.Hash, c.ArchivedSeq, c.ArchivedHash)
		if err != nil {
			return h, row, fmt.Errorf("audit: advance chain head: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return h, row, fmt.Errorf("audit: advance chain head: %w", err)
		} else if n == 1 {
			return c, want, nil
		}
	}
	h, err = lockHead(ctx, tx)
	return h, h, err
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
	corr := "audit-block-" + strconv.FormatInt(first, 10) + "-" + strconv.FormatInt(last, 10)
	envs := make([]*event.Envelope, len(parts))
	for i, part := range parts {
		var err error
		envs[i], err = event.NewJSON(service.Source(Name), event.Origin{CorrelationID: corr, CausationID: corr},
			(&event.AuditBlockRecorded{}).EventType(), chainName, blockJSON(part, i+1, len(parts)))
		if err != nil {
			return fmt.Errorf("audit: archive: %w", err)
		}
	}
	return outbox.Add(ctx, tx, envs...)
}

// blockJSON is the JSON of the AuditBlockRecorded of part, part i of n,
// written here rather than by event.New: encoding/json would copy each
// record's envelope, a json.RawMessage, by scanning it (compacting it),
// half the CPU of an archive record, and scan the whole again when the
// envelope is marshalled (event.NewJSON spares that). The envelopes are
// compact JSON already (event.Envelope.Marshal wrote them), copied as
// they are; under the tests event.NewJSON checks what this writes
// against the type's schema and that it is compact.
func blockJSON(part []*record, i, n int) []byte {
	size := 200
	for _, r := range part {
		size += archiveSize(r)
	}
	b := make([]byte, 0, size)
	b = append(b, `{"chain":`...)
	b = jsonw.AppendString(b, chainName)
	b = append(b, `,"prevHash":`...)
	b = jsonw.AppendString(b, part[0].PrevHash)
	b = append(b, `,"hash":`...)
	b = jsonw.AppendString(b, part[len(part)-1].Hash)
	b = append(b, `,"part":`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `,"parts":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, `,"records":[`...)
	for j, r := range part {
		if j > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"seq":`...)
		b = strconv.AppendInt(b, r.Seq, 10)
		b = append(b, `,"eventId":`...)
		b = jsonw.AppendString(b, r.EventID)
		b = append(b, `,"eventType":`...)
		b = jsonw.AppendString(b, r.EventType)
		b = append(b, `,"topic":`...)
		b = jsonw.AppendString(b, r.Topic)
		b = append(b, `,"partition":`...)
		b = strconv.AppendInt(b, int64(r.Partition), 10)
		b = append(b, `,"offset":`...)
		b = strconv.AppendInt(b, r.Offset, 10)
		b = append(b, `,"key":`...)
		b = jsonw.AppendString(b, r.Key)
		b = append(b, `,"recordedAt":`...)
		b = strconv.AppendInt(b, r.RecordedAt, 10)
		b = append(b, `,"envelope":`...)
		b = append(b, r.Envelope...)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}
