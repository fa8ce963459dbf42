// Package embedded is the default bus driver: a durable, partitioned log in
// one SQLite file under the data directory, with consumer groups whose
// members live in this process. It needs no server, keeps every
// acknowledged message across a kill -9, and behaves like the Kafka driver
// as far as the bus contract goes (the conformance suite proves it).
//
// Why SQLite: see docs/embedded-log.md (measured against bbolt and pebble).
// Writes go through one goroutine that commits many publishes and offset
// commits in one transaction (group commit), so one fsync serves them all.
package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/internal/fsperm"
)

// Option configures Open.
type Option func(*config)

type config struct {
	retentionEvery time.Duration
	now            func() time.Time
	tailBytes      int // bound of each partition's tail; 0: the topic's share (tail.go)
}

// CheckRetentionEvery sets how often messages older than their topic's
// retention are deleted; default every minute. Zero or less disables the
// background check (ApplyRetention still works).
func CheckRetentionEvery(d time.Duration) Option { return func(c *config) { c.retentionEvery = d } }

// Clock replaces time.Now as the source of message timestamps and of
// retention's "now"; for tests.
func Clock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// Bus is the embedded log. It implements bus.Bus.
type Bus struct {
	cfg  config
	wdb  *sql.DB   // the single writer connection
	rdb  *sql.DB   // readers; WAL lets them run beside the writer
	read *sql.Stmt // the hot query of consumers, parsed once per connection

	// The writer's statements, parsed once: parsing them for every
	// commit cost as much CPU as running them.
	insertRecord, upsertOffset, upsertPartition *sql.Stmt
	offsetCommits                               atomic.Int64 // written by the writer: what work's spacing saves

	writes chan *writeReq
	ctx    context.Context // cancelled by Close: ends handlers' contexts
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	topics map[string]*topic
	groups map[string]*group
}

type topic struct {
	id         int64
	name       string
	partitions int32
	retention  time.Duration
	next       []int64 // next offset per partition (committed)
	lastTs     []int64 // last timestamp per partition, ms: keeps them monotonic
	// start caches the log start per partition (-1: not known yet), which
	// only retention moves: Offsets, asked every few seconds by probes,
	// the console and lag checks, then needs no query. startGen counts
	// retention's invalidations, so a start read before one is not cached.
	start    []int64
	startGen int64
	// appended[p] is closed and replaced when messages are committed to
	// partition p, waking only that partition's consumers.
	appended []chan struct{}
	// grown is closed and replaced when messages are committed to any of
	// t's partitions or partitions are added: what a follower waits for.
	grown chan struct{}
	rr    int32 // round robin for nil keys
	// tails[p] holds partition p's most recent committed records, from
	// which Read serves consumers near the end (tail.go).
	tails     []*tail
	tailBytes int
}

const schema = `
CREATE TABLE IF NOT EXISTS topics (
	id           INTEGER PRIMARY KEY,
	name         TEXT NOT NULL UNIQUE,
	partitions   INTEGER NOT NULL,
	retention_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS partitions (
	topic_id    INTEGER NOT NULL,
	partition   INTEGER NOT NULL,
	next_offset INTEGER NOT NULL,
	last_ts     INTEGER NOT NULL,
	PRIMARY KEY (topic_id, partition)
) WITHOUT ROWID;
-- id packs (topic, partition, offset): see recordID. A rowid table keeps
-- 1 KiB rows in its leaf pages, where a WITHOUT ROWID table would spill
-- each to an overflow page (3.4x the disk, a third of the throughput).
CREATE TABLE IF NOT EXISTS records (
	id      INTEGER PRIMARY KEY,
	ts      INTEGER NOT NULL,
	key     BLOB,
	value   BLOB,
	headers BLOB
);
CREATE TABLE IF NOT EXISTS group_offsets (
	grp         TEXT NOT NULL,
	topic_id    INTEGER NOT NULL,
	partition   INTEGER NOT NULL,
	next_offset INTEGER NOT NULL,
	PRIMARY KEY (grp, topic_id, partition)
) WITHOUT ROWID;
`

