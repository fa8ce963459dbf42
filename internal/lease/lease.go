// Package lease elects one process among the instances of a service to do
// the work that must not run in two of them at once: its outbox relay and
// its periodic jobs (saga timeouts, cart abandonment, delayed retries, the
// simulated carrier).
//
// On PostgreSQL the lease is a session-level advisory lock in the service's
// database, held on a connection of its own. Only one session holds it; the
// others try again every Retry. When the holder dies (even by SIGKILL) its
// connection closes and PostgreSQL releases the lock at once, so a standby
// takes over within Retry. The holder checks its session every Check: if
// the connection broke (a database restart, a killed backend) it cancels
// its work and competes again. Between the loss of a session and the
// holder noticing, up to Check, two processes may do the work; everything
// under the lease tolerates that (the relay's consumers are idempotent, the
// jobs lock their rows), the lease only makes it rare and keeps the work in
// one place.
//
// SQLite databases belong to one process, which always holds the lease.
package lease

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/eventmart/eventmart/internal/sqldb"
)

// Lease is the right to do Name's work in DB's service.
type Lease struct {
	DB    *sqldb.DB
	Name  string        // what the lease is for, e.g. "order-service background work"; one lock per name and database
	Log   *slog.Logger  // acquisitions and losses, at info and warn
	Retry time.Duration // how often a process without the lease tries to take it; default 500ms
	Check time.Duration // how often the holder checks its session; default 1s
}

// Key is the advisory lock key of name: 64 bits of its FNV-1a hash.
func Key(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("eventmart lease " + name))
	return int64(h.Sum64())
}

// Run calls fn each time this process acquires the lease, with a context
// cancelled when the lease is lost or ctx ends, and waits for fn to return
// before competing again. It returns nil when ctx ends, or fn's error: an
// error from fn is not a lost lease but a failure of the work.
func (l *Lease) Run(ctx context.Context, fn func(context.Context) error) error {
	if l.DB.Dialect != sqldb.Postgres {
		return fn(ctx)
	}
	retry, check := l.Retry, l.Check
	if retry <= 0 {
		retry = 500 * time.Millisecond
	}
	if check <= 0 {
		check = time.Second
	}
	key := Key(l.Name)
	tick := time.NewTicker(retry)
	defer tick.Stop()
	waiting := false
	for {
		held, err := l.hold(ctx, key, check, fn)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && held:
			return err
		case err != nil:
			if !waiting {
				l.Log.Warn("lease: cannot try for the lease", "lease", l.Name, "error", err)
			}
			waiting = true
		case held:
			waiting = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// hold tries once for the lease and, if it got it, runs fn until fn
// returns or the lease is lost. held reports whether it got the lease;
// err is then fn's error, otherwise the failure to try.
func (l *Lease) hold(ctx context.Context, key int64, check time.Duration, fn func(context.Context) error) (held bool, err error) {
	conn, err := l.DB.Conn(ctx)
	if err != nil {
		return false, err
	}
	// The connection never goes back to the pool: discarding it ends the
	// session and with it the lock, whatever state it is in.
	defer func() {
		conn.Raw(func(any) error { return driver.ErrBadConn })
		conn.Close()
	}()
	var got bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil {
		return false, fmt.Errorf("lease: %s: %w", l.Name, err)
	}
	if !got {
		return false, nil
	}
	l.Log.Info("lease acquired", "lease", l.Name)
	workCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- fn(workCtx) }()
	tick := time.NewTicker(check)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return true, fmt.Errorf("lease: %s: %w", l.Name, err)
			}
			return true, nil
		case <-tick.C:
			pctx, pcancel := context.WithTimeout(ctx, 5*check) // a busy server is not a lost session
			_, err := conn.ExecContext(pctx, `SELECT 1`)
			pcancel()
			if err != nil && ctx.Err() == nil {
				l.Log.Warn("lease lost: its database session broke", "lease", l.Name, "error", err)
				cancel()
				if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
					l.Log.Warn("lease: work failed while stopping", "lease", l.Name, "error", err)
				}
				return true, nil
			}
		}
	}
}
