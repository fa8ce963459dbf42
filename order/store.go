package order

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/heard"
	"github.com/eventmart/eventmart/internal/sqldb"
)

type store struct {
	db      *sqldb.DB
	changed func(id string)                // told of an order's id once a change to it commits
	memory  *eventstore.Memory[OrderState] // of the orders loaded and saved (orders()); nil: none
	// committing is told each orders row about to be written, with the
	// token of its notification (PostgreSQL; see projectOrderLater).
	committing func(token string, row []any)
	// users, if set, is the memory of the users projection's rows, told
	// of every write of one (userMemory).
	users *heard.Memory[string, *user]
}

// newStore returns the store of a service instance on db, keeping the
// orders it loads and saves in memory (eventstore.DefaultMemoryStreams of
// them). changed and committing may be nil.
func newStore(db *sqldb.DB, changed func(id string), committing func(token string, row []any)) *store {
	return &store{db: db, changed: changed, memory: eventstore.NewMemory[OrderState](0), committing: committing}
}

// changedOnCommit notes that order id changed, for the watchers of
// GET /orders/{id} once tx commits.
func (s *store) changedOnCommit(tx *sqldb.Tx, id string) {
	if s.changed != nil {
		tx.OnCommit(func() { s.changed(id) })
	}
}

// queryer is a database or a transaction.
type queryer interface {
	QueryRow(ctx context.Context, q string, args ...any) *sql.Row
}

const orderColumns = `id, user_id, status, reason_code, reason, lines, total_cents, currency, customer_email, customer_name,
	shipping_address, card_last4, from_cart, payment_id, shipment_id, tracking_number, correlation_id, created_event_id,
	created_at, updated_at`

func scanOrder(r sqldb.Scanner) (*Order, error) {
	var o Order
	var lines, addr string
	var fromCart, created, updated int64
	err := r.Scan(&o.ID, &o.UserID, &o.Status, &o.ReasonCode, &o.Reason, &lines, &o.TotalCents, &o.Currency,
		&o.Customer.Email, &o.Customer.Name, &addr, &o.CardLast4, &fromCart, &o.PaymentID, &o.ShipmentID, &o.TrackingNumber,
		&o.correlationID, &o.createdEventID, &created, &updated)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(lines), &o.Items); err != nil {
		return nil, fmt.Errorf("lines of order %s: %w", o.ID, err)
	}
	if err := json.Unmarshal([]byte(addr), &o.ShippingAddress); err != nil {
		return nil, fmt.Errorf("shipping address of order %s: %w", o.ID, err)
	}
	o.FromCart = fromCart != 0
	o.CreatedAt, o.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
	return &o, nil
}

// rowScanner scans the values of a row as written (orderRow) as a read
// of the row would return them: each value, as the driver takes it
// (driver.Valuer), into each destination.
type rowScanner []any

func (r rowScanner) Scan(dest ...any) error {
	if len(dest) != len(r) {
		return fmt.Errorf("scan %d values into %d destinations", len(r), len(dest))
	}
	for i, d := range dest {
		v := r[i]
		if vr, ok := v.(driver.Valuer); ok {
			var err error
			if v, err = vr.Value(); err != nil {
				return err
			}
		}
		var ok bool
		switch d := d.(type) {
		case sql.Scanner:
			if err := d.Scan(v); err != nil {
				return err
			}
			ok = true
		case *string:
			*d, ok = v.(string)
		case *int64:
			*d, ok = v.(int64)
		}
		if !ok {
			return fmt.Errorf("scan %T into %T", v, d)
		}
	}
	return nil
}

