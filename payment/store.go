package payment

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/sqldb"
)

type store struct {
	db     *sqldb.DB
	memory *eventstore.Memory[PaymentState] // of the payments loaded and saved (payments()); nil: none
}

const paymentColumns = `payment_id, order_id, user_id, amount_cents, currency, card_token, card_last4, status, auth_code, failure_code, reason, has_order, reserved, cancelled, created_at, updated_at`

func scanPayment(r sqldb.Scanner) (*Payment, error) {
	var p Payment
	var hasOrder, reserved, cancelled, created, updated int64
	err := r.Scan(&p.ID, &p.OrderID, &p.UserID, &p.AmountCents, &p.Currency, &p.cardToken, &p.CardLast4, &p.Status,
		&p.AuthCode, &p.FailureCode, &p.Reason, &hasOrder, &reserved, &cancelled, &created, &updated)
	if err != nil {
		return nil, err
	}
	p.hasOrder, p.reserved, p.cancelled = hasOrder == 1, reserved == 1, cancelled == 1
	p.CreatedAt, p.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
	return &p, nil
}

// list returns payments whose order is known (OrderCreated seen), newest
// first: of one order if orderID is set, of one user if userID is set.
func (s *store) list(ctx context.Context, orderID, userID string, limit, offset int) ([]*Payment, error) {
	q, args := sqldb.AndEq(`SELECT `+paymentColumns+` FROM payments WHERE has_order = 1`, nil,
		sqldb.Eq{Col: "order_id", Value: orderID}, sqldb.Eq{Col: "user_id", Value: userID})
	q += ` ORDER BY created_at DESC, payment_id LIMIT ? OFFSET ?`
	args = append(args, limit, offset)
	out, err := sqldb.List(ctx, s.db, q, args, scanPayment)
	if err != nil {
		return nil, fmt.Errorf("payment: list payments: %w", err)
	}
	return out, nil
}

// vaultedCard is a card with its number as stored: sealed (vault.open
// reads it).
type vaultedCard struct {
	Card
	UserID      string
	Number      string
	Fingerprint string // written, not read back
}

// insertCard stores c unless its user has a card of its fingerprint
// already — vaulted meanwhile by a concurrent request or instance, whose
// insert the unique index (user_id, fingerprint, duplicate) let in first:
// then it returns that card instead, and false. On PostgreSQL the insert
// waits for the other's transaction to end, so the card is there to read.
func (s *store) insertCard(ctx context.Context, c *vaultedCard, now time.Time) (Card, bool, error) {
	res, err := s.db.Exec(ctx, `INSERT INTO cards (token, user_id, number, last4, brand, fingerprint, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (user_id, fingerprint, duplicate) DO NOTHING`,
		c.Token, c.UserID, c.Number, c.Last4, c.Brand, c.Fingerprint, now.UnixMilli())
	if err != nil {
		return Card{}, false, fmt.Errorf("payment: vault card: %w", err) // the number is not in err: it is a bound parameter
	}
	if n, err := res.RowsAffected(); err != nil {
		return Card{}, false, fmt.Errorf("payment: vault card: %w", err)
	} else if n == 1 {
		return c.Card, true, nil
	}
	other, err := s.userCard(ctx, c.UserID, c.Fingerprint)
	if err != nil {
		return Card{}, false, err
	}
	if other == nil {
		return Card{}, false, errors.New("payment: vault card: the card vaulted at the same time is gone")
	}
	return *other, false, nil
}

// userCard returns the card userID vaulted whose number has fingerprint
// fp — the one vaulting answers, its duplicate column empty (see migration
// 0003) — or nil if there is none.
func (s *store) userCard(ctx context.Context, userID, fp string) (*Card, error) {
	var c Card
	err := s.db.QueryRow(ctx, `SELECT token, last4, brand FROM cards WHERE user_id = ? AND fingerprint = ? AND duplicate = ''`, userID, fp).
		Scan(&c.Token, &c.Last4, &c.Brand)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("payment: read card: %w", err)
	}
	return &c, nil
}

// card returns the vaulted card of token, or nil if there is none.
func (s *store) card(ctx context.Context, tx *sqldb.Tx, token string) (*vaultedCard, error) {
	var c vaultedCard
	err := tx.QueryRow(ctx, `SELECT token, user_id, number, last4, brand FROM cards WHERE token = ?`, token).
		Scan(&c.Token, &c.UserID, &c.Number, &c.Last4, &c.Brand)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("payment: read card: %w", err)
	}
	return &c, nil
}

// cardCache is the vaulted cards tx read, by token (nil: no such card), so
// that a batch of charges reads them in one query (see Service.Prepare;
// sqldb.Cache).
func cardCache(tx *sqldb.Tx) map[string]*vaultedCard {
	return sqldb.Cache[string, *vaultedCard](tx, cardsKey{})
}

type cardsKey struct{}

// cardCached is card through tx's cache.
func (s *store) cardCached(ctx context.Context, tx *sqldb.Tx, token string) (*vaultedCard, error) {
	c := cardCache(tx)
	if card, ok := c[token]; ok {
		return card, nil
	}
	card, err := s.card(ctx, tx, token)
	if err != nil {
		return nil, err
	}
	c[token] = card
	return card, nil
}

// loadCards reads into tx's cache, in one query, the cards of tokens not
// in it yet.
func (s *store) loadCards(ctx context.Context, tx *sqldb.Tx, tokens []string) error {
	c := cardCache(tx)
	var args []string
	for _, t := range tokens {
		if _, ok := c[t]; !ok {
			c[t] = nil // unless found below
			args = append(args, t)
		}
	}
	found, err := sqldb.ListIn(ctx, tx, `SELECT token, user_id, number, last4, brand FROM cards WHERE token`, "",
		args, func(r sqldb.Scanner) (*vaultedCard, error) {
			var v vaultedCard
			err := r.Scan(&v.Token, &v.UserID, &v.Number, &v.Last4, &v.Brand)
			return &v, err
		})
	if err != nil {
		return fmt.Errorf("payment: read cards: %w", err)
	}
	for _, v := range found {
		c[v.Token] = v
	}
	return nil
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
