package payment

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// ledgerStream is the stream of an order's payment. It is named by the
// payment id, which is derived from the order id (paymentID): every event
// the service consumes names the order, so a handler finds the stream
// without a lookup, and GET /payments/{id}/ledger finds it by the id the
// API shows.
func ledgerStream(paymentID string) string { return ledgerPrefix + paymentID }

const ledgerPrefix = "payment-"

// maxTries bounds the tries of one command against conflicting appends.
const maxTries = 100

// A payment's stream is short (at most eight events), so it is never
// snapshotted: SnapshotEvery 0. A store's payments() adds the service's
// memory of the streams. Its events are inserted as they are saved, not
// at commit (AppendAtCommit): on PostgreSQL the note that makes an order
// ready to charge claims the stream's next version before the provider is
// called, so that a cancellation racing it waits for its commit and then
// refunds — appended at commit, both would decide on what they read and
// the charge be made for an order then voided.
var ledgerAggregate = eventstore.Aggregate[PaymentState]{
	SchemaVersion: ledgerSchemaVersion,
	Apply: func(s PaymentState, e eventstore.Event) (PaymentState, error) {
		le, err := decodeLedgerEvent(e)
		if err != nil {
			return s, err
		}
		return applyAt(s, le, e.Time)
	},
}

// payments is ledgerAggregate with s's memory of the payments (none when
// nil): a batch's load of a payment this instance loaded or saved before
// reads only the events appended since, not every event of its stream,
// decoded again. apply changes only fields of PaymentState, which holds
// no map or slice, so a remembered state is handed out as a plain copy:
// no Clone.
func (s *store) payments() eventstore.Aggregate[PaymentState] {
	a := ledgerAggregate
	a.Memory = s.memory
	return a
}

// applyAt is apply with the event's time recorded in the state.
func applyAt(s PaymentState, e LedgerEvent, at time.Time) (PaymentState, error) {
	first := !s.Known
	s, err := apply(s, e)
	if err != nil {
		return s, err
	}
	if first && e.Type != LedgerImported {
		s.CreatedAt = at.UTC()
	}
	if e.Type != LedgerImported {
		s.UpdatedAt = at.UTC()
	}
	return s, nil
}

func decodeLedgerEvent(e eventstore.Event) (LedgerEvent, error) {
	le, err := eventstore.DecodeFrom[LedgerEvent](ledgerEvents, e)
	le.Type = e.Type
	return le, err
}

// ledger is an order's payment as loaded from its stream.
type ledger struct {
	PaymentID string
	State     PaymentState
	Version   int64 // the stream's
}

// loadLedger loads the payment of orderID from its stream.
func (s *store) loadLedger(ctx context.Context, q eventstore.Querier, orderID string) (*ledger, error) {
	id := paymentID(orderID)
	state, v, err := s.payments().Load(ctx, q, ledgerStream(id))
	if err != nil {
		return nil, fmt.Errorf("payment: load payment of order %s: %w", orderID, err)
	}
	if state.OrderID == "" {
		state.OrderID = orderID
	}
	return &ledger{PaymentID: id, State: state, Version: v}, nil
}

// ledgers are the ledgers of a batch's orders, by order id.
type ledgers = map[string]*ledger

// ledgerCache is the ledgers tx loaded (and saved since), so that a batch
// of events reads each order's stream once (see Service.Prepare;
// sqldb.Cache: a rollback empties it).
func ledgerCache(tx *sqldb.Tx) ledgers { return sqldb.Cache[string, *ledger](tx, ledgersKey{}) }

type ledgersKey struct{}

// loadLedgerCached is loadLedger through tx's cache: the ledger it returns
// is the cache's, which saveLedger updates.
func (s *store) loadLedgerCached(ctx context.Context, tx *sqldb.Tx, orderID string) (*ledger, error) {
	c := ledgerCache(tx)
	if l, ok := c[orderID]; ok {
		return l, nil
	}
	l, err := s.loadLedger(ctx, tx, orderID)
	if err != nil {
		return nil, err
	}
	c[orderID] = l
	return l, nil
}

// loadLedgers loads into tx's cache, in one read, the ledgers of the
// orders ids not in it yet, and returns the cache.
func (s *store) loadLedgers(ctx context.Context, tx *sqldb.Tx, orderIDs []string) (ledgers, error) {
	c := ledgerCache(tx)
	byStream := map[string]string{}
	var todo []string
	for _, id := range orderIDs {
		if _, ok := c[id]; ok {
			continue
		}
		pid := paymentID(id)
		byStream[ledgerStream(pid)] = id
		todo = append(todo, ledgerStream(pid))
	}
	if len(todo) == 0 {
		return c, nil
	}
	loaded, err := s.payments().LoadMany(ctx, tx, todo)
	if err != nil {
		return nil, fmt.Errorf("payment: load %d payments: %w", len(todo), err)
	}
	for stream, l := range loaded {
		orderID := byStream[stream]
		state := l.State
		if state.OrderID == "" {
			state.OrderID = orderID
		}
		c[orderID] = &ledger{PaymentID: paymentID(orderID), State: state, Version: l.Version}
	}
	return c, nil
}