// order reads one order; ENOTFOUND if absent.
func (s *store) order(ctx context.Context, q queryer, id string) (*Order, error) {
	o, err := scanOrder(q.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, eventmart.Errorf(eventmart.ENOTFOUND, "order %s not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("order: read order %s: %w", id, err)
	}
	return o, nil
}

// list returns orders newest first; userID and status filter when not "".
func (s *store) list(ctx context.Context, userID, status string, limit, offset int) ([]*Order, error) {
	q, args := sqldb.AndEq(`SELECT `+orderColumns+` FROM orders WHERE 1 = 1`, nil,
		sqldb.Eq{Col: "user_id", Value: userID}, sqldb.Eq{Col: "status", Value: status})
	q += ` ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`
	args = append(args, limit, offset)
	out, err := sqldb.List(ctx, s.db, q, args, scanOrder)
	if err != nil {
		return nil, fmt.Errorf("order: list orders: %w", err)
	}
	return out, nil
}

// errKeyTaken: another request with the same Idempotency-Key won the race.
var errKeyTaken = errors.New("order: idempotency key taken")

// storeKey stores a new order's Idempotency-Key with the SHA-256 (hex) of
// the request body it came with. The row is buffered and inserted with the
// order's other rows before tx commits — on PostgreSQL in the one round
// trip that carries them and the COMMIT — so a key the user already used
// fails the transaction then, with errKeyTaken: the order's writes roll
// back with it, as they did when the insert came first. (A concurrent
// request with the same key waits on the first one's row either way.)
func (s *store) storeKey(tx *sqldb.Tx, userID, key, orderID, sum string, at time.Time) {
	tx.Pending(keyRowsKey{}, func() sqldb.Pending {
		return sqldb.NewRows(`INSERT INTO idempotency_keys (user_id, idem_key, order_id, created_at, request_sha256) VALUES`, 5, "").
			FailAs(func(err error) error {
				if sqldb.IsUniqueViolation(err) {
					return errKeyTaken
				}
				return fmt.Errorf("order: store idempotency key: %w", err)
			})
	}).(*sqldb.Rows).Add(userID, key, orderID, at.UnixMilli(), sum)
}

type keyRowsKey struct{}

// ---- users projection ----

type user struct {
	Email, Name, Status string
}

// user returns the projection of a user, or nil if no event about them
// arrived yet.
func (s *store) user(ctx context.Context, id string) (*user, error) {
	var u user
	err := s.db.QueryRow(ctx, `SELECT email, name, status FROM users WHERE user_id = ?`, id).Scan(&u.Email, &u.Name, &u.Status)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("order: read user %s: %w", id, err)
	}
	return &u, nil
}

// idemKey is a stored Idempotency-Key: the order placed with it and the
// SHA-256 (hex) of that request's body ("" for keys stored before bodies
// were hashed).
type idemKey struct {
	orderID, sum string
}

// userAndKey returns, in one read, the projection of user id (nil if no
// event about them arrived yet) and, when key is not "", the key as the
// user stored it (a zero idemKey if they did not).
func (s *store) userAndKey(ctx context.Context, id, key string) (*user, idemKey, error) {
	if key == "" {
		u, err := s.user(ctx, id)
		return u, idemKey{}, err
	}
	var email, name, status, orderID, sum sql.NullString
	err := s.db.QueryRow(ctx, `SELECT u.email, u.name, u.status, k.order_id, k.request_sha256 FROM (SELECT 1 AS one) x
		LEFT JOIN users u ON u.user_id = ? LEFT JOIN idempotency_keys k ON k.user_id = ? AND k.idem_key = ?`, id, id, key).
		Scan(&email, &name, &status, &orderID, &sum)
	if err != nil {
		return nil, idemKey{}, fmt.Errorf("order: read user %s and idempotency key: %w", id, err)
	}
	var u *user
	if status.Valid {
		u = &user{Email: email.String, Name: name.String, Status: status.String}
	}
	return u, idemKey{orderID.String, sum.String}, nil
}

// upsertUser stores a user's profile; the status of a known user is kept
// (a deactivated account stays deactivated).
func (s *store) upsertUser(ctx context.Context, tx *sqldb.Tx, id, email, name string) error {
	s.writingUser(tx, id)
	_, err := tx.Exec(ctx, `INSERT INTO users (user_id, email, name, status) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, name = excluded.name`+s.userNotice(tx), id, email, name, userActive)
	if err != nil {
		return fmt.Errorf("order: store user %s: %w", id, err)
	}
	return nil
}

