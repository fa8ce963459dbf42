// Package outbox is the transactional outbox: a service writes the events a
// state change causes into its own database, in the same transaction as the
// change, and a Relay publishes them to the bus afterwards. Nothing is lost
// if the process dies between commit and publish: the rows are still there
// and the relay publishes them on restart (consumers are idempotent, so a
// publish repeated after a crash is harmless).
package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Migration creates the outbox table; services include it among their
// migrations (see Migrations).
const Migration = `
CREATE TABLE IF NOT EXISTS outbox (
	id         {{ID}},
	topic      TEXT NOT NULL,
	msg_key    {{BLOB}},
	value      {{BLOB}} NOT NULL,
	headers    TEXT NOT NULL,
	created_at BIGINT NOT NULL
);`

// Add writes envelopes to the outbox within tx, in order. ctx's span, if
// any, becomes their traceparent. The rows are buffered in tx and inserted
// together, one statement for all the events a transaction adds, before it
// commits (sqldb.Tx.Pending): a batch of events costs one outbox insert.
func Add(ctx context.Context, tx *sqldb.Tx, envs ...*event.Envelope) error {
	rows := pendingRows(tx)
	now := time.Now().UnixMilli()
	for _, e := range envs {
		m, err := eventmsg.Encode(ctx, e)
		if err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		hdr, err := encodeHeaders(m.Headers)
		if err != nil {
			return fmt.Errorf("outbox: headers of %s: %w", e.EventID, err)
		}
		rows.Add(m.Topic, m.Key, m.Value, hdr, now)
	}
	return nil
}

// pendingKey keys a transaction's buffer of outbox rows.
type pendingKey struct{}

// pendingRows returns tx's buffer of outbox rows. Ids are assigned in
// insert order, so the relay publishes the rows in the order added.
//
// On PostgreSQL the insert also notifies Channel (pg_notify in its
// RETURNING clause: no statement of its own), which the server delivers
// when the transaction commits, to the relay of whichever instance
// relays: it need not poll for rows. The notifications of a transaction
// are one (PostgreSQL folds identical ones).
func pendingRows(tx *sqldb.Tx) *sqldb.Rows {
	return tx.Pending(pendingKey{}, func() sqldb.Pending {
		tail := ""
		if tx.Dialect() == sqldb.Postgres {
			tail = `RETURNING pg_notify('` + Channel + `', '')`
		}
		return sqldb.NewRows(`INSERT INTO outbox (topic, msg_key, value, headers, created_at) VALUES`, 5, tail)
	}).(*sqldb.Rows)
}

// Channel is the PostgreSQL notification channel on which a commit that
// added outbox rows tells the relay (LISTEN/NOTIFY, per database).
const Channel = "eventmart_outbox"

// Emit builds the events of payloads, emitted by source with origin o (a
// request's event.FromRequest, or the causing event's Origin()), and adds
// them to the outbox within tx.
func Emit(ctx context.Context, tx *sqldb.Tx, source string, o event.Origin, payloads ...event.Payload) error {
	for _, p := range payloads {
		if _, err := EmitOne(ctx, tx, source, o, p); err != nil {
			return err
		}
	}
	return nil
}

// EmitOne is Emit of one payload that returns the event it added, for a
// record that keeps the event's id or correlation id to continue its saga
// later.
func EmitOne(ctx context.Context, tx *sqldb.Tx, source string, o event.Origin, p event.Payload) (*event.Envelope, error) {
	e, err := event.New(source, o, p)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	if err := Add(ctx, tx, e); err != nil {
		return nil, err
	}
	return e, nil
}

