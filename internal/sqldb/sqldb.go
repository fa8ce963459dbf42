// Package sqldb opens a service's own database — one SQLite file per
// service in embedded mode, one PostgreSQL database per service in
// production — and applies its embedded migrations.
//
// Queries are written once with ? placeholders; on PostgreSQL they are
// rewritten to $1, $2, … Migrations may use the tokens {{ID}} (an
// auto-increment bigint primary key), {{BLOB}} (binary) and
// {{WITHOUT_ROWID}} (after a table's closing parenthesis: on SQLite the
// rows are stored in the primary key's B-tree alone, one tree written per
// insert instead of two; nothing on PostgreSQL) and {{BRIN}} (after
// CREATE INDEX … ON table: a BRIN index on PostgreSQL, for a column that
// grows with the rows' insert order, a few kilobytes kept by summaries of
// page ranges instead of an entry per row; a B-tree on SQLite, which has
// no BRIN) for the few places where the two dialects differ.
package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver; its connections batch (Tx.sendQueued)
	_ "modernc.org/sqlite"           // registers the "sqlite" database/sql driver

	"github.com/eventmart/eventmart/internal/fsperm"
)

// Dialect tells SQLite from PostgreSQL.
type Dialect int

// Dialects.
const (
	SQLite Dialect = iota
	Postgres
)

func (d Dialect) String() string {
	if d == Postgres {
		return "PostgreSQL"
	}
	return "SQLite"
}

// DB is a service's database. Writes go through a pool of one connection on
// SQLite (it has one writer anyway; queuing in Go avoids SQLITE_BUSY) and
// reads through a separate pool.
type DB struct {
	Dialect Dialect
	Name    string // the service's database (file or PostgreSQL database name)
	w, r    *sql.DB
	cache   sync.Map // query -> rebound query
	// Prepared statements by query, per pool, on SQLite: the driver
	// would otherwise parse every statement on every call, which
	// profiles showed to be a third of the CPU under load. (pgx caches
	// prepared statements itself.)
	wstmts, rstmts stmtCache
	group          groupCommit // SQLite: concurrent InTx calls share a transaction
	stats          counters
	unnestHeads    sync.Map // PostgreSQL: Rows insert -> its unnest head, or "" (see Rows.unnest)
}

// Stats counts a database's work since it was opened: what a batch or an
// order costs in statements and commits (docs/benchmarks.md).
type Stats struct {
	// Statements run in write transactions (savepoints sent included: on
	// PostgreSQL a lazy savepoint never set, or a RELEASE left to COMMIT,
	// is not).
	Statements int64
	// Reads run outside a transaction (DB.Query, DB.QueryRow).
	Reads int64
	// Commits of write transactions: a SQLite group commit is one,
	// however many callers shared it; DB.Exec on PostgreSQL is one.
	Commits int64
	// RoundTrips of the statements of write transactions: Statements
	// less those sent in one round trip with another — on PostgreSQL,
	// savepoints set and released with the next statement
	// (Tx.LazySavepoint, Tx.Release) and the rows flushed before a commit
	// (Tx.ExecBatched). BEGIN and COMMIT are not counted (a COMMIT sent
	// with flushed rows is their round trip).
	RoundTrips int64
	// RunAgain counts the write transactions InTx ran again: a lost
	// deadlock or serialization conflict, or work that failed with an
	// ErrRunAgain (a version conflict of appends at commit) — contention.
	RunAgain int64
}

type counters struct{ statements, reads, commits, roundTrips, runAgain atomic.Int64 }

// Stats returns the database's counters.
func (db *DB) Stats() Stats {
	return Stats{Statements: db.stats.statements.Load(), Reads: db.stats.reads.Load(), Commits: db.stats.commits.Load(),
		RoundTrips: db.stats.roundTrips.Load(), RunAgain: db.stats.runAgain.Load()}
}

// Sub returns the counts of s since earlier.
func (s Stats) Sub(earlier Stats) Stats {
	return Stats{Statements: s.Statements - earlier.Statements, Reads: s.Reads - earlier.Reads, Commits: s.Commits - earlier.Commits,
		RoundTrips: s.RoundTrips - earlier.RoundTrips, RunAgain: s.RunAgain - earlier.RunAgain}
}

// stmtCache holds prepared statements of one pool, up to maxStmts; the
// rare dynamic query beyond that runs unprepared.
type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

const maxStmts = 512

