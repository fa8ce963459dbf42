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

// productColumns and productFrom read a product with its availability
// (zero until inventory's first stock level arrives).
const (
	productColumns = `p.id, p.sku, p.name, p.price_cents, p.currency, p.status,
		COALESCE(s.on_hand, 0), COALESCE(s.reserved, 0), COALESCE(s.available, 0), p.created_at, p.updated_at`
	productFrom = ` FROM products p LEFT JOIN product_stock s ON s.product_id = p.id`
)

func scanProduct(r sqldb.Scanner) (*Product, error) {
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
	p, err := scanProduct(q.QueryRow(ctx, `SELECT `+productColumns+productFrom+` WHERE p.id = ?`, id))
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
	q := `SELECT ` + productColumns + productFrom + ` WHERE 1 = 1`
	var args []any
	if !includeDiscontinued {
		q += ` AND p.status = ?`
		args = append(args, StatusActive)
	}
	if len(ids) > 0 {
		q += ` AND p.id IN (` + sqldb.Placeholders(len(ids)) + `)`
		for _, id := range ids {
			args = append(args, id)
		}
	}
	q += ` ORDER BY p.created_at, p.id LIMIT ? OFFSET ?`
	args = append(args, limit, offset)
	out, err := sqldb.List(ctx, s.db, q, args, scanProduct)
	if err != nil {
		return nil, fmt.Errorf("catalog: list products: %w", err)
	}
	return out, nil
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

// stockTable is the live table of the availability read model.
const stockTable = "product_stock"

// createStock creates a table of the availability read model named table.
const createStock = `CREATE TABLE %s (
	product_id TEXT PRIMARY KEY,
	on_hand    BIGINT NOT NULL,
	reserved   BIGINT NOT NULL,
	available  BIGINT NOT NULL,
	version    BIGINT NOT NULL
)`

// applyLevel stores a stock level in table unless a newer one is already
// stored: levels of one product arrive on different partitions, so only
// the version orders them, and applying a level twice changes nothing.
func (s *store) applyLevel(ctx context.Context, tx *sqldb.Tx, table string, l event.StockLevel) error {
	_, err := tx.Exec(ctx, `INSERT INTO `+table+` (product_id, on_hand, reserved, available, version) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (product_id) DO UPDATE SET on_hand = excluded.on_hand, reserved = excluded.reserved, available = excluded.available, version = excluded.version
		WHERE `+table+`.version < excluded.version`,
		l.ProductID, l.OnHand, l.Reserved, l.Available, l.Version)
	if err != nil {
		return fmt.Errorf("catalog: apply stock level of %s: %w", l.ProductID, err)
	}
	return nil
}

// newestLevels is a transaction's stock levels for the live availability
// table, the newest of each product, written in one statement when the
// transaction flushes its pending writes (sqldb.Tx.Pending): the result is
// that of applying each level with applyLevel. It can rewind to a
// savepoint: the levels buffered since are dropped on a rollback to it.
type newestLevels struct {
	levels []event.StockLevel // in the order added
}

type levelsKey struct{}

// applyLevelsLater buffers levels for the live availability table in tx
// (see newestLevels).
func (s *store) applyLevelsLater(tx *sqldb.Tx, levels ...event.StockLevel) {
	b := tx.Pending(levelsKey{}, func() sqldb.Pending { return &newestLevels{} }).(*newestLevels)
	b.levels = append(b.levels, levels...)
}

// Flush writes the newest level of each product, 200 a statement.
func (b *newestLevels) Flush(ctx context.Context, tx *sqldb.Tx) error {
	defer b.Discard()
	newest := make(map[string]int, len(b.levels))
	var order []string
	for i, l := range b.levels {
		j, ok := newest[l.ProductID]
		if !ok {
			order = append(order, l.ProductID)
		}
		if !ok || l.Version > b.levels[j].Version {
			newest[l.ProductID] = i
		}
	}
	rows := sqldb.NewRows(`INSERT INTO `+stockTable+` (product_id, on_hand, reserved, available, version) VALUES`, 5,
		`ON CONFLICT (product_id) DO UPDATE SET on_hand = excluded.on_hand, reserved = excluded.reserved, available = excluded.available, version = excluded.version
		WHERE `+stockTable+`.version < excluded.version`)
	for _, id := range order {
		l := b.levels[newest[id]]
		rows.Add(l.ProductID, l.OnHand, l.Reserved, l.Available, l.Version)
	}
	if err := rows.Flush(ctx, tx); err != nil {
		return fmt.Errorf("catalog: apply stock levels: %w", err)
	}
	return nil
}

// Discard drops the levels buffered.
func (b *newestLevels) Discard() { clear(b.levels); b.levels = b.levels[:0] }

// Len and Truncate make a rollback to a savepoint drop the levels buffered
// after it (sqldb.Rewinder).
func (b *newestLevels) Len() int { return len(b.levels) }

// Truncate keeps the first n levels.
func (b *newestLevels) Truncate(n int) {
	if n < len(b.levels) {
		clear(b.levels[n:])
		b.levels = b.levels[:n]
	}
}
