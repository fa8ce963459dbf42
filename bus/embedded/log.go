package embedded

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/eventmart/eventmart/bus"
)

// maxWriteBatch bounds how many messages one transaction carries, so a
// burst cannot hold the write lock (and memory) without limit.
const maxWriteBatch = 8192

// writeReq is one Publish call or one offset commit, waiting for the
// writer. Exactly one of msgs and commit is set.
type writeReq struct {
	msgs   []*bus.Message
	commit *offsetCommit
	done   chan error
}

type offsetCommit struct {
	group     string
	topicID   int64
	partition int32
	next      int64
}

type tp struct {
	t *topic
	p int32
}

// rec is a message with its topic, resolved under the lock.
type rec struct {
	t *topic
	m *bus.Message
}

// Publish implements bus.Publisher.
func (b *Bus) Publish(ctx context.Context, msgs ...*bus.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	for _, m := range msgs {
		if _, err := b.topic(m.Topic); err != nil {
			return err
		}
	}
	return b.submit(ctx, &writeReq{msgs: msgs, done: make(chan error, 1)})
}

// enqueue hands req to the writer without waiting for its outcome, which
// req.done will receive.
func (b *Bus) enqueue(ctx context.Context, req *writeReq) (err error) {
	defer func() {
		// A send on the writes channel after Close is the only panic here.
		if recover() != nil {
			err = bus.ErrClosed
		}
	}()
	select {
	case b.writes <- req:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("embedded: %w", ctx.Err())
	}
}

// submit hands req to the writer and waits for its outcome.
func (b *Bus) submit(ctx context.Context, req *writeReq) error {
	if err := b.enqueue(ctx, req); err != nil {
		return err
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		// The write may still commit; the caller must treat it as unknown.
		return fmt.Errorf("embedded: %w", ctx.Err())
	}
}

// writer commits queued writes in batches until the channel is closed.
func (b *Bus) writer() {
	defer b.wg.Done()
	for req := range b.writes {
		batch := []*writeReq{req}
		n := len(req.msgs)
	drain:
		for n < maxWriteBatch {
			select {
			case r, ok := <-b.writes:
				if !ok {
					break drain
				}
				batch = append(batch, r)
				n += len(r.msgs)
			default:
				break drain
			}
		}
		err := b.commitBatch(batch)
		for _, r := range batch {
			r.done <- err
		}
	}
}

func (b *Bus) commitBatch(batch []*writeReq) error {
	now := b.cfg.now().UnixMilli()
	// Assign partitions and offsets on a copy; the topics' state moves only
	// once the transaction has committed.
	next := map[tp]int64{}
	lastTs := map[tp]int64{}
	var recs []rec
	b.mu.Lock()
	for _, r := range batch {
		for _, m := range r.msgs {
			t := b.topics[m.Topic]
			recs = append(recs, rec{t, m})
			var p int32
			if m.Key == nil {
				p = t.rr % t.partitions
				t.rr++
			} else {
				p = bus.PartitionFor(m.Key, t.partitions)
			}
			k := tp{t, p}
			if _, ok := next[k]; !ok {
				next[k], lastTs[k] = t.next[p], t.lastTs[p]
			}
			m.Partition, m.Offset = p, next[k]
			next[k]++
			ts := max(now, lastTs[k]) // monotonic per partition: OffsetAfter relies on it
			lastTs[k] = ts
			m.Timestamp = time.UnixMilli(ts).UTC()
		}
	}
	b.mu.Unlock()

	err := b.writeTx(recs, batch, next, lastTs)
	if err != nil {
		return fmt.Errorf("embedded: commit: %w", err)
	}
	if len(next) == 0 {
		return nil
	}
	// The tails take copies of their own (the publisher keeps its messages),
	// made outside the lock; only committed records go there.
	tailed := make([]*bus.Message, len(recs))
	for i, r := range recs {
		tailed[i] = frozen(r.m, r.t.name)
	}
	b.mu.Lock()
	for i, r := range recs {
		r.t.tails[r.m.Partition].append(tailed[i])
	}
	for k, n := range next {
		k.t.next[k.p], k.t.lastTs[k.p] = n, lastTs[k]
		close(k.t.appended[k.p])
		k.t.appended[k.p] = make(chan struct{})
		k.t.signalGrown()
	}
	b.mu.Unlock()
	return nil
}

