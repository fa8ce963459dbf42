package audit

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/sqldb"
)

type store struct{ db *sqldb.DB }

// record is one row of audit_log.
type record struct {
	Seq           int64
	EventID       string
	EventType     string
	Topic         string
	Key           string
	Partition     int32 // of the recorded record on Topic; -1 unknown
	Offset        int64
	CorrelationID string
	CausationID   string
	Source        string
	OccurredAt    int64 // envelope timestamp, Unix ms
	RecordedAt    int64 // Unix ms
	Envelope      []byte
	PrevHash      string
	Hash          string
}

// head is the row of chain_head: the chain's last link, and how far the
// archive on audit-events has got (the records up to ArchivedSeq are in
// the outbox or published; ArchivedHash is record ArchivedSeq's hash).
type head struct {
	Seq          int64
	Hash         string
	ArchivedSeq  int64
	ArchivedHash string
}

// lockHead reads the chain head with a row lock, so concurrent appenders
// (several instances on PostgreSQL) queue on it and the chain never forks;
// the lock is held until tx ends.
func lockHead(ctx context.Context, tx *sqldb.Tx) (head, error) {
	var h head
	if err := tx.QueryRow(ctx, `SELECT seq, hash, archived_seq, archived_hash FROM chain_head WHERE id = 1`+tx.ForUpdate()).
		Scan(&h.Seq, &h.Hash, &h.ArchivedSeq, &h.ArchivedHash); err != nil {
		return h, fmt.Errorf("audit: read chain head: %w", err)
	}
	return h, nil
}

// setHead writes h to chain_head, locked by lockHead.
func setHead(ctx context.Context, tx *sqldb.Tx, h head) error {
	if _, err := tx.Exec(ctx, `UPDATE chain_head SET seq = ?, hash = ?, archived_seq = ?, archived_hash = ? WHERE id = 1`,
		h.Seq, h.Hash, h.ArchivedSeq, h.ArchivedHash); err != nil {
		return fmt.Errorf("audit: advance chain head: %w", err)
	}
	return nil
}

// appendBlock appends rs, the records of one batch in the order consumed,
// to the chain within tx as one block after h, the head read locked
// (lockHead), and returns those it appended, h moved to the last of them
// (the caller writes it back, setHead): an event already in the trail
// (event_id UNIQUE), or twice in rs, is left out. It assigns each its
// seq, prev_hash and hash (chainHash: each record's hash chains from the
// one before, so the block's digest is its last record's hash) and
// inserts them with one multi-row statement.
//
// With the head's lock and update, three statements for the whole block,
// two when claimHead's UPDATE locks the head. Should the insert skip a record (a duplicate), the block's rows are
// taken back and inserted again without the duplicates.
func (s *store) appendBlock(ctx context.Context, tx *sqldb.Tx, h *head, rs []*record) ([]*record, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	n, err := insertChained(ctx, tx, h.Seq, h.Hash, rs)
	if err != nil {
		return nil, err
	}
	if n != len(rs) {
		// A redelivery or a replay (the trail is its own guard against
		// them: inbox.OwnDeduplication); rare outside a replay, which
		// pays an insert, a delete and a look-up per block. The
		// rows after the head are this block's alone (the head is locked):
		// should there be others, which only a hand on the table could
		// have put there, the transaction fails and leaves them.
		res, err := tx.Exec(ctx, `DELETE FROM audit_log WHERE seq > ?`, h.Seq)
		if err != nil {
			return nil, fmt.Errorf("audit: take back a block: %w", err)
		}
		if taken, err := res.RowsAffected(); err != nil || taken != int64(n) {
			return nil, fmt.Errorf("audit: take back a block: %d rows after the chain head %d, %d of them the block's (%v)", taken, h.Seq, n, err)
		}
		if rs, err = s.newRecords(ctx, tx, rs); err != nil {
			return nil, err
		}
		if n, err = insertChained(ctx, tx, h.Seq, h.Hash, rs); err != nil {
			return nil, err
		}
		if n != len(rs) {
			return nil, fmt.Errorf("audit: append a block: %d of %d records inserted", n, len(rs))
		}
		if len(rs) == 0 {
			return nil, nil
		}
	}
	last := rs[len(rs)-1]
	h.Seq, h.Hash = last.Seq, last.Hash
	return rs, nil
}

