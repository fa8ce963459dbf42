package sqldb

import (
	"database/sql/driver"
	"errors"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Unavailable reports whether err says the database could not be reached
// or went away — a connection refused, lost or closed by the server, a
// server shutting down, starting up or out of connections — rather than
// that it refused a statement: a failure that passes once the database is
// back, which a caller reports as such (HTTP 503, see internal/httpx)
// instead of as a bug. SQLite, a file in the process, has no such errors.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", // terminated by an administrator or a crash, cannot connect now
			"53300": // too many connections
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08") // connection exception
	}
	var connect *pgconn.ConnectError
	var netErr *net.OpError
	return errors.As(err, &connect) || errors.As(err, &netErr) || errors.Is(err, driver.ErrBadConn)
}