func (c *stmtCache) get(ctx context.Context, pool *sql.DB, q string) *sql.Stmt {
	c.mu.Lock()
	st, ok := c.m[q]
	full := len(c.m) >= maxStmts
	c.mu.Unlock()
	if ok || full {
		return st
	}
	// Prepare without the lock: it waits for a connection, which a
	// transaction looking up another statement may hold.
	st, err := pool.PrepareContext(ctx, q)
	if err != nil {
		return nil // let the unprepared call report the error
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.m[q]; ok { // prepared concurrently
		st.Close()
		return prev
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[q] = st
	return st
}

// lookup returns q's statement if it is prepared already.
func (c *stmtCache) lookup(q string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[q]
}

// Open opens the database of service. dsn is "" for SQLite under dataDir
// (<dataDir>/<service>.db), or a postgres:// URL: the service's database
// is <prefix>_<service>, created if missing, where prefix is the URL's
// database name, or "eventmart" when the URL names none (or "postgres").
// So postgres://host/shop gives shop_order, shop_payment, …
func Open(ctx context.Context, service, dsn, dataDir string) (*DB, error) {
	if dsn == "" {
		return openSQLite(filepath.Join(dataDir, service+".db"))
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return nil, fmt.Errorf("sqldb: database URL: %w", err)
		}
		prefix := strings.Trim(u.Path, "/")
		if prefix == "" || prefix == "postgres" {
			prefix = "eventmart"
		}
		u.Path = "/postgres" // connect to the maintenance database to create ours
		return openPostgres(ctx, u.String(), prefix+"_"+strings.ReplaceAll(service, "-", "_"))
	}
	return nil, fmt.Errorf("sqldb: unsupported database URL %q: want postgres://… or none for SQLite", dsn)
}

// OpenSQLite opens (creating) the SQLite database file at path.
func openSQLite(path string) (*DB, error) {
	if err := fsperm.Create(path); err != nil {
		return nil, fmt.Errorf("sqldb: %w", err)
	}
	// WAL lets readers run beside the writer; synchronous(FULL) makes a
	// commit durable before it returns (an accepted order survives a power
	// cut); foreign keys on as a matter of hygiene. temp_store(MEMORY) keeps
	// the statement journal (what a failed statement or a rolled-back
	// savepoint is undone from: group commit takes a savepoint per
	// transaction) in memory: on a file it cost a temporary file opened,
	// written a page at a time and deleted per commit, ~7 % of the embedded
	// mode's CPU; it is never read after a crash, so durability is unchanged.
	base := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=temp_store(MEMORY)"
	w, err := sql.Open("sqlite", base+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqldb: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", base+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqldb: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4)
	if err := w.Ping(); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("sqldb: open %s: %w", path, err)
	}
	return &DB{Dialect: SQLite, Name: path, w: w, r: r}, nil
}

func openPostgres(ctx context.Context, dsn, dbName string) (*DB, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, fmt.Errorf("sqldb: database URL: %w", err)
	}
	if err := createDatabase(ctx, dsn, dbName); err != nil {
		return nil, err
	}
	u.Path = "/" + dbName
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		return nil, fmt.Errorf("sqldb: open %s: %w", dbName, err)
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqldb: open %s: %w", dbName, err)
	}
	return &DB{Dialect: Postgres, Name: dbName, w: db, r: db}, nil
}

// createDatabase creates dbName on the server of dsn unless it exists.
func createDatabase(ctx context.Context, dsn, dbName string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("sqldb: connect to %s: %w", redact(dsn), err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, dbName).Scan(&exists); err != nil {
		return fmt.Errorf("sqldb: look up database %s: %w", dbName, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{dbName}.Sanitize())
	if err != nil && !strings.Contains(err.Error(), "already exists") { // another instance won the race
		return fmt.Errorf("sqldb: create database %s: %w", dbName, err)
	}
	return nil
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// Close closes the pools (and with them the prepared statements).
func (db *DB) Close() error {
	if db.r == db.w {
		return db.w.Close()
	}
	return errors.Join(db.r.Close(), db.w.Close())
}

// Ping checks the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.r.PingContext(ctx) }

// InRecovery reports whether the database is a read-only hot standby
// (PostgreSQL's pg_is_in_recovery(): a replica streaming from another
// region's primary, docs/regions.md). SQLite never is.
func (db *DB) InRecovery(ctx context.Context) (bool, error) {
	if db.Dialect != Postgres {
		return false, nil
	}
	var in bool
	if err := db.r.QueryRowContext(ctx, `SELECT pg_is_in_recovery()`).Scan(&in); err != nil {
		return false, fmt.Errorf("sqldb: %s: pg_is_in_recovery: %w", db.Name, err)
	}
	return in, nil
}

// Rebind rewrites ? placeholders for the dialect.
func (db *DB) Rebind(q string) string {
	if db.Dialect != Postgres {
		return q
	}
	if v, ok := db.cache.Load(q); ok {
		return v.(string)
	}
	var sb strings.Builder
	n := 0
	inQuote := false
	for _, c := range q {
		switch {
		case c == '\'':
			inQuote = !inQuote
		case c == '?' && !inQuote:
			n++
			fmt.Fprintf(&sb, "$%d", n)
			continue
		}
		sb.WriteRune(c)
	}
	out := sb.String()
	db.cache.Store(q, out)
	return out
}

// prepared returns the cached prepared statement of q on the read or
// write pool, or nil (run q unprepared).
func (db *DB) prepared(ctx context.Context, write bool, q string) *sql.Stmt {
	if db.Dialect != SQLite {
		return nil
	}
	if write {
		return db.wstmts.get(ctx, db.w, q)
	}
	return db.rstmts.get(ctx, db.r, q)
}

// Query runs a read.
func (db *DB) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	db.stats.reads.Add(1)
	if st := db.prepared(ctx, false, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return db.r.QueryContext(ctx, db.Rebind(q), args...)
}

// QueryRow runs a read of one row.
func (db *DB) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	db.stats.reads.Add(1)
	if st := db.prepared(ctx, false, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return db.r.QueryRowContext(ctx, db.Rebind(q), args...)
}

// Exec runs one write outside a transaction. On SQLite it joins the
// group commit (see InTx): a lone write is still a commit, and an fsync.
func (db *DB) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if db.Dialect == SQLite {
		var res sql.Result
		err := db.InTx(ctx, func(tx *Tx) error {
			var err error
			res, err = tx.Exec(ctx, q, args...)
			return err
		})
		return res, err
	}
	db.stats.statements.Add(1)
	db.stats.roundTrips.Add(1)
	db.stats.commits.Add(1)
	if st := db.prepared(ctx, true, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return db.w.ExecContext(ctx, db.Rebind(q), args...)
}

// Tx is a write transaction with the same ? placeholder convention.
type Tx struct {
	db         *DB
	tx         *sql.Tx  // SQLite's; nil on PostgreSQL (see inPostgresTx)
	q          runner   // tx, or conn on PostgreSQL
	unprepared []string // queries to prepare after the transaction
	onCommit   []func() // run after a successful commit
	onEnd      []func() // run once the transaction has ended, whatever its outcome
	shared     bool     // several callers' work: statements ignore cancellation
	pending    []pendingWrite
	// PostgreSQL: the transaction's connection, through which queued
	// statements go to the server in one round trip with the next
	// statement (see LazySavepoint); nil on SQLite.
	conn       *sql.Conn
	begun      bool // PostgreSQL: BEGIN was sent (see begin)
	queued     []queuedStmt
	savepoints int  // the id of the latest savepoint set
	committing bool // flushing the pending writes before COMMIT (see ExecBatched)
	// SQLite: the prepared statements bound to the transaction so far,
	// by query, for the next run of each (see stmt).
	bound map[string]*sql.Stmt
}

// runner runs the statements of a transaction: a *sql.Tx, or the
// *sql.Conn of a PostgreSQL transaction.
type runner interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
	PrepareContext(ctx context.Context, q string) (*sql.Stmt, error)
}

// queuedStmt is a statement not sent yet: a savepoint's SAVEPOINT (set)
// or RELEASE SAVEPOINT, of the savepoint with id sp; or a write queued by
// ExecBatched (what set), after the savepoints up to sp.
type queuedStmt struct {
	sql  string
	args []any
	what string
	as   func(error) error // ExecBatchedAs's; nil: the error as it is
	sp   int
	set  bool
}

// queuedWrites reports whether tx.queued[from:] holds a write.
func (tx *Tx) queuedWrites(from int) bool {
	for _, q := range tx.queued[from:] {
		if q.what != "" {
			return true
		}
	}
	return false
}

// ExecBatched runs a write whose result the caller does not need (Rows'
// inserts): what names it in its error. While the transaction flushes its
// pending writes before it commits, on PostgreSQL, the write is queued,
// and the flush sends the queued writes in one round trip once every
// pending write has flushed (a transaction's saga-log, outbox,
// processed-event and projection rows, four round trips otherwise); its
// error fails the flush, and with it the transaction, as an error of its
// own statement would. A statement run meanwhile is sent after them (a
// read sees them). Otherwise it is Exec.
func (tx *Tx) ExecBatched(ctx context.Context, what, q string, args ...any) error {
	return tx.ExecBatchedAs(ctx, what, q, nil, args...)
}

// ExecBatchedAs is ExecBatched for a write whose failure means something
// to its caller: the error it fails with — at once, or when the queued
// writes are sent — is as(err) (nil as: err itself). eventstore's appends
// at commit make a unique violation a version conflict that runs the
// transaction again (ErrRunAgain).
func (tx *Tx) ExecBatchedAs(ctx context.Context, what, q string, as func(error) error, args ...any) error {
	if tx.conn == nil || !tx.committing {
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return queuedStmt{what: what, as: as}.failed(err)
		}
		return nil
	}
	tx.db.stats.statements.Add(1)
	// A copy: the caller may reuse args once this returns (Rows does).
	tx.queued = append(tx.queued, queuedStmt{sql: tx.db.Rebind(q), args: slices.Clone(args), what: what, as: as, sp: tx.savepoints})
	return nil
}