// saveLedger appends events to l's stream, expecting it unchanged since
// loaded (an eventstore.ErrConflict otherwise), and updates l and the
// payments table (the projection) within tx. meta is the events' metadata.
func (s *store) saveLedger(ctx context.Context, tx *sqldb.Tx, l *ledger, meta json.RawMessage, at time.Time, events ...LedgerEvent) error {
	if len(events) == 0 {
		return nil
	}
	recs, err := eventstore.EncodeFor(ledgerEvents, events, func(e LedgerEvent) string { return e.Type }, meta, at)
	if err != nil {
		return fmt.Errorf("payment: %w", err)
	}
	state, v, err := s.payments().Save(ctx, tx, ledgerStream(l.PaymentID), l.State, l.Version, recs...)
	if err != nil {
		return fmt.Errorf("payment: save payment %s: %w", l.PaymentID, err)
	}
	l.State, l.Version = state, v
	return projectPaymentLater(tx, l.PaymentID, state)
}

// The payments table's upsert of a payment's state.
const (
	paymentInsert = `INSERT INTO payments (payment_id, order_id, user_id, amount_cents, currency, card_token, card_last4, status,
			auth_code, failure_code, reason, has_order, reserved, cancelled, created_at, updated_at) VALUES`
	paymentUpsert = `ON CONFLICT (payment_id) DO UPDATE SET user_id = excluded.user_id, amount_cents = excluded.amount_cents,
			currency = excluded.currency, card_token = excluded.card_token, card_last4 = excluded.card_last4, status = excluded.status,
			auth_code = excluded.auth_code, failure_code = excluded.failure_code, reason = excluded.reason,
			has_order = excluded.has_order, reserved = excluded.reserved, cancelled = excluded.cancelled,
			created_at = excluded.created_at, updated_at = excluded.updated_at`
)

// paymentRow returns the payments row of a payment's state: its columns'
// values.
func paymentRow(paymentID string, s PaymentState) ([]any, error) {
	if s.RefundedCents > s.CapturedCents || s.CapturedCents > max(s.AmountCents, 0) {
		// decide never gets here; refusing keeps a bug from breaking the invariant.
		return nil, fmt.Errorf("payment: payment %s would have captured %d of %d, refunded %d", paymentID, s.CapturedCents, s.AmountCents, s.RefundedCents)
	}
	return []any{paymentID, s.OrderID, s.UserID, s.AmountCents, s.Currency, s.CardToken, s.CardLast4, s.Status,
		s.AuthCode, s.FailureCode, s.Reason, b2i(s.HasOrder), b2i(s.Reserved), b2i(s.Cancelled),
		s.CreatedAt.UnixMilli(), s.UpdatedAt.UnixMilli()}, nil
}

// projectPayment writes a payment's state to the payments table.
func projectPayment(ctx context.Context, tx *sqldb.Tx, paymentID string, s PaymentState) error {
	row, err := paymentRow(paymentID, s)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, paymentInsert+" (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "+paymentUpsert, row...); err != nil {
		return fmt.Errorf("payment: project payment %s: %w", paymentID, err)
	}
	return nil
}

type projectionKey struct{}

// projectPaymentLater buffers a payment's state for the payments table in
// tx: the rows of a transaction's payments are written in one statement
// before it commits, each payment's last state once. Nothing reads the
// payments table in a transaction after writing to it.
func projectPaymentLater(tx *sqldb.Tx, paymentID string, s PaymentState) error {
	row, err := paymentRow(paymentID, s)
	if err != nil {
		return err
	}
	tx.Pending(projectionKey{}, func() sqldb.Pending { return sqldb.NewUpserts(paymentInsert, 16, 1, paymentUpsert) }).(*sqldb.Rows).Add(row...)
	return nil
}

// Entry is one event of a payment's ledger, with the balance after it.
type Entry struct {
	Version     int64     `json:"version"` // in the payment's stream
	Type        string    `json:"type"`    // the domain event: ChargeCaptured, …
	Time        time.Time `json:"time"`
	AmountCents int64     `json:"amountCents"` // of money moving: captured or refunded; the order's total for OrderNoted, Authorised and Imported
	Currency    string    `json:"currency"`
	Status      string    `json:"status"` // the payment's after it
	// BalanceCents is captured minus refunded after it.
	BalanceCents int64  `json:"balanceCents"`
	AuthCode     string `json:"authCode,omitempty"`
	Code         string `json:"code,omitempty"`
	Reason       string `json:"reason,omitempty"`
}

