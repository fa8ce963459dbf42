package cart

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/sqldb"
)

type store struct{ db *sqldb.DB }

// querier is a database or a transaction.
type querier interface {
	QueryRow(context.Context, string, ...any) *sql.Row
	Query(context.Context, string, ...any) (*sql.Rows, error)
}

// cart reads userID's cart with its items; an empty Cart without CartID if
// the user has none.
func (s *store) cart(ctx context.Context, q querier, userID string) (*Cart, error) {
	c := &Cart{UserID: userID, Items: []event.CartItem{}}
	var updated int64
	err := q.QueryRow(ctx, `SELECT cart_id, updated_at FROM carts WHERE user_id = ?`, userID).Scan(&c.CartID, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cart: read cart of %s: %w", userID, err)
	}
	c.UpdatedAt = time.UnixMilli(updated).UTC()
	if c.Items, err = s.items(ctx, q, userID); err != nil {
		return nil, err
	}
	return c, nil
}

func (s *store) items(ctx context.Context, q querier, userID string) ([]event.CartItem, error) {
	items, err := sqldb.List(ctx, q, `SELECT product_id, quantity FROM cart_items WHERE user_id = ? ORDER BY added_at, product_id`,
		[]any{userID}, func(r sqldb.Scanner) (event.CartItem, error) {
			var it event.CartItem
			err := r.Scan(&it.ProductID, &it.Quantity)
			return it, err
		})
	if err != nil {
		return nil, fmt.Errorf("cart: read items of %s: %w", userID, err)
	}
	return items, nil
}

// lockCart returns the id of userID's cart, locked for the transaction, or
// "" if the user has none.
func (s *store) lockCart(ctx context.Context, tx *sqldb.Tx, userID string) (string, error) {
	var id string
	err := tx.QueryRow(ctx, `SELECT cart_id FROM carts WHERE user_id = ?`+tx.ForUpdate(), userID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("cart: lock cart of %s: %w", userID, err)
	}
	return id, nil
}

// ensureCart returns the id of userID's cart, locked, making it if the user
// has none; created says whether it did.
func (s *store) ensureCart(ctx context.Context, tx *sqldb.Tx, userID string, now time.Time) (id string, created bool, err error) {
	res, err := tx.Exec(ctx, `INSERT INTO carts (user_id, cart_id, created_at, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (user_id) DO NOTHING`,
		userID, event.NewID(), now.UnixMilli(), now.UnixMilli())
	if err != nil {
		return "", false, fmt.Errorf("cart: create cart of %s: %w", userID, err)
	}
	n, _ := res.RowsAffected()
	id, err = s.lockCart(ctx, tx, userID)
	return id, n > 0, err
}

// quantity returns how many of productID userID's cart holds.
func (s *store) quantity(ctx context.Context, tx *sqldb.Tx, userID, productID string) (int64, error) {
	var q int64
	err := tx.QueryRow(ctx, `SELECT quantity FROM cart_items WHERE user_id = ? AND product_id = ?`, userID, productID).Scan(&q)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("cart: read line %s of %s: %w", productID, userID, err)
	}
	return q, nil
}