// failed is the error of the write st when it fails with err.
func (st queuedStmt) failed(err error) error {
	err = fmt.Errorf("sqldb: %s…: %w", st.what, err)
	if st.as != nil {
		return st.as(err)
	}
	return err
}

// Pending is a write that a transaction's work buffers instead of running
// at once — rows gathered over a batch of events and inserted with one
// multi-row statement — and that must be written before the transaction
// commits.
type Pending interface {
	// Flush writes what is buffered through tx and empties the buffer.
	Flush(ctx context.Context, tx *Tx) error
	// Discard empties the buffer without writing: the work that filled it
	// was rolled back.
	Discard()
}

type pendingWrite struct {
	key any
	w   Pending
}

// Pending returns the pending write registered in tx under key, making and
// registering it with mk the first time. InTx flushes every pending write,
// in the order registered, once the work it was given returns nil and
// before it commits (in a group commit, before that caller's savepoint is
// released); if the work fails, they are discarded. Work that rolls back
// to a savepoint of its own sets it with Savepoint and rolls back with
// RollbackTo, which drop just the writes buffered after it (or calls Flush
// before releasing one and DiscardPending after rolling back to one).
func (tx *Tx) Pending(key any, mk func() Pending) Pending {
	if w := tx.PendingOf(key); w != nil {
		return w
	}
	w := mk()
	tx.pending = append(tx.pending, pendingWrite{key, w})
	return w
}

// PendingOf returns the pending write registered in tx under key, or nil
// if there is none (Pending makes one).
func (tx *Tx) PendingOf(key any) Pending {
	for _, p := range tx.pending {
		if p.key == key {
			return p.w
		}
	}
	return nil
}

// Flush writes every pending write now, in the order registered; a
// pending write registered by another's Flush (rows it adds through a
// buffered writer) is flushed after it.
func (tx *Tx) Flush(ctx context.Context) error {
	for i := 0; i < len(tx.pending); i++ {
		if err := tx.pending[i].w.Flush(ctx, tx); err != nil {
			return err
		}
	}
	return nil
}

// DiscardPending empties every pending write without writing it. (Work
// with savepoints of its own rather uses Savepoint and RollbackTo, which
// keep what was buffered before the savepoint.)
func (tx *Tx) DiscardPending() {
	for _, p := range tx.pending {
		p.w.Discard()
	}
}

// Rewinder is a Pending that can drop what was buffered after a point,
// so a rollback to a savepoint drops just the writes made after it (Rows
// is one). A Pending that is not is flushed when a savepoint is set, and
// discarded on a rollback to it.
type Rewinder interface {
	Pending
	Len() int
	Truncate(n int)
}

// Savepoint is a point of a transaction its work can roll back to, with the
// OnCommit hooks and pending writes registered since (Tx.Savepoint).
type Savepoint struct {
	name    string
	id      int // in the transaction, increasing
	hooks   int
	pending []int // each Rewinder's length; -1 for the others
}