// insertRows bounds the rows of one INSERT: 15 parameters each stay under
// SQLite's 32766 and PostgreSQL's 65535 parameters.
const insertRows = 512

// insertChained chains rs after the head (headSeq, headHash) and inserts
// them, skipping any whose event_id is in the trail; it returns how many
// it inserted. One statement inserts up to insertRows records.
func insertChained(ctx context.Context, tx *sqldb.Tx, headSeq int64, headHash string, rs []*record) (int, error) {
	chainRecords(headSeq, headHash, rs)
	inserted := 0
	for len(rs) > 0 {
		chunk := rs[:min(len(rs), insertRows)]
		rs = rs[len(chunk):]
		rows := sqldb.SizeClass(len(chunk)) // the rest padding
		args := make([]any, 0, 15*rows)
		for _, r := range chunk {
			args = append(args, r.Seq, r.EventID, r.EventType, r.Topic, r.Key, r.Partition, r.Offset, r.CorrelationID, r.CausationID,
				r.Source, r.OccurredAt, r.RecordedAt, string(r.Envelope), r.PrevHash, r.Hash)
		}
		args = append(args, make([]any, 15*(rows-len(chunk)))...) // padding rows, all NULL
		res, err := tx.Exec(ctx, insertStatement(tx.Dialect(), rows), args...)
		if err != nil {
			return 0, fmt.Errorf("audit: append a block: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("audit: append a block: %w", err)
		}
		inserted += int(n)
	}
	return inserted, nil
}

// chainRecords assigns rs their seq, prev_hash and hash after the head
// (headSeq, headHash). A record chained at the same place before (by
// claimHead) keeps its hash: the hash is a function of the place and the
// record's content, which does not change.
func chainRecords(headSeq int64, headHash string, rs []*record) {
	prev := headHash
	var scratch []byte
	for i, r := range rs {
		if seq := headSeq + 1 + int64(i); r.Hash == "" || r.Seq != seq || r.PrevHash != prev {
			r.Seq, r.PrevHash = seq, prev
			r.Hash, scratch = hashRecord(scratch, prev, r)
		}
		prev = r.Hash
	}
}

// insertStatement returns the INSERT of up to rows records into audit_log:
// rows of parameters, of which the rows padded with NULLs are left out.
// Its text depends on rows alone, and rows is a power of two (sqldb.SizeClass),
// so the databases prepare and keep ten statements at most, not one per
// block size (SQLite's prepared programs grow with their rows: one per
// size up to 500 held some 190 MB). The casts type the parameters on
// PostgreSQL, which does not infer them from the table in INSERT … SELECT.
//
// A record whose event is in the trail is skipped (see appendBlock); any
// other conflict is an error on PostgreSQL. On SQLite every conflict
// skips its row (OR IGNORE), which appendBlock tells from a duplicate:
// with a constraint that may abort it midway, SQLite keeps a statement
// journal of every page the multi-row INSERT changes, spilt to a
// temporary file beyond 64 KiB, a quarter of the INSERT's CPU.
func insertStatement(d sqldb.Dialect, rows int) string {
	const row = "(CAST(? AS BIGINT), ?, ?, ?, ?, CAST(? AS INTEGER), CAST(? AS BIGINT), ?, ?, ?, CAST(? AS BIGINT), CAST(? AS BIGINT), ?, ?, ?)"
	insert, tail := `INSERT`, ` ON CONFLICT (event_id) DO NOTHING`
	if d == sqldb.SQLite {
		insert, tail = `INSERT OR IGNORE`, ``
	}
	return insert + ` INTO audit_log (seq, event_id, event_type, topic, record_key, record_partition, record_offset, correlation_id, causation_id, source, occurred_at, recorded_at, envelope, prev_hash, hash)
		SELECT * FROM (VALUES ` + strings.TrimSuffix(strings.Repeat(row+", ", rows), ", ") + `) AS v WHERE column1 IS NOT NULL` + tail
}

// newRecords returns rs without the records whose event is in the trail
// already or earlier in rs.
func (s *store) newRecords(ctx context.Context, tx *sqldb.Tx, rs []*record) ([]*record, error) {
	seen := make(map[string]bool, len(rs))
	ids := make([]string, 0, len(rs))
	for _, r := range rs {
		if !seen[r.EventID] {
			seen[r.EventID] = true
			ids = append(ids, r.EventID)
		}
	}
	found, err := sqldb.ListIn(ctx, tx, `SELECT event_id FROM audit_log WHERE event_id`, ``, ids, sqldb.ScanOne[string])
	if err != nil {
		return nil, fmt.Errorf("audit: look up recorded events: %w", err)
	}
	recorded := make(map[string]bool, len(found))
	for _, id := range found {
		recorded[id] = true
	}
	out := rs[:0:0]
	for _, r := range rs {
		if !recorded[r.EventID] {
			recorded[r.EventID] = true // a second copy in rs is left out too
			out = append(out, r)
		}
	}
	return out, nil
}

// readRecords returns the records after seq after, up to seq upTo and at
// most limit of them, in seq order, with what the archive carries.
func readRecords(ctx context.Context, tx *sqldb.Tx, after, upTo int64, limit int) ([]*record, error) {
	out, err := sqldb.List(ctx, tx, `SELECT seq, event_id, event_type, topic, record_key, record_partition, record_offset, recorded_at, envelope, prev_hash, hash
		FROM audit_log WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?`, []any{after, upTo, limit}, func(r sqldb.Scanner) (*record, error) {
		rec := &record{}
		var env string
		err := r.Scan(&rec.Seq, &rec.EventID, &rec.EventType, &rec.Topic, &rec.Key, &rec.Partition, &rec.Offset, &rec.RecordedAt, &env, &rec.PrevHash, &rec.Hash)
		rec.Envelope = []byte(env)
		return rec, err
	})
	if err != nil {
		return nil, fmt.Errorf("audit: read records to archive: %w", err)
	}
	return out, nil
}

// verifyBatch is how many records verify reads per query: memory stays
// bounded however long the trail, and no read holds a snapshot for long.
const verifyBatch = 1000

// verify walks the chain up to the head read at its start (see
// Service.Verify).
func (s *store) verify(ctx context.Context) (VerifyResult, error) {
	var res VerifyResult
	var headSeq int64
	var headHash string
	if err := s.db.QueryRow(ctx, `SELECT seq, hash FROM chain_head WHERE id = 1`).Scan(&headSeq, &headHash); err != nil {
		return res, fmt.Errorf("audit: read chain head: %w", err)
	}
	lastSeq, lastHash := int64(0), GenesisHash
	bad := func(seq int64, format string, args ...any) {
		if res.FirstBad == 0 {
			res.FirstBad, res.Reason = seq, fmt.Sprintf(format, args...)
		}
	}
	for {
		n := 0
		rows, err := s.db.Query(ctx, `SELECT seq, event_id, event_type, topic, record_key, correlation_id, causation_id, source, occurred_at, recorded_at, envelope, prev_hash, hash
			FROM audit_log WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?`, lastSeq, headSeq, verifyBatch)
		if err != nil {
			return res, fmt.Errorf("audit: verify: %w", err)
		}
		for rows.Next() {
			var r record
			var env string
			if err := rows.Scan(&r.Seq, &r.EventID, &r.EventType, &r.Topic, &r.Key, &r.CorrelationID, &r.CausationID, &r.Source,
				&r.OccurredAt, &r.RecordedAt, &env, &r.PrevHash, &r.Hash); err != nil {
				rows.Close()
				return res, fmt.Errorf("audit: verify: %w", err)
			}
			r.Envelope = []byte(env)
			n++
			res.Records++
			switch {
			case r.Seq != lastSeq+1:
				bad(lastSeq+1, "gap in seq: record %d is missing (the record after %d is %d)", lastSeq+1, lastSeq, r.Seq)
			case r.PrevHash != lastHash:
				bad(r.Seq, "prev_hash mismatch: record %d links to %s, but the previous record's hash is %s", r.Seq, r.PrevHash, lastHash)
			case chainHash(r.PrevHash, &r) != r.Hash:
				bad(r.Seq, "hash mismatch: record %d's content does not match its hash", r.Seq)
			default:
				if why := columnsDisagree(&r); why != "" {
					bad(r.Seq, "record %d: %s", r.Seq, why)
				}
			}
			lastSeq, lastHash = r.Seq, r.Hash
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return res, fmt.Errorf("audit: verify: %w", err)
		}
		if n < verifyBatch {
			break
		}
	}
	switch {
	case lastSeq != headSeq:
		bad(lastSeq+1, "the log ends at record %d but the chain head is at %d: the last records were deleted", lastSeq, headSeq)
	case lastHash != headHash:
		bad(headSeq, "hash mismatch: record %d's hash is not the chain head's", headSeq)
	}
	return res, nil
}

// columnsDisagree says which queried column of r does not match r's
// envelope, or "". The hash covers the envelope, not these copies of its
// fields, and queries filter on the copies.
func columnsDisagree(r *record) string {
	e, err := event.Decode(r.Envelope)
	if err != nil {
		return "the envelope is not a valid event: " + err.Error()
	}
	for _, c := range []struct {
		column, got, want string
	}{
		{"event_id", r.EventID, e.EventID},
		{"event_type", r.EventType, string(e.EventType)},
		{"correlation_id", r.CorrelationID, e.CorrelationID},
		{"causation_id", r.CausationID, e.CausationID},
		{"source", r.Source, e.Source},
	} {
		if c.got != c.want {
			return fmt.Sprintf("column %s (%q) disagrees with the envelope (%q)", c.column, c.got, c.want)
		}
	}
	if r.OccurredAt != e.Timestamp.UnixMilli() {
		return fmt.Sprintf("column occurred_at (%d) disagrees with the envelope timestamp (%d)", r.OccurredAt, e.Timestamp.UnixMilli())
	}
	return ""
}

// Query selects records of the trail; zero fields do not filter.
type Query struct {
	CorrelationID string
	EventID       string // one event (the console finds an analytics detection's evidence by it)
	Type          string
	Entity        string // the record (partition) key
	From, To      *int64 // occurred_at bounds in Unix ms: From <= t < To; nil = unbounded
	Limit, Offset int
}

// where returns the SQL conditions and arguments of q's filters other
// than the correlation id.
func (q Query) where() (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, arg any) {
		conds = append(conds, cond)
		args = append(args, arg)
	}
	if q.EventID != "" {
		add(`event_id = ?`, q.EventID)
	}
	if q.Type != "" {
		add(`event_type = ?`, q.Type)
	}
	if q.Entity != "" {
		add(`record_key = ?`, q.Entity)
	}
	if q.From != nil {
		add(`occurred_at >= ?`, *q.From)
	}
	if q.To != nil {
		add(`occurred_at < ?`, *q.To)
	}
	if len(conds) == 0 {
		return "1 = 1", nil
	}
	return strings.Join(conds, " AND "), args
}