// setQuantity sets a line's quantity, adding the line if needed (a line
// keeps the time it was first added).
func (s *store) setQuantity(ctx context.Context, tx *sqldb.Tx, userID, productID string, qty int64, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO cart_items (user_id, product_id, quantity, added_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id, product_id) DO UPDATE SET quantity = excluded.quantity`, userID, productID, qty, now.UnixMilli())
	if err != nil {
		return fmt.Errorf("cart: set line %s of %s: %w", productID, userID, err)
	}
	return nil
}

// deleteItem removes a line and reports whether there was one.
func (s *store) deleteItem(ctx context.Context, tx *sqldb.Tx, userID, productID string) (bool, error) {
	res, err := tx.Exec(ctx, `DELETE FROM cart_items WHERE user_id = ? AND product_id = ?`, userID, productID)
	if err != nil {
		return false, fmt.Errorf("cart: remove line %s of %s: %w", productID, userID, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// clear removes every line of userID's cart and returns how many there were.
func (s *store) clear(ctx context.Context, tx *sqldb.Tx, userID string) (int64, error) {
	res, err := tx.Exec(ctx, `DELETE FROM cart_items WHERE user_id = ?`, userID)
	if err != nil {
		return 0, fmt.Errorf("cart: clear cart of %s: %w", userID, err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// touch records a change of userID's cart at now, which starts a new idle
// period, and returns the cart as changed.
func (s *store) touch(ctx context.Context, tx *sqldb.Tx, userID string, now time.Time) (*Cart, error) {
	if _, err := tx.Exec(ctx, `UPDATE carts SET updated_at = ?, abandoned_at = 0 WHERE user_id = ?`, now.UnixMilli(), userID); err != nil {
		return nil, fmt.Errorf("cart: touch cart of %s: %w", userID, err)
	}
	return s.cart(ctx, tx, userID)
}

// usersWithProduct returns the owners of the carts holding productID, sorted.
func (s *store) usersWithProduct(ctx context.Context, tx *sqldb.Tx, productID string) ([]string, error) {
	users, err := sqldb.List(ctx, tx, `SELECT user_id FROM cart_items WHERE product_id = ? ORDER BY user_id`, []any{productID}, sqldb.ScanOne[string])
	if err != nil {
		return nil, fmt.Errorf("cart: carts holding %s: %w", productID, err)
	}
	return users, nil
}

func (s *store) deactivated(ctx context.Context, q querier, userID string) (bool, error) {
	var n int
	if err := q.QueryRow(ctx, `SELECT COUNT(*) FROM deactivated_users WHERE user_id = ?`, userID).Scan(&n); err != nil {
		return false, fmt.Errorf("cart: read deactivation of %s: %w", userID, err)
	}
	return n > 0, nil
}

func (s *store) deactivate(ctx context.Context, tx *sqldb.Tx, userID string, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO deactivated_users (user_id, deactivated_at) VALUES (?, ?) ON CONFLICT (user_id) DO NOTHING`, userID, now.UnixMilli())
	if err != nil {
		return fmt.Errorf("cart: deactivate %s: %w", userID, err)
	}
	return nil
}

// idleCart is a cart left unchanged since UpdatedAt and not yet reported.
type idleCart struct {
	UserID, CartID string
	UpdatedAt      int64 // Unix ms
}

// idleCarts returns up to limit unreported non-empty carts unchanged since
// before cutoff, oldest first.
func (s *store) idleCarts(ctx context.Context, tx *sqldb.Tx, cutoff time.Time, limit int) ([]idleCart, error) {
	out, err := sqldb.List(ctx, tx, `SELECT user_id, cart_id, updated_at FROM carts
		WHERE abandoned_at = 0 AND updated_at < ? AND EXISTS (SELECT 1 FROM cart_items i WHERE i.user_id = carts.user_id)
		ORDER BY updated_at, user_id LIMIT ?`, []any{cutoff.UnixMilli(), limit}, func(r sqldb.Scanner) (idleCart, error) {
		var c idleCart
		err := r.Scan(&c.UserID, &c.CartID, &c.UpdatedAt)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("cart: find idle carts: %w", err)
	}
	return out, nil
}

// markAbandoned records that c's idle period was reported, unless the cart
// changed (or was reported) since it was read; it reports whether it did.
func (s *store) markAbandoned(ctx context.Context, tx *sqldb.Tx, c idleCart, now time.Time) (bool, error) {
	res, err := tx.Exec(ctx, `UPDATE carts SET abandoned_at = ? WHERE user_id = ? AND abandoned_at = 0 AND updated_at = ?`,
		now.UnixMilli(), c.UserID, c.UpdatedAt)
	if err != nil {
		return false, fmt.Errorf("cart: mark cart of %s abandoned: %w", c.UserID, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}