// Savepoint sets a savepoint named name (an SQL identifier). The pending
// writes that cannot rewind are flushed first, so that RollbackTo loses
// only what was written after it.
//
// On PostgreSQL the statements queued before it (the RELEASE of an
// earlier savepoint, see Release) go in the same round trip.
func (tx *Tx) Savepoint(ctx context.Context, name string) (Savepoint, error) {
	sp, err := tx.mark(ctx, name)
	if err != nil {
		return sp, err
	}
	if tx.conn != nil {
		tx.queued = append(tx.queued, queuedStmt{sql: `SAVEPOINT ` + name, sp: sp.id, set: true})
		_, err = tx.sendQueued(tx.context(ctx), "", nil)
	} else {
		_, err = tx.Exec(ctx, `SAVEPOINT `+name)
	}
	if err != nil {
		return sp, fmt.Errorf("sqldb: savepoint: %w", err)
	}
	return sp, nil
}

// LazySavepoint is Savepoint for work that rolls back to it only on an
// error a write reports, or with nothing written since it: on PostgreSQL
// the SAVEPOINT is queued and sent with the transaction's next write, in
// the same round trip (pgx's batch), and never if the savepoint is
// released or rolled back to before any write. Reads (a Query or QueryRow
// of a SELECT) run before it is set: one that fails aborts the
// transaction up to an enclosing savepoint, which RollbackTo of this one
// cannot recover from. So work rolling back on any error, a failed read
// among them (the inbox's savepoint around a record), uses Savepoint.
//
// It is what eventstore.RetryInTx sets around each try of a command: a
// try that loads, decides and appends costs no round trip for its
// savepoint, and a conflicting append (the write that fails) rolls back
// to it as before.
func (tx *Tx) LazySavepoint(ctx context.Context, name string) (Savepoint, error) {
	if tx.conn == nil {
		return tx.Savepoint(ctx, name)
	}
	sp, err := tx.mark(ctx, name)
	if err != nil {
		return sp, err
	}
	tx.queued = append(tx.queued, queuedStmt{sql: `SAVEPOINT ` + name, sp: sp.id, set: true})
	return sp, nil
}

// mark flushes the pending writes that cannot rewind and returns a
// savepoint at the transaction's point: its OnCommit hooks and the
// Rewinders' lengths. It sends nothing of its own.
func (tx *Tx) mark(ctx context.Context, name string) (Savepoint, error) {
	// Flushed first, by index: a flush may register more pending writes
	// (the audit's block emits its archive record into the outbox's rows),
	// and those hold work from before the savepoint, to be kept by a
	// rollback to it like the rest.
	for i := 0; i < len(tx.pending); i++ {
		if _, ok := tx.pending[i].w.(Rewinder); !ok {
			if err := tx.pending[i].w.Flush(ctx, tx); err != nil {
				return Savepoint{}, err
			}
		}
	}
	tx.savepoints++
	sp := Savepoint{name: name, id: tx.savepoints, hooks: len(tx.onCommit), pending: make([]int, len(tx.pending))}
	for i, p := range tx.pending {
		sp.pending[i] = -1
		if r, ok := p.w.(Rewinder); ok {
			sp.pending[i] = r.Len()
		}
	}
	return sp, nil
}

// queuedSet returns the index in tx.queued of sp's SAVEPOINT, or -1 if it
// was sent (or sp is SQLite's).
func (tx *Tx) queuedSet(sp Savepoint) int {
	for i, q := range tx.queued {
		if q.set && q.sp == sp.id {
			return i
		}
	}
	return -1
}

