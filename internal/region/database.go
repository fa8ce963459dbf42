package region

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
)

// Database is the PostgreSQL server of the region a switch promotes: a hot
// standby streaming from the other region's server (PostgreSQL's own
// physical replication, deploy/scripts/regions.sh), so the services'
// databases, inboxes and outboxes arrive with their data.
type Database struct {
	// URL is a postgres:// URL of the server to promote; the database it
	// names does not matter (the maintenance database is used).
	URL string
	// Upstream, when set (failback, the server streamed from is up and
	// takes no more writes), is waited for: the promotion waits until
	// every WAL record Upstream had written is replayed, at most
	// CatchUpTimeout. Unset (failover, the primary is gone): what arrived
	// is promoted.
	Upstream       string
	CatchUpTimeout time.Duration
}

// Promote ends the standby's recovery (SELECT pg_promote()) and returns
// once it accepts writes. A server already promoted is left as it is, so
// a switch that crashed midway may run it again.
func (d Database) Promote(ctx context.Context, progress func(string, ...any)) error {
	conn, err := connect(ctx, d.URL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	standby, err := inRecovery(ctx, conn)
	if err != nil {
		return err
	}
	if !standby {
		progress("      PostgreSQL already promoted: it accepts writes")
		return nil
	}
	if d.Upstream != "" {
		if err := d.catchUp(ctx, conn, progress); err != nil {
			return err
		}
	}
	var done bool
	err = conn.QueryRow(ctx, `SELECT pg_promote(true, 60)`).Scan(&done)
	if err != nil {
		// Promoted by someone else between the two queries: fine.
		if standby, err2 := inRecovery(ctx, conn); err2 == nil && !standby {
			done, err = true, nil
		}
	}
	if err != nil {
		return fmt.Errorf("pg_promote: %w", err)
	}
	if !done {
		return errors.New("pg_promote: the server did not leave recovery within 60 s (see its log)")
	}
	progress("      PostgreSQL promoted (pg_promote): it accepts writes")
	return nil
}

// catchUp waits until conn's server has replayed the WAL Upstream had
// written when it was called.
func (d Database) catchUp(ctx context.Context, conn *pgx.Conn, progress func(string, ...any)) error {
	up, err := connect(ctx, d.Upstream)
	if err != nil {
		return fmt.Errorf("the server to catch up with: %w", err)
	}
	var target string
	err = up.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&target)
	up.Close(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("the server to catch up with: pg_current_wal_lsn: %w", err)
	}
	timeout := d.CatchUpTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	for {
		var replayed bool
		var at *string
		if err := conn.QueryRow(ctx, `SELECT COALESCE(pg_last_wal_replay_lsn() >= $1::pg_lsn, false), pg_last_wal_replay_lsn()::text`, target).Scan(&replayed, &at); err != nil {
			return fmt.Errorf("pg_last_wal_replay_lsn: %w", err)
		}
		if replayed {
			progress("      PostgreSQL has replayed the upstream's WAL up to %s", target)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("PostgreSQL replayed WAL up to %v after %s, the upstream is at %s: is it streaming?", deref(at), timeout, target)
		}
		progress("      PostgreSQL replayed up to %v, upstream at %s", deref(at), target)
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "nothing"
	}
	return *s
}

// connect opens a connection to the maintenance database of the server at
// rawURL.
func connect(ctx context.Context, rawURL string) (*pgx.Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	u.Path = "/postgres"
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", u.Redacted(), err)
	}
	return conn, nil
}

func inRecovery(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var in bool
	if err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&in); err != nil {
		return false, fmt.Errorf("pg_is_in_recovery: %w", err)
	}
	return in, nil
}