// maxCausal bounds the events of one correlation id ordered causally (in
// memory, without their envelopes). A saga has a few dozen.
const maxCausal = 10000

// list returns the envelopes q selects: in seq order, or, with a
// correlation id, in causal order (see causalOrder).
func (s *store) list(ctx context.Context, q Query) ([]json.RawMessage, error) {
	cond, args := q.where()
	if q.CorrelationID == "" {
		out, err := sqldb.List(ctx, s.db, `SELECT envelope FROM audit_log WHERE `+cond+` ORDER BY seq LIMIT ? OFFSET ?`,
			append(args, q.Limit, q.Offset), func(r sqldb.Scanner) (json.RawMessage, error) {
				var env string
				err := r.Scan(&env)
				return json.RawMessage(env), err
			})
		if err != nil {
			return nil, fmt.Errorf("audit: list events: %w", err)
		}
		return out, nil
	}
	seqs, err := s.causalPage(ctx, q, cond, args)
	if err != nil {
		return nil, err
	}
	return s.envelopes(ctx, seqs)
}

// causalPage returns the seqs of the requested page of q's correlation id
// in causal order. The order is computed over every event of the
// correlation id, so that filtering out a parent still places its
// children after it; the filters then pick among them.
func (s *store) causalPage(ctx context.Context, q Query, cond string, args []any) ([]int64, error) {
	match := map[int64]bool{}
	rows, err := s.db.Query(ctx, `SELECT seq FROM audit_log WHERE correlation_id = ? AND `+cond+` LIMIT ?`,
		append(append([]any{q.CorrelationID}, args...), maxCausal+1)...)
	if err != nil {
		return nil, fmt.Errorf("audit: list events: %w", err)
	}
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			rows.Close()
			return nil, fmt.Errorf("audit: list events: %w", err)
		}
		match[seq] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: list events: %w", err)
	}
	if len(match) == 0 {
		return nil, nil
	}
	nodes, err := sqldb.List(ctx, s.db, `SELECT seq, event_id, causation_id, occurred_at FROM audit_log WHERE correlation_id = ? ORDER BY seq LIMIT ?`,
		[]any{q.CorrelationID, maxCausal + 1}, func(r sqldb.Scanner) (*node, error) {
			n := &node{}
			return n, r.Scan(&n.seq, &n.id, &n.cause, &n.at)
		})
	if err != nil {
		return nil, fmt.Errorf("audit: list events: %w", err)
	}
	if len(nodes) > maxCausal {
		return nil, eventmart.Errorf(eventmart.EINVALID, "correlationId %q has more than %d events, too many to order causally", q.CorrelationID, maxCausal)
	}
	var page []int64
	skip := q.Offset
	for _, n := range causalOrder(nodes) {
		if !match[n.seq] {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		page = append(page, n.seq)
		if len(page) == q.Limit {
			break
		}
	}
	return page, nil
}