// RollbackTo rolls the transaction back to sp, and forgets the OnCommit
// hooks and pending writes registered after it. The savepoint remains
// (Release it). A lazy savepoint not set yet (nothing written since it)
// rolls back without a statement.
func (tx *Tx) RollbackTo(ctx context.Context, sp Savepoint) error {
	if tx.conn == nil {
		if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT `+sp.name); err != nil {
			return fmt.Errorf("sqldb: rollback to savepoint: %w", err)
		}
	} else if i := tx.queuedSet(sp); i >= 0 {
		tx.queued = tx.queued[:i+1] // the savepoints and writes after it are gone with it
	} else {
		// The statements queued for savepoints set after sp are moot:
		// rolling back to sp ends those (and in a transaction a failed
		// statement aborted, only a rollback would run).
		tx.queued = slices.DeleteFunc(tx.queued, func(q queuedStmt) bool { return q.sp >= sp.id })
		if _, err := tx.sendQueued(tx.context(ctx), `ROLLBACK TO SAVEPOINT `+sp.name, nil); err != nil {
			return fmt.Errorf("sqldb: rollback to savepoint: %w", err)
		}
	}
	tx.DropCommitHooks(sp.hooks)
	for i, p := range tx.pending {
		if r, ok := p.w.(Rewinder); ok && i < len(sp.pending) && sp.pending[i] >= 0 {
			r.Truncate(sp.pending[i])
		} else {
			p.w.Discard()
		}
	}
	return nil
}

// Release releases sp, keeping what was done since. On PostgreSQL the
// RELEASE is queued and sent with the transaction's next write or
// savepoint, in the same round trip (COMMIT releases it otherwise): the
// reads between run inside sp, which changes nothing of their results.
// A lazy savepoint not set yet is released without a statement.
func (tx *Tx) Release(ctx context.Context, sp Savepoint) error {
	if tx.conn == nil {
		if _, err := tx.Exec(ctx, `RELEASE SAVEPOINT `+sp.name); err != nil {
			return fmt.Errorf("sqldb: release savepoint: %w", err)
		}
		return nil
	}
	if i := tx.queuedSet(sp); i >= 0 && !tx.queuedWrites(i) {
		tx.queued = tx.queued[:i] // and any set after it
		return nil
	}
	tx.queued = append(tx.queued, queuedStmt{sql: `RELEASE SAVEPOINT ` + sp.name, sp: sp.id})
	return nil
}

// sendQueued sends the queued statements and then q (if not "") with
// args, in one round trip (a pgx batch on the transaction's connection),
// and returns q's result. The first statement to fail ends the batch and
// its error is returned (q's as the driver reports it, so that, say,
// IsUniqueViolation sees it).
func (tx *Tx) sendQueued(ctx context.Context, q string, args []any) (pgconn.CommandTag, error) {
	stmts := tx.queued
	tx.queued = tx.queued[:0]
	n := len(stmts)
	if q != "" {
		n++
	}
	var res pgconn.CommandTag
	if n == 0 {
		return res, nil
	}
	for _, st := range stmts {
		if st.what == "" { // a savepoint's: ExecBatched counted its write, as the caller q
			tx.db.stats.statements.Add(1)
		}
	}
	tx.db.stats.roundTrips.Add(1)
	begin := !tx.begun
	tx.begun = true
	err := tx.withPgx(func(c *pgx.Conn) error {
		b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, n+1)}
		if begin {
			b.Queue(`BEGIN`)
		}
		for _, st := range stmts {
			b.Queue(st.sql, st.args...)
		}
		if q != "" {
			b.Queue(q, args...)
		}
		br := c.SendBatch(ctx, b)
		if begin {
			if _, err := br.Exec(); err != nil {
				br.Close()
				return fmt.Errorf("sqldb: begin: %w", err)
			}
		}
		for _, st := range stmts {
			if _, err := br.Exec(); err != nil {
				br.Close()
				if st.what != "" {
					return st.failed(err)
				}
				return fmt.Errorf("%s: %w", st.sql, err)
			}
		}
		if q != "" {
			var err error
			if res, err = br.Exec(); err != nil {
				br.Close()
				return err
			}
		}
		return br.Close()
	})
	clear(stmts) // let go of the writes' arguments
	return res, err
}

// work runs fn and then flushes the pending writes it left; on failure it
// discards them.
func (tx *Tx) work(ctx context.Context, fn func(*Tx) error) error {
	err := call(func(tx *Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return tx.flushToCommit(ctx)
	}, tx)
	if err != nil {
		tx.DiscardPending()
	}
	return err
}

// flushToCommit flushes the pending writes before the transaction
// commits; on PostgreSQL the writes they queue (ExecBatched) go with the
// COMMIT, in one round trip (Tx.commit).
func (tx *Tx) flushToCommit(ctx context.Context) error {
	tx.committing = tx.conn != nil
	defer func() { tx.committing = false }()
	return tx.Flush(ctx)
}

// OnCommit registers fn to run after the transaction commits, in the order
// registered; never if it rolls back (for metrics of what really happened).
func (tx *Tx) OnCommit(fn func()) { tx.onCommit = append(tx.onCommit, fn) }

// OnEnd registers fn to run once the transaction has ended, committed
// (after its OnCommit functions) or rolled back, whatever became of its
// savepoints: a rollback to one keeps the OnEnd functions registered since.
// For marks a write takes before it runs, which its commit may make
// visible at any moment and which must be cleared either way (see
// heard.Memory.Writing).
func (tx *Tx) OnEnd(fn func()) { tx.onEnd = append(tx.onEnd, fn) }

// end runs the OnEnd functions.
func (tx *Tx) end() {
	for _, f := range tx.onEnd {
		f()
	}
}

// CommitHooks returns how many OnCommit functions are registered, for
// DropCommitHooks after a rollback to a savepoint.
func (tx *Tx) CommitHooks() int { return len(tx.onCommit) }

// DropCommitHooks forgets the OnCommit functions registered after the
// first n: the work they belonged to was rolled back to a savepoint.
func (tx *Tx) DropCommitHooks(n int) {
	if n < len(tx.onCommit) {
		tx.onCommit = tx.onCommit[:n]
	}
}

// InTx runs fn in a write transaction and commits it if fn returns nil;
// otherwise it rolls back and returns fn's error. It returns once the
// transaction is durable (or has failed).
//
// On PostgreSQL a transaction that loses a deadlock or a serialization
// conflict is run again (up to 5 times), and on either database one whose
// work fails with an ErrRunAgain. On SQLite, calls made while
// another runs are combined into one transaction, each fn behind its own
// savepoint (see groupCommit), and may be run again alone if that shared
// transaction fails. So fn must only act through tx, and must not call
// InTx or DB.Exec itself.
func (db *DB) InTx(ctx context.Context, fn func(*Tx) error) error {
	for attempt := 1; ; attempt++ {
		var err error
		if db.Dialect == SQLite {
			err = db.group.do(ctx, db, fn)
		} else {
			err = db.inTx(ctx, fn)
		}
		repanic(err)
		if attempt == 5 || !isRetryable(err) {
			return err
		}
		select {
		case <-time.After(time.Duration(attempt*attempt) * time.Millisecond):
			db.stats.runAgain.Add(1)
		case <-ctx.Done():
			return err
		}
	}
}

// InTxWithNext is InTx for work that need not commit soon — a clean-up,
// such as the outbox relay's delete of published rows — and so need not
// cost a commit (an fsync) of its own: on SQLite it waits, up to wait, to
// join the group commit of the next transaction another caller starts,
// and commits alone only if none starts meanwhile. fn runs behind a
// savepoint of its own there, so its failure fails it alone. It returns
// once fn's transaction has committed (or failed), as InTx. On PostgreSQL,
// whose transactions do not share commits, it is InTx.
func (db *DB) InTxWithNext(ctx context.Context, wait time.Duration, fn func(*Tx) error) error {
	if db.Dialect != SQLite {
		return db.InTx(ctx, fn)
	}
	err := db.group.ride(ctx, db, fn, wait)
	repanic(err)
	return err
}

// repanic raises again, in the caller's goroutine, a panic of fn that err
// carries (its transaction rolled back).
func repanic(err error) {
	var pe *panicError
	if errors.As(err, &pe) {
		panic(pe.v)
	}
}

func (db *DB) inTx(ctx context.Context, fn func(*Tx) error) error {
	if db.Dialect == Postgres {
		return db.inPostgresTx(ctx, fn)
	}
	// The transaction and its statements run without ctx's cancellation
	// (Tx.context): with a context that can end, the SQLite driver starts
	// a goroutine per statement to interrupt it, and database/sql one per
	// transaction to roll it back — per-transaction costs that, with one
	// event in flight, sat on every hop of a saga. A ctx that ends still
	// ends the transaction, at its next statement.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqldb: begin: %w", err)
	}
	tx, err := db.w.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return fmt.Errorf("sqldb: begin: %w", err)
	}
	t := &Tx{db: db, tx: tx, q: tx}
	defer db.prepareLater(t)
	defer t.end()
	if err := t.work(ctx, fn); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqldb: commit: %w", err)
	}
	db.stats.commits.Add(1)
	for _, f := range t.onCommit {
		f()
	}
	return nil
}

// inPostgresTx is inTx on PostgreSQL. The transaction runs on a
// connection taken from the pool, by statements of its own (BEGIN, COMMIT,
// ROLLBACK) rather than as a database/sql Tx, so that its statements
// queued (savepoints', and the rows flushed before COMMIT, see
// ExecBatched) go to the server with the next one in one round trip, on
// the connection at hand (Tx.sendQueued) — COMMIT among them: a
// transaction's rows and its COMMIT cost one round trip. BEGIN waits for
// the first statement (see begin), and goes in its round trip where that
// is sent through pgx. A connection left in a transaction (a ROLLBACK
// that failed) is not reused: pgx's stdlib driver discards it when it is
// returned to the pool.
func (db *DB) inPostgresTx(ctx context.Context, fn func(*Tx) error) error {
	conn, err := db.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqldb: begin: %w", err)
	}
	defer conn.Close()
	t := &Tx{db: db, q: conn, conn: conn}
	defer t.end()
	rollback := func() {
		if t.begun {
			conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`) //nolint:errcheck // the work's error is the news
		}
	}
	if err := t.work(ctx, fn); err != nil {
		rollback()
		return err
	}
	if err := t.commit(ctx); err != nil {
		rollback() // if the COMMIT did not run (a write before it failed)
		return fmt.Errorf("sqldb: commit: %w", err)
	}
	db.stats.commits.Add(1)
	for _, f := range t.onCommit {
		f()
	}
	return nil
}