// Open opens (creating if needed) the log in the SQLite file at path and
// starts its writer. Close it when done.
func Open(path string, opts ...Option) (*Bus, error) {
	cfg := config{retentionEvery: time.Minute, now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	if err := fsperm.Create(path); err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	// synchronous(FULL): a commit returns after the WAL is fsynced, so an
	// acknowledged publish survives a kill -9 and a power cut.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=temp_store(MEMORY)&_txlock=immediate"
	wdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	if _, err := wdb.Exec(schema); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("embedded: create schema in %s: %w", path, err)
	}
	rdb, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=query_only(1)")
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("embedded: open %s: %w", path, err)
	}
	rdb.SetMaxOpenConns(8)
	rdb.SetMaxIdleConns(8)
	ctx, cancel := context.WithCancel(context.Background())
	b := &Bus{
		cfg: cfg, wdb: wdb, rdb: rdb,
		writes: make(chan *writeReq, 1024),
		ctx:    ctx, cancel: cancel,
		topics: map[string]*topic{},
		groups: map[string]*group{},
	}
	if err := b.prepare(); err != nil {
		b.closeDBs()
		cancel()
		return nil, fmt.Errorf("embedded: prepare: %w", err)
	}
	if err := b.loadTopics(); err != nil {
		b.closeDBs()
		cancel()
		return nil, err
	}
	b.wg.Add(1)
	go b.writer()
	if cfg.retentionEvery > 0 {
		b.wg.Add(1)
		go b.retentionLoop()
	}
	return b, nil
}

// Limits of the packed record id: topic id (11 bits) | partition (12 bits)
// | offset (40 bits). Ample for one machine; Kafka is the way beyond.
const (
	maxTopics     = 1<<11 - 1
	maxPartitions = 1 << 12
	offsetBits    = 40
)

// recordID is the records table key of offset off in partition p of the
// topic with id topicID; one partition's records are one contiguous range.
func recordID(topicID int64, p int32, off int64) int64 {
	return topicID<<(offsetBits+12) | int64(p)<<offsetBits | off
}

func (b *Bus) loadTopics() error {
	rows, err := b.wdb.Query(`SELECT id, name, partitions, retention_ms FROM topics`)
	if err != nil {
		return fmt.Errorf("embedded: load topics: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		t := &topic{}
		var ret int64
		if err := rows.Scan(&t.id, &t.name, &t.partitions, &ret); err != nil {
			return fmt.Errorf("embedded: load topics: %w", err)
		}
		t.tailBytes = b.tailBytesFor(t.partitions)
		t.retention = time.Duration(ret) * time.Millisecond
		t.grow(t.partitions)
		b.topics[t.name] = t
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("embedded: load topics: %w", err)
	}
	byID := map[int64]*topic{}
	for _, t := range b.topics {
		byID[t.id] = t
	}
	prows, err := b.wdb.Query(`SELECT topic_id, partition, next_offset, last_ts FROM partitions`)
	if err != nil {
		return fmt.Errorf("embedded: load partitions: %w", err)
	}
	defer prows.Close()
	for prows.Next() {
		var id, next, ts int64
		var p int32
		if err := prows.Scan(&id, &p, &next, &ts); err != nil {
			return fmt.Errorf("embedded: load partitions: %w", err)
		}
		if t := byID[id]; t != nil && p < t.partitions {
			t.next[p], t.lastTs[p] = next, ts
			t.tails[p] = newTail(t.tailBytes, next) // empty: what came before is read from SQLite
		}
	}
	return prows.Err()
}

// Close stops the writer after pending writes, cancels running handlers'
// contexts and closes the database. Subscriptions should have returned
// before; later calls fail with bus.ErrClosed.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return bus.ErrClosed
	}
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	close(b.writes)
	b.wg.Wait()
	return b.closeDBs()
}

// prepare parses the hot statements once.
func (b *Bus) prepare() error {
	var err error
	prep := func(db *sql.DB, query string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = db.Prepare(query)
		return st
	}
	b.read = prep(b.rdb, `SELECT id, ts, key, value, headers FROM records WHERE id >= ? AND id < ? ORDER BY id LIMIT ?`)
	b.insertRecord = prep(b.wdb, `INSERT INTO records (id, ts, key, value, headers) VALUES (?, ?, ?, ?, ?)`)
	b.upsertOffset = prep(b.wdb, `INSERT INTO group_offsets (grp, topic_id, partition, next_offset) VALUES (?, ?, ?, ?)
		ON CONFLICT (grp, topic_id, partition) DO UPDATE SET next_offset = excluded.next_offset`)
	b.upsertPartition = prep(b.wdb, `INSERT INTO partitions (topic_id, partition, next_offset, last_ts) VALUES (?, ?, ?, ?)
		ON CONFLICT (topic_id, partition) DO UPDATE SET next_offset = excluded.next_offset, last_ts = excluded.last_ts`)
	return err
}

