package audit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/eventmart/eventmart/internal/sqldb"
)

// The archive on audit-events follows the chain by ArchiveDelay, twice
// that at most: a block is archived with the blocks before it that are
// not archived yet once they are ArchiveRecords records or the oldest of
// them is ArchiveDelay old, in the transaction of the block that makes it
// due; what no block made due, the service's Run archives when the oldest
// is twice ArchiveDelay old (under load a block comes first: Run's own
// transaction, one more commit, is for the tail).
// One AuditBlockRecorded (and one outbox row, one Kafka record) thus
// carries a stretch of consecutive blocks: with one order in flight every
// event is a block of its own, and archiving each cost a Kafka record per
// event. The chain itself is not delayed: each block is appended, and
// verifiable, when its batch commits; only the archive copy waits, in
// audit_log, for twice ArchiveDelay at most while the service runs.
const (
	ArchiveDelay   = 100 * time.Millisecond
	ArchiveRecords = 256
)

// archivePoll is how often Run looks for unarchived records without being
// told of any: those another instance left (on PostgreSQL only the
// instance holding the service's lease runs Run), or a process that
// stopped before archiving. One read of the chain head.
const archivePoll = 10 * time.Second

// maxArchiveRead bounds the records one archive reads back from audit_log
// (records this process does not hold: another instance's, or a run's
// before a restart); the rest follow in the next.
const maxArchiveRead = 4096

// archiver keeps what the archive needs between transactions: the records
// committed after the archive's position, so that archiving them does not
// read them back, and the policy.
type archiver struct {
	delay   time.Duration // 0: every block is archived as it is appended
	records int
	wake    chan struct{} // told when records are left unarchived

	mu sync.Mutex
	// after is the archive's position as last committed in this process,
	// pending the records committed after it that this process appended,
	// pending[i].Seq == after+1+i. pending may stop short of the chain
	// head (records of another instance), and is only a cache: what it
	// gives is checked against the chain (take).
	after   int64
	pending []*record
	// head is the chain head as last committed in this process, if known.
	head  head
	known bool
}

func newArchiver() *archiver {
	return &archiver{delay: ArchiveDelay, records: ArchiveRecords, wake: make(chan struct{}, 1)}
}

// due reports whether the unarchived records, ending with appended (just
// appended, h the head after them), are to be archived now: ArchiveRecords
// of them, or the oldest ArchiveDelay old. When this process does not hold
// the oldest, it is taken as old.
func (a *archiver) due(h head, appended []*record, now time.Time) bool {
	if a.delay <= 0 || h.Seq-h.ArchivedSeq >= int64(a.records) {
		return true
	}
	if appended[0].Seq == h.ArchivedSeq+1 {
		return false // only the block itself, recorded just now
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.after != h.ArchivedSeq || len(a.pending) == 0 {
		return true
	}
	return now.UnixMilli()-a.pending[0].RecordedAt >= a.delay.Milliseconds()
}

// oldest returns when the oldest record this process knows to be
// unarchived was recorded (Unix ms), and whether there is one.
func (a *archiver) oldest() (int64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.pending) == 0 {
		return 0, false
	}
	return a.pending[0].RecordedAt, true
}