// commit sends COMMIT on PostgreSQL, with the writes queued, in one round
// trip. The savepoint statements still queued are dropped: COMMIT
// releases every savepoint.
func (tx *Tx) commit(ctx context.Context) error {
	tx.queued = slices.DeleteFunc(tx.queued, func(q queuedStmt) bool { return q.what == "" })
	var tag pgconn.CommandTag
	var err error
	if !tx.begun && len(tx.queued) == 0 {
		return nil // nothing was sent: nothing to commit
	}
	if len(tx.queued) > 0 {
		tag, err = tx.sendQueued(ctx, `COMMIT`, nil)
	} else {
		err = tx.withPgx(func(c *pgx.Conn) error {
			tag, err = c.Exec(ctx, `COMMIT`)
			return err
		})
	}
	if err == nil && tag.String() == "ROLLBACK" { // a statement had failed: PostgreSQL rolled back instead
		err = pgx.ErrTxCommitRollback
	}
	return err
}

// prepareLater prepares the statements t ran unprepared, now that the
// write connection is free.
func (db *DB) prepareLater(t *Tx) {
	for _, q := range t.unprepared {
		db.wstmts.get(context.Background(), db.w, q)
	}
}

// call runs fn, turning a panic into a *panicError so the write
// connection is not left inside a transaction; InTx panics again in the
// caller's goroutine.
func call(fn func(*Tx) error, t *Tx) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{v}
		}
	}()
	return fn(t)
}

type panicError struct{ v any }

func (p *panicError) Error() string {
	return fmt.Sprintf("sqldb: transaction function panicked: %v", p.v)
}

// groupCommit combines SQLite write transactions. SQLite has one writer
// and every commit is an fsync, so under load the services' writers (HTTP
// requests, event batches, the outbox relay) queued for the connection
// one commit at a time. Instead, a caller finding nobody leading leads a
// round: it runs every fn queued (its own among them) in one transaction,
// each behind a savepoint (a failing fn rolls back to it and fails alone),
// commits once, and only then answers each caller — one fsync for many
// callers, with the durability of one transaction each — then hands the
// lead to the first caller queued meanwhile. Statements of a shared
// transaction ignore their caller's cancellation, which would otherwise
// interrupt SQLite and roll back everyone's work; a caller whose context
// ends before its turn is skipped. If the shared transaction itself fails
// (a savepoint or the commit), each caller's fn runs again alone. A
// rider (DB.InTxWithNext) queues without leading: it joins the next
// round someone else starts, and leads one itself only after its wait.
type groupCommit struct {
	mu      sync.Mutex
	queue   []*txCall
	leading bool
	// rideWaited, if set, is called when a rider's wait ends while
	// another caller leads (tests).
	rideWaited func()
}

type txCall struct {
	ctx  context.Context
	fn   func(*Tx) error
	done chan error    // the call's result
	lead chan struct{} // this caller is to run the next round
	// rider: queued by ride, to join a round others start; a queue of
	// riders alone starts none.
	rider bool
}

// maxGroup bounds how many calls share one transaction, so one round's
// duration (the first caller's latency) stays bounded.
const maxGroup = 256