// Relay publishes a database's outbox rows to the bus in id order, in
// batches, and deletes them once the bus acknowledged them.
type Relay struct {
	db    *sqldb.DB
	pub   bus.Publisher
	log   *slog.Logger
	wake  chan struct{}
	batch int

	// Poll is how often the relay looks for rows without being told. On
	// SQLite, which one process owns and whose every commit notifies
	// (Notify), it is a safety net. On PostgreSQL it is the interval
	// while the relay is not listening for the commits' notifications
	// (Channel): until its LISTEN took, and after its listening
	// connection failed. Set it before Run.
	Poll time.Duration

	// SafetyPoll is how often a relay listening on PostgreSQL looks for
	// rows without being notified. Every commit adding rows notifies,
	// those of the service's other instances too (only the instance
	// holding the service's lease relays), so it is a safety net only.
	// Set it before Run.
	SafetyPoll time.Duration

	// listening is set while the relay's connection LISTENs on Channel
	// (PostgreSQL): the commits' notifications wake the relay then.
	listening atomic.Bool

	// published is, on SQLite, the highest id published: the rows up to
	// it are published, and deleted or about to be (see Run).
	published atomic.Int64

	// unsettled is, on PostgreSQL, the ids published and not known to
	// be deleted (see Run): reads skip them, Backlog does not count them.
	unsettled atomic.Pointer[[]int64]

	// reads counts the relay's reads of the outbox (see Reads).
	reads atomic.Int64

	// Pin, if set, is asked once per batch which event types to publish at
	// an older version than the one they were written at (type -> version,
	// e.g. OrderCreated -> v1): such events are downcast
	// (event.Envelope.AtVersion) so consumers that know only that version
	// keep working during a rolling upgrade.
	Pin func() map[event.Type]string
}

// A new relay's Poll: PostgreSQL (see Poll) and SQLite. On SQLite it
// was 100 ms too, and an idle process queried each service's outbox ten
// times a second for nothing. DefaultSafetyPoll is its SafetyPoll: on
// PostgreSQL the relays of an idle deployment each read once in that
// interval, not ten times a second.
const (
	DefaultPoll       = 100 * time.Millisecond
	DefaultPollSQLite = time.Second
	DefaultSafetyPoll = 5 * time.Second
)

// NewRelay returns a relay of db's outbox to pub. It publishes at once
// after Notify (or, on PostgreSQL, a commit's notification), and looks
// for rows every Poll (SafetyPoll while listening) besides.
func NewRelay(db *sqldb.DB, pub bus.Publisher, log *slog.Logger) *Relay {
	r := &Relay{db: db, pub: pub, log: log, wake: make(chan struct{}, 1), batch: 1000, Poll: DefaultPoll, SafetyPoll: DefaultSafetyPoll}
	if db.Dialect == sqldb.SQLite {
		r.Poll = DefaultPollSQLite
	}
	return r
}

// EmitNow emits payloads in a transaction of their own and wakes the
// relay: for events that record something that changed no state of the
// service (a login, a refused request), so there is nothing to commit them
// with. Once it returns nil they are durable and will be published.
func (r *Relay) EmitNow(ctx context.Context, source string, o event.Origin, payloads ...event.Payload) error {
	if err := r.db.InTx(ctx, func(tx *sqldb.Tx) error { return Emit(ctx, tx, source, o, payloads...) }); err != nil {
		return err
	}
	r.Notify()
	return nil
}

// Notify tells the relay that rows were committed; it never blocks. While
// the relay listens on PostgreSQL it does nothing: the commit's
// notification wakes the relay, and only a commit that added rows sends
// one (a consumer's batch that emitted nothing calls Notify too; waking
// the relay for it would cost a read).
func (r *Relay) Notify() {
	if r.listening.Load() {
		return
	}
	r.wakeUp()
}