// envelopes returns the envelopes of seqs, in that order.
func (s *store) envelopes(ctx context.Context, seqs []int64) ([]json.RawMessage, error) {
	out := []json.RawMessage{}
	if len(seqs) == 0 {
		return out, nil
	}
	args := make([]any, len(seqs))
	for i, seq := range seqs {
		args[i] = seq
	}
	rows, err := s.db.Query(ctx, `SELECT seq, envelope FROM audit_log WHERE seq IN (`+sqldb.Placeholders(len(seqs))+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("audit: read envelopes: %w", err)
	}
	defer rows.Close()
	bySeq := map[int64]string{}
	for rows.Next() {
		var seq int64
		var env string
		if err := rows.Scan(&seq, &env); err != nil {
			return nil, fmt.Errorf("audit: read envelopes: %w", err)
		}
		bySeq[seq] = env
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: read envelopes: %w", err)
	}
	for _, seq := range seqs {
		if env, ok := bySeq[seq]; ok { // rows are never deleted, unless tampered with
			out = append(out, json.RawMessage(env))
		}
	}
	return out, nil
}

// node is an event in the causal graph of one correlation id.
type node struct {
	seq   int64
	id    string
	cause string
	at    int64
	kids  []*node
}

// causalOrder sorts nodes so that every event comes after the event that
// caused it (its causation id, when that is among nodes); among events
// whose causes are placed, the earliest occurred_at, then the lowest seq,
// comes first. Roots are the events caused by something outside the set
// (the request) or by themselves. Nodes left over by a causation cycle,
// which only a faulty producer could make, follow in the same tie order.
func causalOrder(nodes []*node) []*node {
	byID := make(map[string]*node, len(nodes))
	for _, n := range nodes {
		byID[n.id] = n
	}
	ready := &nodeHeap{}
	for _, n := range nodes {
		if p, ok := byID[n.cause]; ok && p != n {
			p.kids = append(p.kids, n)
		} else {
			heap.Push(ready, n)
		}
	}
	out := make([]*node, 0, len(nodes))
	placed := make(map[*node]bool, len(nodes))
	for ready.Len() > 0 {
		n := heap.Pop(ready).(*node)
		out = append(out, n)
		placed[n] = true
		for _, k := range n.kids {
			heap.Push(ready, k)
		}
	}
	if len(out) < len(nodes) {
		for _, n := range nodes {
			if !placed[n] {
				heap.Push(ready, n)
			}
		}
		for ready.Len() > 0 {
			out = append(out, heap.Pop(ready).(*node))
		}
	}
	return out
}

// nodeHeap orders nodes by occurred_at, then seq.
type nodeHeap []*node

func (h nodeHeap) Len() int { return len(h) }
func (h nodeHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h nodeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *nodeHeap) Push(x any)   { *h = append(*h, x.(*node)) }
func (h *nodeHeap) Pop() any {
	old := *h
	n := old[len(old)-1]
	*h = old[:len(old)-1]
	return n
}