func (g *groupCommit) do(ctx context.Context, db *DB, fn func(*Tx) error) error {
	c := &txCall{ctx: ctx, fn: fn, done: make(chan error, 1), lead: make(chan struct{}, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	if !g.leading {
		g.leading = true
		g.mu.Unlock()
		g.round(db)
	} else {
		g.mu.Unlock()
	}
	for {
		select {
		case err := <-c.done:
			return err
		case <-c.lead:
			g.round(db)
		}
	}
}

// ride queues a call that does not start a round of its own: it runs in
// the next round another caller leads (see DB.InTxWithNext), or in one it
// leads itself once wait has passed with none.
func (g *groupCommit) ride(ctx context.Context, db *DB, fn func(*Tx) error, wait time.Duration) error {
	c := &txCall{ctx: ctx, fn: fn, done: make(chan error, 1), lead: make(chan struct{}, 1), rider: true}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	g.mu.Unlock()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case err := <-c.done:
			return err
		case <-c.lead:
			g.round(db)
		case <-timer.C:
			// Nobody came: lead, unless the call was taken by a round (its
			// result is coming) or someone leads already. Then wait again:
			// that round may end with riders alone queued, which it leaves
			// unled (see round).
			g.mu.Lock()
			if !slices.Contains(g.queue, c) {
				g.mu.Unlock()
				continue
			}
			if g.leading {
				g.mu.Unlock()
				if g.rideWaited != nil {
					g.rideWaited()
				}
				timer.Reset(wait)
				continue
			}
			g.leading = true
			g.mu.Unlock()
			g.round(db)
		}
	}
}

// round runs the queued calls (up to maxGroup) and answers each, then
// hands the lead to the first caller still queued, if any: a caller leads
// one round, not every round until the queue empties, so an HTTP request
// is not held up serving others. A queue of riders alone (see ride) is
// left to wait.
func (g *groupCommit) round(db *DB) {
	g.mu.Lock()
	n := min(len(g.queue), maxGroup)
	round := g.queue[:n:n]
	g.queue = g.queue[n:]
	g.mu.Unlock()
	if len(round) == 1 {
		round[0].done <- db.inTx(round[0].ctx, round[0].fn)
	} else if errs, ok := db.shared(round); ok {
		for i, c := range round {
			c.done <- errs[i]
		}
	} else {
		for _, c := range round { // the shared transaction failed: each alone
			c.done <- db.inTx(c.ctx, c.fn)
		}
	}
	g.mu.Lock()
	switch {
	case len(g.queue) == 0:
		g.queue = nil
		g.leading = false
	case !slices.ContainsFunc(g.queue, func(c *txCall) bool { return !c.rider }):
		g.leading = false // riders wait for a caller, or their time
	default:
		g.queue[0].lead <- struct{}{}
	}
	g.mu.Unlock()
}

// shared runs calls in one transaction and returns each one's result, or
// ok false if the transaction failed as a whole (nothing committed).
func (db *DB) shared(calls []*txCall) (errs []error, ok bool) {
	ctx := context.Background()
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, false
	}
	t := &Tx{db: db, tx: tx, q: tx, shared: true}
	defer db.prepareLater(t)
	defer t.end() // every caller's, whatever the round's outcome
	errs = make([]error, len(calls))
	hooks := make([][]func(), len(calls))
	for i, c := range calls {
		if err := c.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		db.stats.statements.Add(2) // SAVEPOINT and RELEASE
		db.stats.roundTrips.Add(2)
		if err := t.control(ctx, `SAVEPOINT grouped`); err != nil {
			tx.Rollback()
			return nil, false
		}
		t.onCommit, t.pending = nil, nil
		errs[i] = t.work(c.ctx, c.fn)
		if errs[i] != nil {
			db.stats.statements.Add(1)
			db.stats.roundTrips.Add(1)
			if err := t.control(ctx, `ROLLBACK TO SAVEPOINT grouped`); err != nil {
				tx.Rollback()
				return nil, false
			}
		} else {
			hooks[i] = t.onCommit
		}
		if err := t.control(ctx, `RELEASE SAVEPOINT grouped`); err != nil {
			tx.Rollback()
			return nil, false
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, false
	}
	db.stats.commits.Add(1)
	for _, hs := range hooks {
		for _, f := range hs {
			f()
		}
	}
	return errs, true
}

// control runs a savepoint statement of a shared transaction, prepared
// once kept (see stmt): run unprepared, SQLite parses it anew every time,
// and a shared transaction runs two per caller.
func (tx *Tx) control(ctx context.Context, q string) error {
	if st := tx.stmt(ctx, q); st != nil {
		_, err := st.ExecContext(ctx)
		return err
	}
	_, err := tx.tx.ExecContext(ctx, q)
	return err
}

// isRetryable reports a PostgreSQL deadlock (40P01) or serialization
// failure (40001), or an ErrRunAgain: the transaction did nothing and may
// simply run again.
func isRetryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.Is(err, ErrRunAgain) || errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// ErrRunAgain is wrapped by the error of work that found, as its
// transaction was about to commit, that what it had read had changed
// meanwhile — eventstore's appends at commit to a stream another
// transaction appended to — and so may simply run again: InTx runs it
// again, as it does a transaction that lost a deadlock.
var ErrRunAgain = errors.New("sqldb: what the transaction read has changed: run it again")

// Dialect of the transaction's database.
func (tx *Tx) Dialect() Dialect { return tx.db.Dialect }

// stmt returns the write pool's prepared statement of q bound to the
// transaction, or nil. A statement not prepared yet cannot be prepared on
// the pool now (the transaction holds SQLite's one write connection), so
// it is noted and prepared once the transaction has ended. A statement
// bound once is kept for the transaction's next runs of q (the calls of a
// group commit run the same statements): binding one allocates anew. Not
// one bound with a context that has ended, which is bound to fail.
func (tx *Tx) stmt(ctx context.Context, q string) *sql.Stmt {
	if tx.db.Dialect != SQLite {
		return nil
	}
	if st, ok := tx.bound[q]; ok {
		return st
	}
	if st := tx.db.wstmts.lookup(q); st != nil {
		b := tx.tx.StmtContext(ctx, st)
		if ctx.Err() == nil {
			if tx.bound == nil {
				tx.bound = map[string]*sql.Stmt{}
			}
			tx.bound[q] = b
		}
		return b
	}
	tx.unprepared = append(tx.unprepared, q)
	return nil
}