func (r *Relay) wakeUp() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run relays until ctx is cancelled, then returns nil. Publish failures are
// logged and retried with backoff; rows stay until published.
//
// Published rows are deleted together, once deleteAt of them wait or the
// oldest waited deleteEvery, and when Run returns, in the background
// while the next batches are read and published (at most one delete
// outstanding): an event committed during a round waits for one SELECT
// and one publish, not a delete transaction as well, and a delete (a
// commit, an fsync) per batch of one event, which cost a tenth of an
// embedded process's CPU, is one per group. On SQLite the delete joins
// the next transaction another writer commits (within deleteEvery; see
// deleteAsync) rather than committing alone. Reads skip the published
// rows: on SQLite they start after the last published id (ids grow in
// commit order there: one writer, AUTOINCREMENT); on PostgreSQL, where a
// lower id may commit after a higher one was read, they leave out the
// published ids (unsettled). Should a delete fail, or the process die, or
// the lease move to another instance (PostgreSQL) before the rows are
// deleted, they are published again: at least once, as always.
//
// On PostgreSQL the relay LISTENs on Channel on a connection of its own,
// and reads when a commit that added rows notifies; it polls every
// SafetyPoll besides, every Poll while it is not listening.
func (r *Relay) Run(ctx context.Context) error {
	if r.db.Dialect == sqldb.Postgres {
		lctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); r.listen(lctx) }()
		defer func() { stop(); wg.Wait() }()
	}
	backoff := 50 * time.Millisecond
	timer := time.NewTimer(0)
	defer timer.Stop()
	var deleting *deletion
	var waiting []int64 // published, not deleted yet
	var since time.Time // when the first of waiting was published
	track := func() {
		if r.db.Dialect != sqldb.Postgres {
			return
		}
		ids := slices.Clip(slices.Concat(waiting, deleting.rows()))
		r.unsettled.Store(&ids)
	}
	settle := func() {
		if deleting == nil {
			return
		}
		if err := <-deleting.done; err != nil {
			r.log.Error("outbox relay: deleting published rows failed; they will be published again", "rows", len(deleting.ids), "error", err)
			r.published.Store(0) // SQLite: read them again (PostgreSQL: track drops them from unsettled)
		}
		deleting = nil
		track()
	}
	deleteWaiting := func(ride time.Duration) {
		settle()
		deleting = r.deleteAsync(context.WithoutCancel(ctx), waiting, ride)
		waiting = nil
		track()
	}
	defer func() {
		if len(waiting) > 0 {
			deleteWaiting(0)
		}
		settle()
	}()
	for {
		ids, err := r.publish(ctx, r.skipped())
		if len(ids) > 0 {
			if len(waiting) == 0 {
				since = time.Now()
			}
			waiting = append(waiting, ids...)
			track()
		}
		if len(waiting) >= deleteAt || (len(waiting) > 0 && time.Since(since) >= deleteEvery) {
			deleteWaiting(deleteEvery)
		}
		wait := r.Poll
		if r.listening.Load() {
			wait = r.SafetyPoll
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			r.log.Error("outbox relay failed", "error", err, "retry_in", backoff)
			wait, backoff = backoff, min(backoff*2, 5*time.Second)
		case len(ids) == r.batch:
			backoff = 50 * time.Millisecond
			continue // more rows are waiting
		default:
			backoff = 50 * time.Millisecond
		}
		if len(waiting) > 0 {
			wait = min(wait, max(deleteEvery-time.Since(since), 0))
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-timer.C:
		}
	}
}

// Published rows are deleted once deleteAt wait or the oldest waited
// deleteEvery (see Run).
const (
	deleteAt    = 500
	deleteEvery = 200 * time.Millisecond
)

// deletion is a delete of published rows running in the background.
type deletion struct {
	ids  []int64
	done chan error
}

// rows returns the ids d deletes; none if d is nil.
func (d *deletion) rows() []int64 {
	if d == nil {
		return nil
	}
	return d.ids
}

// deleteAsync deletes ids in the background; with ride > 0 the delete
// joins the next transaction another writer of the database commits, up
// to ride later (sqldb.DB.InTxWithNext): on SQLite it costs a commit, an
// fsync, of its own only when no other writer commits meanwhile.
func (r *Relay) deleteAsync(ctx context.Context, ids []int64, ride time.Duration) *deletion {
	d := &deletion{ids: ids, done: make(chan error, 1)}
	go func() { d.done <- r.deleteRiding(ctx, ids, ride) }()
	return d
}

// skipped returns, on PostgreSQL, the published rows a read must leave
// out (unsettled); never nil there, as a NULL array would match no row.
func (r *Relay) skipped() []int64 {
	if p := r.unsettled.Load(); p != nil && *p != nil {
		return *p
	}
	return []int64{}
}