// committed takes note of a committed transaction that left the head at
// h, having appended appended (none for an archive of its own).
func (a *archiver) committed(h head, appended []*record) {
	a.mu.Lock()
	if !a.known || h.Seq > a.head.Seq || h.Seq == a.head.Seq && h.ArchivedSeq >= a.head.ArchivedSeq {
		a.head, a.known = h, true // not an older commit reported late
	}
	if h.ArchivedSeq != a.after {
		if k := h.ArchivedSeq - a.after; k > 0 && k <= int64(len(a.pending)) {
			a.pending = append([]*record(nil), a.pending[k:]...)
		} else {
			a.pending = nil
		}
		a.after = h.ArchivedSeq
	}
	if len(appended) > 0 && appended[0].Seq > a.after && appended[0].Seq == a.after+int64(len(a.pending))+1 {
		a.pending = append(a.pending, appended...)
	}
	left := h.Seq > h.ArchivedSeq
	a.mu.Unlock()
	if left {
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
}

// lastHead returns the chain head as last committed in this process, if
// it knows one: what claimHead expects the head to be.
func (a *archiver) lastHead() (head, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.head, a.known
}

// take returns a copy of the records after h's archive position up to seq
// upTo, whose hash is upToHash, from the cache, or nil if it does not
// hold them or they do not chain from h.ArchivedHash to upToHash (the
// hashes vouch for their content: they are the rows of audit_log).
func (a *archiver) take(h head, upTo int64, upToHash string) []*record {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := upTo - h.ArchivedSeq
	if a.after != h.ArchivedSeq || n <= 0 || n > int64(len(a.pending)) {
		return nil
	}
	prev := h.ArchivedHash
	for _, r := range a.pending[:n] {
		if r.PrevHash != prev {
			return nil
		}
		prev = r.Hash
	}
	if prev != upToHash {
		return nil
	}
	return append([]*record(nil), a.pending[:n]...)
}

// unarchived returns the records after h's archive position up to seq
// upTo (hash upToHash), at most maxArchiveRead of them when read back
// from audit_log.
func (s *Service) unarchived(ctx context.Context, tx *sqldb.Tx, h head, upTo int64, upToHash string) ([]*record, error) {
	if rs := s.arch.take(h, upTo, upToHash); rs != nil {
		return rs, nil
	}
	return readRecords(ctx, tx, h.ArchivedSeq, upTo, maxArchiveRead)
}

// archiveBlock archives, within tx, the unarchived records up to and with
// appended, the block just appended (h the head after it), and moves h's
// archive position past them. Should the records before the block be more
// than one read takes, those read are archived, and the block later.
func (s *Service) archiveBlock(ctx context.Context, tx *sqldb.Tx, h *head, appended []*record) error {
	rs := appended
	if first := appended[0]; first.Seq > h.ArchivedSeq+1 {
		earlier, err := s.unarchived(ctx, tx, *h, first.Seq-1, first.PrevHash)
		if err != nil {
			return err
		}
		if int64(len(earlier)) < first.Seq-1-h.ArchivedSeq {
			rs = earlier
		} else {
			rs = append(earlier, appended...)
		}
	}
	return s.archiveRecords(ctx, tx, h, rs)
}

// archiveRecords archives rs, the records after h's archive position, and
// moves the position to the last of them.
func (s *Service) archiveRecords(ctx context.Context, tx *sqldb.Tx, h *head, rs []*record) error {
	if len(rs) == 0 || rs[0].Seq != h.ArchivedSeq+1 {
		return fmt.Errorf("audit: archive: record %d is missing from the trail (see eventmart audit verify)", h.ArchivedSeq+1)
	}
	if err := archive(ctx, tx, rs); err != nil {
		return err
	}
	last := rs[len(rs)-1]
	h.ArchivedSeq, h.ArchivedHash = last.Seq, last.Hash
	return nil
}

// archivePending archives, in a transaction of its own, the records the
// chain holds unarchived, whatever their age: the tail no later block made
// due. It reads the head without a lock first, so that it costs one read
// when there is none.
func (s *Service) archivePending(ctx context.Context) error {
	var seq, archived int64
	if err := s.d.DB.QueryRow(ctx, `SELECT seq, archived_seq FROM chain_head WHERE id = 1`).Scan(&seq, &archived); err != nil {
		return fmt.Errorf("audit: read chain head: %w", err)
	}
	if archived >= seq {
		return nil
	}
	for {
		left := false
		err := s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
			h, err := lockHead(ctx, tx)
			if err != nil || h.ArchivedSeq >= h.Seq {
				return err
			}
			rs, err := s.unarchived(ctx, tx, h, h.Seq, h.Hash)
			if err != nil {
				return err
			}
			if err := s.archiveRecords(ctx, tx, &h, rs); err != nil {
				return err
			}
			if err := setHead(ctx, tx, h); err != nil {
				return err
			}
			left = h.ArchivedSeq < h.Seq
			tx.OnCommit(func() { s.arch.committed(h, nil) })
			return nil
		})
		if err != nil {
			return err
		}
		if s.d.Outbox != nil {
			s.d.Outbox.Notify()
		}
		if !left {
			return nil
		}
	}
}

// Run archives the records no block made due (see ArchiveDelay): at
// start, what an earlier run left; then twice ArchiveDelay after the
// oldest record left unarchived was recorded, and every archivePoll.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.arch.wake:
			if at, ok := s.arch.oldest(); ok {
				t.Reset(time.Until(time.UnixMilli(at).Add(2 * s.arch.delay)))
			}
		case <-t.C:
			if err := s.archivePending(ctx); err != nil && ctx.Err() == nil {
				s.d.Log.Warn("audit: archive the trail's last records", "err", err)
			}
			t.Reset(archivePoll)
		}
	}
}