// deactivateUser marks a user deactivated, known or not.
func (s *store) deactivateUser(ctx context.Context, tx *sqldb.Tx, id string) error {
	s.writingUser(tx, id)
	_, err := tx.Exec(ctx, `INSERT INTO users (user_id, status) VALUES (?, ?)
		ON CONFLICT (user_id) DO UPDATE SET status = excluded.status`+s.userNotice(tx), id, userDeactivated)
	if err != nil {
		return fmt.Errorf("order: deactivate user %s: %w", id, err)
	}
	return nil
}

// userNotice is the tail of a statement writing a users row that, on
// PostgreSQL, notifies every instance of the change once tx commits
// (changeChannel, payload "ID user": an older instance takes it for an
// order id that none has, and does nothing).
func (s *store) userNotice(tx *sqldb.Tx) string {
	if tx.Dialect() != sqldb.Postgres {
		return ""
	}
	return ` RETURNING pg_notify('` + changeChannel + `', user_id || ' ` + userNoticeToken + `')`
}

// userNoticeToken ends the payload of a users row's notification.
const userNoticeToken = "user"

// writingUser tells the user memory, if any, that tx is about to write
// user id's row (heard.Memory.Write): from then until tx ends no read of
// the user is answered from memory, so a POST /orders in the moment
// between the commit and its hook cannot be answered with the row as it
// was.
func (s *store) writingUser(tx *sqldb.Tx, id string) {
	if s.users != nil {
		s.users.Write(tx, id)
	}
}

// ordersOf returns the ids of a user's orders.
func (s *store) ordersOf(ctx context.Context, tx *sqldb.Tx, userID string) ([]string, error) {
	ids, err := sqldb.List(ctx, tx, `SELECT id FROM orders WHERE user_id = ? ORDER BY id`, []any{userID}, sqldb.ScanOne[string])
	if err != nil {
		return nil, fmt.Errorf("order: orders of %s: %w", userID, err)
	}
	return ids, nil
}

// ---- saga log ----

// sagaEvent is a stored envelope of an order's saga.
type sagaEvent struct {
	EventID, CausationID string
	TS                   int64 // envelope timestamp, µs
	Envelope             json.RawMessage
}

// logSagaEvent logs e under orderID, one of this service's orders, within
// tx: the row is buffered and inserted with the others of the transaction
// in one statement before it commits (an event logged before is left
// alone).
func (s *store) logSagaEvent(tx *sqldb.Tx, orderID string, e *event.Envelope) error {
	b, err := e.Marshal()
	if err != nil {
		return fmt.Errorf("order: %w", err)
	}
	rows := tx.Pending(sagaRowsKey{}, func() sqldb.Pending {
		return sqldb.NewRows(`INSERT INTO saga_events (event_id, order_id, event_type, ts, causation_id, envelope) VALUES`, 6,
			`ON CONFLICT (event_id) DO NOTHING`)
	}).(*sqldb.Rows)
	rows.Add(e.EventID, orderID, string(e.EventType), e.Timestamp.UnixMicro(), e.CausationID, string(b))
	return nil
}

type sagaRowsKey struct{}

// sagaEvents returns an order's logged events in timestamp order.
func (s *store) sagaEvents(ctx context.Context, orderID string) ([]sagaEvent, error) {
	out, err := sqldb.List(ctx, s.db, `SELECT event_id, causation_id, ts, envelope FROM saga_events WHERE order_id = ? ORDER BY ts, event_id`,
		[]any{orderID}, func(r sqldb.Scanner) (sagaEvent, error) {
			var ev sagaEvent
			var env string
			err := r.Scan(&ev.EventID, &ev.CausationID, &ev.TS, &env)
			ev.Envelope = json.RawMessage(env)
			return ev, err
		})
	if err != nil {
		return nil, fmt.Errorf("order: read saga of %s: %w", orderID, err)
	}
	return out, nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
