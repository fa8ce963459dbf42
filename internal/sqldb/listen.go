package sqldb

import (
	"context"
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Listener is told what DB.Listen hears. Its functions run on Listen's
// goroutine, one at a time; nil ones are skipped.
type Listener struct {
	// Listening is called each time the LISTEN took: the notifications
	// of every commit from then on arrive.
	Listening func()
	// Lost is called when the listening connection failed: until
	// Listening is called again, after retryIn at least, notifications
	// are missed.
	Lost func(err error, retryIn time.Duration)
	// Notified is called with the payload of each notification.
	Notified func(payload string)
}

// Listen keeps a connection of its own LISTENing on channel (PostgreSQL
// LISTEN/NOTIFY, per database) and tells l, until ctx ends. When the
// connection fails it listens again, after a pause growing from a second
// to a minute while LISTEN keeps failing (back to a second once a LISTEN
// took: a failure hours later is a fresh one). The connection never goes back to the pool: it is
// discarded (driver.ErrBadConn), still listening or cut by ctx. channel
// is an identifier, never user input. On SQLite it returns at once.
func (db *DB) Listen(ctx context.Context, channel string, l Listener) {
	if db.Dialect != Postgres {
		return
	}
	pause := time.Second
	for {
		listened, err := db.listenOnce(ctx, channel, l)
		if ctx.Err() != nil {
			return
		}
		if listened {
			pause = time.Second
		}
		if l.Lost != nil {
			l.Lost(err, pause)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Minute)
	}
}

// listenOnce takes a connection out of the pool, LISTENs on channel and
// tells l of each notification until the connection fails or ctx ends;
// listened reports whether the LISTEN took.
func (db *DB) listenOnce(ctx context.Context, channel string, l Listener) (listened bool, err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return false, fmt.Errorf("sqldb: listen on %s: %w", channel, err)
	}
	defer conn.Close()
	err = withPgx(conn, func(c *pgx.Conn) error {
		if _, err := c.Exec(ctx, "LISTEN "+channel); err != nil {
			return fmt.Errorf("%w: sqldb: listen on %s: %w", driver.ErrBadConn, channel, err)
		}
		listened = true
		if l.Listening != nil {
			l.Listening()
		}
		for {
			n, err := c.WaitForNotification(ctx)
			if err != nil {
				return fmt.Errorf("%w: sqldb: wait for a notification on %s: %w", driver.ErrBadConn, channel, err)
			}
			if l.Notified != nil {
				l.Notified(n.Payload)
			}
		}
	})
	return listened, err
}