func (b *Bus) closeDBs() error {
	return errors.Join(b.rdb.Close(), b.wdb.Close())
}

func (b *Bus) topic(name string) (*topic, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, bus.ErrClosed
	}
	t, ok := b.topics[name]
	if !ok {
		return nil, fmt.Errorf("embedded: %w: %s", bus.ErrUnknownTopic, name)
	}
	return t, nil
}

// EnsureTopics implements bus.Admin.
func (b *Bus) EnsureTopics(ctx context.Context, want []bus.TopicConfig) ([]bus.TopicChange, error) {
	var changes []bus.TopicChange
	for _, w := range want {
		if w.Partitions < 1 || w.Partitions > maxPartitions {
			return changes, fmt.Errorf("embedded: topic %s: partitions must be 1 to %d, got %d", w.Name, maxPartitions, w.Partitions)
		}
		ret := max(w.Retention, 0)
		ch, err := b.ensureTopic(ctx, w.Name, w.Partitions, ret)
		if err != nil {
			return changes, err
		}
		changes = append(changes, ch)
	}
	return changes, nil
}

func (b *Bus) ensureTopic(ctx context.Context, name string, parts int32, ret time.Duration) (bus.TopicChange, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return bus.TopicChange{}, bus.ErrClosed
	}
	t, exists := b.topics[name]
	change := bus.TopicChange{Topic: name, Action: "unchanged"}
	switch {
	case !exists:
		if len(b.topics) >= maxTopics {
			return change, fmt.Errorf("embedded: create topic %s: the embedded log holds at most %d topics", name, maxTopics)
		}
		res, err := b.wdb.ExecContext(ctx, `INSERT INTO topics (name, partitions, retention_ms) VALUES (?, ?, ?)`, name, parts, ret.Milliseconds())
		if err != nil {
			return change, fmt.Errorf("embedded: create topic %s: %w", name, err)
		}
		id, _ := res.LastInsertId()
		t := &topic{id: id, name: name, retention: ret, tailBytes: b.tailBytesFor(parts)}
		t.grow(parts)
		b.topics[name] = t
		change.Action, change.Detail = "created", fmt.Sprintf("%d partitions, retention %s", parts, ret)
		return change, nil
	case parts < t.partitions:
		change.Action = "drift"
		change.Detail = fmt.Sprintf("has %d partitions, want %d: partitions are never shrunk", t.partitions, parts)
	case parts > t.partitions:
		change.Action = "partitions increased"
		change.Detail = fmt.Sprintf("%d -> %d", t.partitions, parts)
	}
	if ret != t.retention {
		if change.Action == "unchanged" {
			change.Action = "retention updated"
		}
		change.Detail = join(change.Detail, fmt.Sprintf("retention %s -> %s", t.retention, ret))
	}
	newParts := max(parts, t.partitions)
	if change.Action == "unchanged" || (change.Action == "drift" && ret == t.retention) {
		return change, nil
	}
	if _, err := b.wdb.ExecContext(ctx, `UPDATE topics SET partitions = ?, retention_ms = ? WHERE id = ?`, newParts, ret.Milliseconds(), t.id); err != nil {
		return change, fmt.Errorf("embedded: update topic %s: %w", name, err)
	}
	t.retention = ret
	if newParts > t.partitions {
		t.grow(newParts)
		for _, g := range b.groups {
			g.rebalance()
		}
	}
	return change, nil
}

// grow extends t's per-partition state to n partitions.
func (t *topic) grow(n int32) {
	for p := int32(len(t.next)); p < n; p++ {
		t.next = append(t.next, 0)
		t.lastTs = append(t.lastTs, 0)
		t.appended = append(t.appended, make(chan struct{}))
		t.start = append(t.start, -1)
		t.tails = append(t.tails, newTail(t.tailBytes, 0))
	}
	t.partitions = n
	t.signalGrown()
}

// signalGrown wakes t's followers; b.mu must be held (or t not shared yet).
func (t *topic) signalGrown() {
	if t.grown != nil {
		close(t.grown)
	}
	t.grown = make(chan struct{})
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// Topics implements bus.Admin.
func (b *Bus) Topics(ctx context.Context) ([]bus.TopicConfig, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, bus.ErrClosed
	}
	out := make([]bus.TopicConfig, 0, len(b.topics))
	for _, t := range b.topics {
		out = append(out, bus.TopicConfig{Name: t.name, Partitions: t.partitions, Retention: t.retention})
	}
	sortTopics(out)
	return out, nil
}