// context returns the context for a statement of the transaction: ctx,
// without its cancellation in a shared transaction. On SQLite a lone
// caller's statement does not watch ctx either (see inTx), but does not
// start once ctx has ended: it fails with ctx's error, as a statement
// interrupted would.
func (tx *Tx) context(ctx context.Context) context.Context {
	if tx.shared || (tx.tx != nil && ctx.Err() == nil) {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// withPgx runs fn on the pgx connection under the transaction's
// (PostgreSQL's) database/sql one: for what database/sql has no call for,
// a batch of statements in one round trip.
func (tx *Tx) withPgx(fn func(c *pgx.Conn) error) error { return withPgx(tx.conn, fn) }

// withPgx runs fn on the pgx connection under conn, a PostgreSQL one.
func withPgx(conn *sql.Conn, fn func(c *pgx.Conn) error) error {
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("sqldb: a PostgreSQL connection of type %T, not pgx's", dc)
		}
		return fn(c.Conn())
	})
}

// begin sends BEGIN, on PostgreSQL, before the transaction's first
// statement that goes through database/sql, a round trip of its own. A
// statement sent through pgx (the queued ones, a ListIn) carries it in its
// round trip instead, and a transaction that sends nothing sends neither
// BEGIN nor COMMIT.
func (tx *Tx) begin(ctx context.Context) error {
	if tx.conn == nil || tx.begun {
		return nil
	}
	tx.begun = true
	if _, err := tx.conn.ExecContext(ctx, `BEGIN`); err != nil {
		return fmt.Errorf("sqldb: begin: %w", err)
	}
	return nil
}

// Exec runs a statement in the transaction; on PostgreSQL the savepoint
// statements queued (LazySavepoint, Release) go with it, in one round trip.
func (tx *Tx) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	tx.db.stats.statements.Add(1)
	ctx = tx.context(ctx)
	if len(tx.queued) > 0 {
		tag, err := tx.sendQueued(ctx, tx.db.Rebind(q), args)
		return driver.RowsAffected(tag.RowsAffected()), err
	}
	if err := tx.begin(ctx); err != nil {
		return nil, err
	}
	tx.db.stats.roundTrips.Add(1)
	if st := tx.stmt(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return tx.q.ExecContext(ctx, tx.db.Rebind(q), args...)
}

// Query runs a query in the transaction. A SELECT runs before the
// savepoint statements queued (LazySavepoint, Release), which wait for
// the next write; any other query (an INSERT … RETURNING) sends them
// first, a round trip of their own.
func (tx *Tx) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	tx.db.stats.statements.Add(1)
	tx.db.stats.roundTrips.Add(1)
	ctx = tx.context(ctx)
	if len(tx.queued) > 0 && (!isSelect(q) || tx.queuedWrites(0)) {
		if _, err := tx.sendQueued(ctx, "", nil); err != nil {
			return nil, err
		}
	}
	if err := tx.begin(ctx); err != nil {
		return nil, err
	}
	if st := tx.stmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return tx.q.QueryContext(ctx, tx.db.Rebind(q), args...)
}

// QueryRow runs a one-row query in the transaction, after the queued
// savepoint statements if it is not a SELECT (as Query). Should sending
// those fail, the query fails too, in the transaction that failure
// aborted.
func (tx *Tx) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	tx.db.stats.statements.Add(1)
	tx.db.stats.roundTrips.Add(1)
	ctx = tx.context(ctx)
	if len(tx.queued) > 0 && (!isSelect(q) || tx.queuedWrites(0)) {
		tx.sendQueued(ctx, "", nil) //nolint:errcheck // reported by the query
	}
	if err := tx.begin(ctx); err != nil {
		// A Row carries no error of ours: the query runs on a context
		// ended with it, and fails, in a transaction that is failing.
		ended, cancel := context.WithCancelCause(ctx)
		cancel(err)
		return tx.q.QueryRowContext(ended, tx.db.Rebind(q), args...)
	}
	if st := tx.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return tx.q.QueryRowContext(ctx, tx.db.Rebind(q), args...)
}

// Prepare prepares a statement for repeated use in the transaction. The
// queued savepoint statements are sent first: the statement's runs do not
// go through Tx (and are not counted in Stats).
func (tx *Tx) Prepare(ctx context.Context, q string) (*sql.Stmt, error) {
	ctx = tx.context(ctx)
	if len(tx.queued) > 0 {
		if _, err := tx.sendQueued(ctx, "", nil); err != nil {
			return nil, err
		}
	}
	if err := tx.begin(ctx); err != nil {
		return nil, err
	}
	return tx.q.PrepareContext(ctx, tx.db.Rebind(q))
}

// isSelect reports whether q is a SELECT: a read, which may run before
// the queued savepoint statements.
func isSelect(q string) bool {
	q = strings.TrimLeft(q, " \t\r\n(")
	return len(q) >= 6 && strings.EqualFold(q[:6], "SELECT")
}

// ForUpdate returns " FOR UPDATE" on PostgreSQL, to append to a SELECT
// whose rows the transaction goes on to change (so concurrent instances
// serialise on them), and "" on SQLite, whose one writer already does.
func (tx *Tx) ForUpdate() string {
	if tx.db.Dialect == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// Placeholders returns n comma-separated ? placeholders, for IN (…).
func Placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// IsUniqueViolation reports whether err is a unique-constraint violation
// on either dialect.
func IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// Conn takes one connection out of the write pool for the caller's sole
// use, e.g. for a session-level lock (internal/lease). Close returns it to
// the pool.
func (db *DB) Conn(ctx context.Context) (*sql.Conn, error) {
	c, err := db.w.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqldb: %s: %w", db.Name, err)
	}
	return c, nil
}
