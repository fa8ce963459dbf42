package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/sqldb"
)

type store struct{ db *sqldb.DB }

const productColumns = `id, sku, name, price_cents, currency, status, on_hand, reserved, available, created_at, updated_at`

type scanner interface{ Scan(...any) error }

func scanProduct(r scanner) (*Product, error) {
	var p Product
	var created, updated int64
	err := r.Scan(&p.ID, &p.SKU, &p.Name, &p.PriceCents, &p.Currency, &p.Status,
		&p.Availability.OnHand, &p.Availability.Reserved, &p.Availability.Available, &created, &updated)
	if err != nil {
		return nil, err
	}
	p.Availability.InStock = p.Availability.Available > 0 && p.Status == StatusActive
	p.CreatedAt, p.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
	return &p, nil
}

// product reads one product; ENOTFOUND if absent.
func (s *store) product(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) *sql.Row
}, id string) (*Product, error) {
	p, err := scanProduct(q.QueryRow(ctx, `SELECT `+productColumns+` FROM products WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, eventmart.Errorf(eventmart.ENOTFOUND, "product %s not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("catalog: read product %s: %w", id, err)
	}
	return p, nil
}

// list returns products in creation order, after the given offset.
func (s *store) list(ctx context.Context, ids []string, includeDiscontinued bool, limit, offset int) ([]*Product, error) {
	q := `SELECT ` + productColumns + ` FROM products WHERE 1 = 1`
	var args []any
	if !includeDiscontinued {
		q += ` AND status = ?`
		args = append(args, StatusActive)
	}
	if len(ids) > 0 {
		q += ` AND id IN (` + sqldb.Placeholders(len(ids)) + `)`
		for _, id := range ids {
			args = append(args, id)
		}
	}
	q += ` ORDER BY created_at, id LIMIT ? OFFSET ?`
	args = append(args, limit, offset)
	rows, err := s.db.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("catalog: list products: %w", err)
	}
	defer rows.Close()
	out := []*Product{}
	for rows.Next() {
		p, err := scanProduct(rows)
		if err != nil {
			return nil, fmt.Errorf("catalog: list products: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func (s *store) insert(ctx context.Context, tx *sqldb.Tx, p *Product) error {
	_, err := tx.Exec(ctx, `INSERT INTO products (id, sku, name, price_cents, currency, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ID, p.SKU, p.Name, p.PriceCents, p.Currency, p.Status, p.CreatedAt.UnixMilli(), p.UpdatedAt.UnixMilli())
	if err != nil && sqldb.IsUniqueViolation(err) {
		return eventmart.Errorf(eventmart.ECONFLICT, "a product with sku %q exists", p.SKU)
	}
	if err != nil {
		return fmt.Errorf("catalog: insert product: %w", err)
	}
	return nil
}

func (s *store) update(ctx context.Context, tx *sqldb.Tx, p *Product) error {
	_, err := tx.Exec(ctx, `UPDATE products SET name = ?, price_cents = ?, currency = ?, status = ?, updated_at = ? WHERE id = ?`,
		p.Name, p.PriceCents, p.Currency, p.Status, p.UpdatedAt.UnixMilli(), p.ID)
	if err != nil {
		return fmt.Errorf("catalog: update product %s: %w", p.ID, err)
	}
	return nil
}

// applyLevel stores a stock level unless a newer one is already stored:
// levels of one product arrive on different partitions, so only the
// version orders them.
func (s *store) applyLevel(ctx context.Context, tx *sqldb.Tx, l event.StockLevel) (bool, error) {
	res, err := tx.Exec(ctx, `UPDATE products SET on_hand = ?, reserved = ?, available = ?, stock_version = ? WHERE id = ? AND stock_version < ?`,
		l.OnHand, l.Reserved, l.Available, l.Version, l.ProductID, l.Version)
	if err != nil {
		return false, fmt.Errorf("catalog: apply stock level of %s: %w", l.ProductID, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}