// Ledger is a payment's ledger as the API shows it.
type Ledger struct {
	PaymentID string  `json:"paymentId"`
	OrderID   string  `json:"orderId"`
	UserID    string  `json:"userId"`
	Entries   []Entry `json:"entries"`
}

// readLedger folds the payment's stream and returns its entries, oldest
// first. ENOTFOUND when there is none or the order is not known yet
// (OrderCreated unseen, as GET /payments hides it).
func readLedger(ctx context.Context, q eventstore.Querier, paymentID string) (*Ledger, error) {
	evs, err := eventstore.ReadStream(ctx, q, ledgerStream(paymentID), 0, 0)
	if err != nil {
		return nil, fmt.Errorf("payment: ledger of %s: %w", paymentID, err)
	}
	out := &Ledger{PaymentID: paymentID, Entries: []Entry{}}
	var s PaymentState
	for _, e := range evs {
		le, err := decodeLedgerEvent(e)
		if err != nil {
			return nil, err
		}
		if s, err = applyAt(s, le, e.Time); err != nil {
			return nil, err
		}
		amount := le.AmountCents
		if le.Type == LedgerImported {
			amount = s.AmountCents
		}
		out.Entries = append(out.Entries, Entry{Version: e.Version, Type: e.Type, Time: e.Time, AmountCents: amount, Currency: s.Currency,
			Status: s.Status, BalanceCents: s.Balance(), AuthCode: le.AuthCode, Code: le.Code, Reason: le.Reason})
	}
	if !s.HasOrder {
		return nil, eventmart.Errorf(eventmart.ENOTFOUND, "payment %s not found", paymentID)
	}
	out.OrderID, out.UserID = s.OrderID, s.UserID
	return out, nil
}

// importRows gives every payments row without a stream — written by the
// release before streams — a LedgerImported event holding it as it is
// (a processed payment captured its amount; a refunded one, captured and
// refunded it), and returns how many it imported. It is idempotent: a
// payment with a stream is left alone; instances starting at once on one
// PostgreSQL database conflict on the streams' first version, and the
// loser finds nothing left to do on its next try.
func importRows(ctx context.Context, db *sqldb.DB) (int, error) {
	st := &store{db: db} // before the service: no memory to keep
	n := 0
	err := eventstore.Retry(ctx, db, maxTries, func(tx *sqldb.Tx) error {
		n = 0
		rows, err := tx.Query(ctx, `SELECT `+paymentColumns+` FROM payments p
			WHERE NOT EXISTS (SELECT 1 FROM es_events e WHERE e.stream_id = '`+ledgerPrefix+`' || p.payment_id) ORDER BY payment_id`)
		if err != nil {
			return fmt.Errorf("payment: rows to import: %w", err)
		}
		var todo []*Payment
		for rows.Next() {
			p, err := scanPayment(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("payment: rows to import: %w", err)
			}
			todo = append(todo, p)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(todo) == 0 {
			return err
		}
		for _, p := range todo {
			l := &ledger{PaymentID: p.ID}
			evs, err := decide(l.State, LedgerCommand{Kind: ImportRow, Imported: importedState(p)})
			if err != nil {
				return err
			}
			if err := st.saveLedger(ctx, tx, l, json.RawMessage(`{"reason":"import"}`), p.UpdatedAt, evs...); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// importedState is the state a row of the previous release stands for.
func importedState(p *Payment) PaymentState {
	s := PaymentState{Known: true, OrderID: p.OrderID, UserID: p.UserID, AmountCents: p.AmountCents, Currency: p.Currency,
		CardToken: p.cardToken, CardLast4: p.CardLast4, Status: p.Status, AuthCode: p.AuthCode, FailureCode: p.FailureCode,
		Reason: p.Reason, HasOrder: p.hasOrder, Reserved: p.reserved, Cancelled: p.cancelled, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
	switch p.Status {
	case StatusProcessed:
		s.CapturedCents = p.AmountCents
	case StatusRefunded:
		s.CapturedCents, s.RefundedCents = p.AmountCents, p.AmountCents
	}
	return s
}

// rebuildPayments rebuilds the payments table from the streams, live
// (eventstore.Rebuild: every row rewritten from the fold of its payment's
// whole stream, rows without a stream deleted, writers held off), and
// returns the number of events read.
func rebuildPayments(ctx context.Context, db *sqldb.DB) (int64, error) {
	n, err := eventstore.Rebuild(ctx, db, "payments", ledgerPrefix, ledgerAggregate,
		func(ctx context.Context, tx *sqldb.Tx, id string, s PaymentState, _ time.Time) error {
			return projectPayment(ctx, tx, id, s)
		})
	if err != nil {
		return n, fmt.Errorf("payment: %w", err)
	}
	return n, nil
}