// listen keeps a connection of the relay's own LISTENing on Channel and
// wakes the relay on every notification, until ctx ends. When the
// connection fails it listens again, after a pause growing to a minute;
// meanwhile the relay polls every Poll.
func (r *Relay) listen(ctx context.Context) {
	r.db.Listen(ctx, Channel, sqldb.Listener{
		Listening: func() {
			r.listening.Store(true)
			r.wakeUp() // rows committed before the LISTEN took
		},
		Lost: func(err error, retryIn time.Duration) {
			r.listening.Store(false)
			r.wakeUp() // the relay polls again: see Run
			r.log.Warn("outbox relay: not listening for commits; polling meanwhile", "error", err, "poll", r.Poll.String(), "retry_in", retryIn.String())
		},
		Notified: func(string) { r.wakeUp() },
	})
	r.listening.Store(false)
}

// RelayOnce publishes one batch of the oldest rows and deletes them,
// returning how many it relayed.
func (r *Relay) RelayOnce(ctx context.Context) (int, error) {
	ids, err := r.publish(ctx, r.skipped())
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	if err := r.delete(ctx, ids); err != nil {
		return 0, err
	}
	return len(ids), nil
}

// publish reads up to a batch of the oldest rows not published yet (on
// PostgreSQL, except those in skip), publishes them and returns their ids
// once the bus has acknowledged them.
func (r *Relay) publish(ctx context.Context, skip []int64) ([]int64, error) {
	var rows *sql.Rows
	var err error
	r.reads.Add(1) // before the database counts it (see Reads)
	switch {
	case r.db.Dialect == sqldb.Postgres && len(skip) == 0:
		// The usual read, with nothing published left to skip: a filter
		// of an empty list made PostgreSQL plan every read anew (its
		// custom plan, which knows the list empty, looks cheaper than
		// the generic one). The limit is written in the text for the
		// same reason: a parameter has no value the generic plan knows.
		rows, err = r.db.Query(ctx, `SELECT id, topic, msg_key, value, headers FROM outbox ORDER BY id LIMIT `+strconv.Itoa(r.batch))
	case r.db.Dialect == sqldb.Postgres:
		rows, err = r.db.Query(ctx, `SELECT id, topic, msg_key, value, headers FROM outbox WHERE id <> ALL(?) ORDER BY id LIMIT `+strconv.Itoa(r.batch), skip)
	default:
		// Not cancellable: with a context that can end, the SQLite driver
		// starts a goroutine per query to interrupt it, a cost on every
		// read of a read that takes well under a millisecond; Run looks at
		// ctx again once it returns.
		rows, err = r.db.Query(context.WithoutCancel(ctx), `SELECT id, topic, msg_key, value, headers FROM outbox WHERE id > ? ORDER BY id LIMIT ?`, r.published.Load(), r.batch)
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: read: %w", err)
	}
	var ids []int64
	var msgs []*bus.Message
	for rows.Next() {
		var id int64
		var hdr []byte
		m := &bus.Message{}
		if err := rows.Scan(&id, &m.Topic, &m.Key, &m.Value, &hdr); err != nil {
			rows.Close()
			return nil, fmt.Errorf("outbox: read: %w", err)
		}
		if m.Headers, err = decodeHeaders(hdr); err != nil {
			rows.Close()
			return nil, fmt.Errorf("outbox: headers of row %d: %w", id, err)
		}
		ids = append(ids, id)
		msgs = append(msgs, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("outbox: read: %w", err)
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	if r.Pin != nil {
		if pins := r.Pin(); len(pins) > 0 {
			for _, m := range msgs {
				r.pin(m, pins)
			}
		}
	}
	if err := r.pub.Publish(ctx, msgs...); err != nil {
		return nil, fmt.Errorf("outbox: publish %d events: %w", len(msgs), err)
	}
	if r.db.Dialect == sqldb.SQLite {
		r.published.Store(ids[len(ids)-1])
	}
	return ids, nil
}

// delete deletes the published rows ids. Exactly those: on PostgreSQL a
// lower id may commit after a higher one was read, so "id <= max" could
// drop an unsent row.
func (r *Relay) delete(ctx context.Context, ids []int64) error { return r.deleteRiding(ctx, ids, 0) }

// deleteRiding is delete, in a transaction of its own (ride 0) or joining
// the next one another writer commits, up to ride later.
func (r *Relay) deleteRiding(ctx context.Context, ids []int64, ride time.Duration) error {
	work := func(tx *sqldb.Tx) error {
		if r.db.Dialect == sqldb.Postgres { // one statement text for any number of rows
			_, err := tx.Exec(ctx, `DELETE FROM outbox WHERE id = ANY(?)`, ids)
			return err
		}
		for i := 0; i < len(ids); i += 500 {
			chunk := ids[i:min(i+500, len(ids))]
			args := make([]any, len(chunk))
			for j, id := range chunk {
				args[j] = id
			}
			args = sqldb.PadIn(args)
			if _, err := tx.Exec(ctx, `DELETE FROM outbox WHERE id IN (`+sqldb.Placeholders(len(args))+`)`, args...); err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	if ride > 0 {
		err = r.db.InTxWithNext(ctx, ride, work)
	} else {
		err = r.db.InTx(ctx, work)
	}
	if err != nil {
		return fmt.Errorf("outbox: delete published rows: %w", err)
	}
	return nil
}

// pin rewrites m at its type's pinned version, if any. An event that cannot
// be downcast is published as written, and the failure logged.
func (r *Relay) pin(m *bus.Message, pins map[event.Type]string) {
	v, ok := pins[event.Type(m.Header(eventmsg.HeaderEventType))]
	if !ok || m.Header(eventmsg.HeaderEventVersion) == v {
		return
	}
	e, err := eventmsg.Decode(m)
	if err == nil {
		e, err = e.AtVersion(v)
	}
	var value []byte
	if err == nil {
		value, err = e.Marshal()
	}
	if err != nil {
		r.log.Error("outbox: cannot publish the pinned version; publishing as written", "eventType", m.Header(eventmsg.HeaderEventType), "version", v, "error", err)
		return
	}
	m.Value = value
	for i, h := range m.Headers {
		switch h.Key {
		case eventmsg.HeaderEventVersion:
			m.Headers[i].Value = []byte(v)
		case eventmsg.HeaderCEType:
			m.Headers[i].Value = []byte(eventmsg.CloudEventType(e.EventType, v))
		}
	}
}

// ParsePins parses "Type=version,…" (EVENTMART_EMIT_VERSIONS): each type
// must be in the catalog and the version one of its prior versions that
// can be downcast to.
func ParsePins(s string) (map[event.Type]string, error) {
	out := map[event.Type]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		t, v, ok := strings.Cut(part, "=")
		spec, known := event.Lookup(event.Type(t))
		if !ok || !known {
			return nil, fmt.Errorf("outbox: emit versions: %q: want EventType=version with a type of the catalog", part)
		}
		found := false
		for _, p := range spec.Prior {
			found = found || (p.Version == v && p.Downcast != nil)
		}
		if v != spec.Version && !found {
			return nil, fmt.Errorf("outbox: emit versions: %s has no prior version %q to emit (versions %v)", t, v, spec.Versions())
		}
		if v != spec.Version {
			out[event.Type(t)] = v
		}
	}
	return out, nil
}

// Reads returns how many times the relay has read the outbox for rows to
// publish: reads of the service's database (sqldb.Stats.Reads) that are
// not the service's own work. Each is counted before the database counts
// it, so a count taken after a Stats includes every relay read that Stats
// does.
func (r *Relay) Reads() int64 { return r.reads.Load() }

// Backlog returns the number of unsent rows and the age of the oldest.
func (r *Relay) Backlog(ctx context.Context) (int64, time.Duration, error) {
	var n int64
	var oldest *int64
	// Published rows waiting to be deleted (see Run) are not unsent.
	q, arg := `SELECT COUNT(*), MIN(created_at) FROM outbox WHERE id > ?`, any(r.published.Load())
	if r.db.Dialect == sqldb.Postgres {
		q, arg = `SELECT COUNT(*), MIN(created_at) FROM outbox WHERE id <> ALL(?)`, r.skipped()
	}
	if err := r.db.QueryRow(ctx, q, arg).Scan(&n, &oldest); err != nil {
		return 0, 0, fmt.Errorf("outbox: backlog: %w", err)
	}
	if oldest == nil {
		return 0, 0, nil
	}
	return n, time.Since(time.UnixMilli(*oldest)), nil
}
