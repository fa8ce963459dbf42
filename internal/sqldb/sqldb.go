// Package sqldb opens a service's own database — one SQLite file per
// service in embedded mode, one PostgreSQL database per service in
// production — and applies its embedded migrations.
//
// Queries are written once with ? placeholders; on PostgreSQL they are
// rewritten to $1, $2, … Migrations may use the tokens {{ID}} (an
// auto-increment bigint primary key) and {{BLOB}} (binary) for the few
// places where the two dialects differ.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver
)

// Dialect tells SQLite from PostgreSQL.
type Dialect int

// Dialects.
const (
	SQLite Dialect = iota
	Postgres
)

// DB is a service's database. Writes go through a pool of one connection on
// SQLite (it has one writer anyway; queuing in Go avoids SQLITE_BUSY) and
// reads through a separate pool.
type DB struct {
	Dialect Dialect
	Name    string // the service's database (file or PostgreSQL database name)
	w, r    *sql.DB
	cache   sync.Map // query -> rebound query
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
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("sqldb: %w", err)
	}
	// WAL lets readers run beside the writer; synchronous(FULL) makes a
	// commit durable before it returns (an accepted order survives a power
	// cut); foreign keys on as a matter of hygiene.
	base := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
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

// Close closes the pools.
func (db *DB) Close() error {
	if db.r == db.w {
		return db.w.Close()
	}
	return errors.Join(db.r.Close(), db.w.Close())
}

// Ping checks the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.r.PingContext(ctx) }

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

// Query runs a read.
func (db *DB) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return db.r.QueryContext(ctx, db.Rebind(q), args...)
}

// QueryRow runs a read of one row.
func (db *DB) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return db.r.QueryRowContext(ctx, db.Rebind(q), args...)
}

// Exec runs one write outside a transaction.
func (db *DB) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return db.w.ExecContext(ctx, db.Rebind(q), args...)
}

// Tx is a write transaction with the same ? placeholder convention.
type Tx struct {
	db *DB
	tx *sql.Tx
}

// InTx runs fn in a write transaction and commits it if fn returns nil;
// otherwise it rolls back and returns fn's error.
func (db *DB) InTx(ctx context.Context, fn func(*Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqldb: begin: %w", err)
	}
	if err := fn(&Tx{db: db, tx: tx}); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqldb: commit: %w", err)
	}
	return nil
}

// Dialect of the transaction's database.
func (tx *Tx) Dialect() Dialect { return tx.db.Dialect }

// Exec runs a statement in the transaction.
func (tx *Tx) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return tx.tx.ExecContext(ctx, tx.db.Rebind(q), args...)
}

// Query runs a query in the transaction.
func (tx *Tx) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return tx.tx.QueryContext(ctx, tx.db.Rebind(q), args...)
}

// QueryRow runs a one-row query in the transaction.
func (tx *Tx) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return tx.tx.QueryRowContext(ctx, tx.db.Rebind(q), args...)
}

// Prepare prepares a statement for repeated use in the transaction.
func (tx *Tx) Prepare(ctx context.Context, q string) (*sql.Stmt, error) {
	return tx.tx.PrepareContext(ctx, tx.db.Rebind(q))
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