// writeTx writes one batch in one transaction. A batch of offset commits
// only is committed without an fsync of its own (synchronous NORMAL for
// that transaction): it is in the WAL, so it survives a kill -9 of the
// process, and the next publish's fsync makes it durable against a power
// cut too. Until then a power cut can lose it, and the group then gets
// those messages again: at least once, as the bus contract allows (Kafka
// commits every second). With one message in flight most of the log's
// commits are such offset commits, one per consumer group and event; an
// fsync each made them cost more than the publishes.
func (b *Bus) writeTx(recs []rec, batch []*writeReq, next, lastTs map[tp]int64) error {
	ctx := context.Background()
	conn, err := b.wdb.Conn(ctx) // the only connection: nothing else writes meanwhile
	if err != nil {
		return err
	}
	defer conn.Close()
	if len(recs) == 0 {
		if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
			return err
		}
		defer func() {
			if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = FULL`); err != nil {
				// A connection left at NORMAL would not fsync publishes:
				// drop it; the pool opens a new one with the DSN's FULL.
				conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}()
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	ins := tx.StmtContext(ctx, b.insertRecord)
	for _, r := range recs {
		m := r.m
		if _, err := ins.Exec(recordID(r.t.id, m.Partition, m.Offset), m.Timestamp.UnixMilli(), m.Key, m.Value, encodeHeaders(m.Headers)); err != nil {
			return err
		}
	}
	offsets := tx.StmtContext(ctx, b.upsertOffset)
	for _, r := range batch {
		if c := r.commit; c != nil {
			if _, err := offsets.Exec(c.group, c.topicID, c.partition, c.next); err != nil {
				return err
			}
			b.offsetCommits.Add(1)
		}
	}
	parts := tx.StmtContext(ctx, b.upsertPartition)
	for k, n := range next {
		if _, err := parts.Exec(k.t.id, k.p, n, lastTs[k]); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Read implements bus.Reader. Reads at or after the first record of the
// partition's tail, which is where consumers keeping up read, are served
// from memory: the messages are the tail's own, shared with every other
// reader of them (bus.Reader.Read says callers do not modify them). Older
// ones are read from SQLite.
func (b *Bus) Read(ctx context.Context, topicName string, partition int32, from int64, limit int) ([]*bus.Message, error) {
	b.mu.Lock()
	t, ok := b.topics[topicName]
	closed := b.closed
	var tl *tail
	if ok && partition >= 0 && partition < t.partitions {
		tl = t.tails[partition]
	}
	b.mu.Unlock()
	switch {
	case closed:
		return nil, bus.ErrClosed
	case !ok:
		return nil, fmt.Errorf("embedded: %w: %s", bus.ErrUnknownTopic, topicName)
	case tl == nil:
		return nil, fmt.Errorf("embedded: %w: %s has no partition %d", bus.ErrUnknownTopic, topicName, partition)
	}
	if msgs, ok := tl.read(from, limit); ok {
		return msgs, nil
	}
	return b.readLog(ctx, t, partition, from, limit)
}

// readLog reads what Read does from SQLite: each call returns messages of
// its own.
func (b *Bus) readLog(ctx context.Context, t *topic, partition int32, from int64, limit int) ([]*bus.Message, error) {
	topicName := t.name
	base := recordID(t.id, partition, 0)
	rows, err := b.read.QueryContext(ctx, base+max(from, 0), base+1<<offsetBits, limit)
	if err != nil {
		return nil, fmt.Errorf("embedded: read %s/%d: %w", topicName, partition, err)
	}
	defer rows.Close()
	var out []*bus.Message
	var key, value, hdr sql.RawBytes
	names := map[string]string{} // header names, allocated once per batch
	for rows.Next() {
		m := &bus.Message{Topic: topicName, Partition: partition}
		var ts int64
		if err := rows.Scan(&m.Offset, &ts, &key, &value, &hdr); err != nil {
			return nil, fmt.Errorf("embedded: read %s/%d: %w", topicName, partition, err)
		}
		m.Offset -= base
		m.Timestamp = time.UnixMilli(ts).UTC()
		// One copy of the row's bytes, which key, value and header values
		// share, instead of one per column (RawBytes are the driver's, or
		// reused by the next Scan: never kept).
		buf := make([]byte, 0, len(key)+len(value)+len(hdr))
		m.Key, buf = carve(buf, key)
		m.Value, buf = carve(buf, value)
		headers, _ := carve(buf, hdr)
		if m.Headers, err = decodeHeaders(headers, names); err != nil {
			return nil, fmt.Errorf("embedded: read %s/%d@%d: %w", topicName, partition, m.Offset, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded: read %s/%d: %w", topicName, partition, err)
	}
	return out, nil
}

// carve appends b to buf and returns the copy (nil for nil: a NULL column)
// and buf.
func carve(buf, b []byte) ([]byte, []byte) {
	if b == nil {
		return nil, buf
	}
	n := len(buf)
	buf = append(buf, b...)
	return buf[n:len(buf):len(buf)], buf
}

// Ends implements bus.EndLister from memory.
func (b *Bus) Ends(ctx context.Context, topics []string) (map[string]map[int32]int64, error) {
	out := make(map[string]map[int32]int64, len(topics))
	for _, name := range topics {
		t, err := b.topic(name)
		if err != nil {
			return nil, err
		}
		b.mu.Lock()
		ends := make(map[int32]int64, t.partitions)
		for p := range t.partitions {
			ends[p] = t.next[p]
		}
		b.mu.Unlock()
		out[name] = ends
	}
	return out, nil
}

// Offsets implements bus.Reader.
func (b *Bus) Offsets(ctx context.Context, topicName string) ([]bus.PartitionOffsets, error) {
	t, err := b.topic(topicName)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	out := make([]bus.PartitionOffsets, t.partitions)
	for p := range out {
		out[p] = bus.PartitionOffsets{Partition: int32(p), End: t.next[p]}
	}
	b.mu.Unlock()
	for p := range out {
		start, err := b.logStart(ctx, t, int32(p), out[p].End)
		if err != nil {
			return nil, err
		}
		out[p].Start = start
	}
	return out, nil
}

// logStart is the first offset still kept, or end for an empty partition.
// Once read it is cached until retention deletes from the partition: a
// partition only grows at its end.
func (b *Bus) logStart(ctx context.Context, t *topic, p int32, end int64) (int64, error) {
	b.mu.Lock()
	cached, gen := t.start[p], t.startGen
	b.mu.Unlock()
	if cached >= 0 {
		return min(cached, end), nil
	}
	var start sql.NullInt64
	base := recordID(t.id, p, 0)
	err := b.rdb.QueryRowContext(ctx, `SELECT MIN(id) - ? FROM records WHERE id >= ? AND id < ?`, base, base, base+1<<offsetBits).Scan(&start)
	if err != nil {
		return 0, fmt.Errorf("embedded: offsets of %s/%d: %w", t.name, p, err)
	}
	first := end // empty: the next append, at end, is the start
	if start.Valid {
		first = start.Int64
	}
	b.mu.Lock()
	if t.startGen == gen {
		t.start[p] = first
	}
	b.mu.Unlock()
	return first, nil
}

// OffsetAfter implements bus.Reader.
func (b *Bus) OffsetAfter(ctx context.Context, topicName string, at time.Time) ([]bus.PartitionOffsets, error) {
	offs, err := b.Offsets(ctx, topicName)
	if err != nil {
		return nil, err
	}
	t, _ := b.topic(topicName)
	for i, o := range offs {
		found, err := b.firstAtOrAfter(ctx, t, o.Partition, o.Start, o.End, at.UnixMilli())
		if err != nil {
			return nil, err
		}
		offs[i].Start = found
	}
	return offs, nil
}

// firstAtOrAfter binary-searches [lo, hi) for the first offset with a
// timestamp at or after ms; timestamps are monotonic per partition.
func (b *Bus) firstAtOrAfter(ctx context.Context, t *topic, p int32, lo, hi, ms int64) (int64, error) {
	for lo < hi {
		mid := lo + (hi-lo)/2
		var off, ts int64
		// The first kept record at or after mid: retention may have holes at the start.
		base := recordID(t.id, p, 0)
		err := b.rdb.QueryRowContext(ctx, `SELECT id - ?, ts FROM records WHERE id >= ? AND id < ? ORDER BY id LIMIT 1`,
			base, base+mid, base+1<<offsetBits).Scan(&off, &ts)
		if errors.Is(err, sql.ErrNoRows) {
			return hi, nil
		}
		if err != nil {
			return 0, fmt.Errorf("embedded: find time in %s/%d: %w", t.name, p, err)
		}
		if ts >= ms {
			hi = mid
		} else {
			lo = off + 1
		}
	}
	return lo, nil
}

// ApplyRetention deletes, in every topic with a retention, the messages
// older than it, and returns how many it deleted. Like Kafka it keeps
// offsets: the log start moves forward, the next offset does not change.
func (b *Bus) ApplyRetention(ctx context.Context) (int64, error) {
	b.mu.Lock()
	ts := make([]*topic, 0, len(b.topics))
	for _, t := range b.topics {
		if t.retention > 0 {
			ts = append(ts, t)
		}
	}
	b.mu.Unlock()
	var deleted int64
	for _, t := range ts {
		cutoff := b.cfg.now().Add(-t.retention)
		offs, err := b.OffsetAfter(ctx, t.name, cutoff)
		if err != nil {
			return deleted, err
		}
		for _, o := range offs {
			base := recordID(t.id, o.Partition, 0)
			res, err := b.wdb.ExecContext(ctx, `DELETE FROM records WHERE id >= ? AND id < ?`, base, base+o.Start)
			if err != nil {
				return deleted, fmt.Errorf("embedded: retention of %s/%d: %w", t.name, o.Partition, err)
			}
			n, _ := res.RowsAffected()
			deleted += n
			b.mu.Lock()
			if n > 0 {
				t.start[o.Partition] = -1
				t.startGen++
			}
			tl := t.tails[o.Partition]
			b.mu.Unlock()
			tl.trim(o.Start) // a read after this one returns no deleted record
		}
	}
	return deleted, nil
}

func (b *Bus) retentionLoop() {
	defer b.wg.Done()
	tick := time.NewTicker(b.cfg.retentionEvery)
	defer tick.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-tick.C:
			// Errors here are retried at the next tick; a closed bus ends the loop.
			b.ApplyRetention(b.ctx)
		}
	}
}

func sortTopics(ts []bus.TopicConfig) {
	slices.SortFunc(ts, func(a, b bus.TopicConfig) int { return strings.Compare(a.Name, b.Name) })
}

// Lag implements bus.Admin from the group_offsets table.
func (b *Bus) Lag(ctx context.Context, group string, topics []string) ([]bus.PartitionLag, error) {
	var out []bus.PartitionLag
	for _, name := range topics {
		t, err := b.topic(name)
		if err != nil {
			return nil, err
		}
		offs, err := b.Offsets(ctx, name)
		if err != nil {
			return nil, err
		}
		committed := make(map[int32]int64, len(offs))
		rows, err := b.rdb.QueryContext(ctx, `SELECT partition, next_offset FROM group_offsets WHERE grp = ? AND topic_id = ?`, group, t.id)
		if err != nil {
			return nil, fmt.Errorf("embedded: lag of %s on %s: %w", group, name, err)
		}
		for rows.Next() {
			var p int32
			var next int64
			if err := rows.Scan(&p, &next); err != nil {
				rows.Close()
				return nil, fmt.Errorf("embedded: lag of %s on %s: %w", group, name, err)
			}
			committed[p] = next
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("embedded: lag of %s on %s: %w", group, name, err)
		}
		for _, o := range offs {
			l := bus.PartitionLag{Topic: name, Partition: o.Partition, Committed: -1, End: o.End}
			if c, ok := committed[o.Partition]; ok {
				l.Committed = c
			}
			l.Lag = o.End - max(l.Committed, o.Start)
			out = append(out, l)
		}
	}
	bus.SortLag(out)
	return out, nil
}
