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

type store struct {
	db  *sqldb.DB
	mem memory // told of every write at commit
}

// changeChannel is the PostgreSQL channel every committing write of the
// products and product_stock tables notifies (pg_notify in the statement
// itself, delivered at commit to every instance; see Service.RunInstance).
// The payload is the product's id for a write of its products row; the id,
// version, on hand, reserved and available of a stock level applied, each
// after a space; "*" when every product may have changed (swapStock).
const changeChannel = "eventmart_catalog"

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
	p.Availability = availability(p.Availability.OnHand, p.Availability.Reserved, p.Availability.Available, p.Status)
	p.CreatedAt, p.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
	return &p, nil
}

// availability is a product's availability at a stock level.
func availability(onHand, reserved, available int64, status string) Availability {
	return Availability{OnHand: onHand, Reserved: reserved, Available: available, InStock: available > 0 && status == StatusActive}
}

// byIDs reads the products of ids (distinct), in no particular order, with
// the version of their stock level, for memory.
func (s *store) byIDs(ctx context.Context, ids []string) ([]remembered, error) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	out, err := sqldb.List(ctx, s.db, `SELECT `+productColumns+`, COALESCE(s.version, 0)`+productFrom+
		` WHERE p.id IN (`+sqldb.Placeholders(len(ids))+`)`, args, func(r sqldb.Scanner) (remembered, error) {
		var e remembered
		var created, updated int64
		err := r.Scan(&e.p.ID, &e.p.SKU, &e.p.Name, &e.p.PriceCents, &e.p.Currency, &e.p.Status,
			&e.p.Availability.OnHand, &e.p.Availability.Reserved, &e.p.Availability.Available, &created, &updated, &e.version)
		e.p.Availability = availability(e.p.Availability.OnHand, e.p.Availability.Reserved, e.p.Availability.Available, e.p.Status)
		e.p.CreatedAt, e.p.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: read products by id: %w", err)
	}
	return out, nil
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

// notifyTail ends a statement writing products rows on PostgreSQL: it
// notifies changeChannel of each row's id (see changeChannel).
const notifyTail = ` RETURNING pg_notify('` + changeChannel + `', id)`

// written tells memory that tx is about to write product id's row
// (heard.Memory.Write: not answered from memory until tx ends, forgotten
// once it commits; on PostgreSQL the statement's notification tells every
// other instance).
func (s *store) written(tx *sqldb.Tx, id string) {
	s.mem.Write(tx, id)
}

// tail returns notifyTail on PostgreSQL, "" on SQLite.
func tail(tx *sqldb.Tx) string {
	if tx.Dialect() == sqldb.Postgres {
		return notifyTail
	}
	return ""
}

func (s *store) insert(ctx context.Context, tx *sqldb.Tx, p *Product) error {
	s.written(tx, p.ID)
	_, err := tx.Exec(ctx, `INSERT INTO products (id, sku, name, price_cents, currency, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`+tail(tx),
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
	s.written(tx, p.ID)
	_, err := tx.Exec(ctx, `UPDATE products SET name = ?, price_cents = ?, currency = ?, status = ?, updated_at = ? WHERE id = ?`+tail(tx),
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
//
// On PostgreSQL the statement notifies changeChannel of each level it
// applied (pg_notify in its RETURNING clause: a row whose newer level is
// stored already returns nothing); at commit, memory is told every level
// (memory.level keeps the newest as the statement does).
type newestLevels struct {
	levels []event.StockLevel // in the order added
	mem    memory
}

type levelsKey struct{}

// applyLevelsLater buffers levels for the live availability table in tx
// (see newestLevels).
func (s *store) applyLevelsLater(tx *sqldb.Tx, levels ...event.StockLevel) {
	b := tx.Pending(levelsKey{}, func() sqldb.Pending { return &newestLevels{mem: s.mem} }).(*newestLevels)
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
	conflict := `ON CONFLICT (product_id) DO UPDATE SET on_hand = excluded.on_hand, reserved = excluded.reserved, available = excluded.available, version = excluded.version
		WHERE ` + stockTable + `.version < excluded.version`
	if tx.Dialect() == sqldb.Postgres {
		conflict += levelNotifyTail
	}
	rows := sqldb.NewRows(`INSERT INTO `+stockTable+` (product_id, on_hand, reserved, available, version) VALUES`, 5, conflict)
	applied := make([]event.StockLevel, 0, len(order))
	for _, id := range order {
		l := b.levels[newest[id]]
		rows.Add(l.ProductID, l.OnHand, l.Reserved, l.Available, l.Version)
		applied = append(applied, l)
		// Not answered from memory from now until tx ends: its commit may
		// be visible before the hook below applies the level.
		b.mem.Writing(id)
		tx.OnEnd(func() { b.mem.Wrote(id) })
	}
	if err := rows.Flush(ctx, tx); err != nil {
		return fmt.Errorf("catalog: apply stock levels: %w", err)
	}
	if len(applied) == 0 {
		return nil
	}
	tx.OnCommit(func() {
		for _, l := range applied {
			b.mem.level(l)
		}
	})
	return nil
}

// levelNotifyTail ends the statement applying stock levels on PostgreSQL:
// it notifies changeChannel of each level stored (see changeChannel).
const levelNotifyTail = ` RETURNING pg_notify('` + changeChannel + `', product_id || ' ' || CAST(version AS TEXT) || ' ' ||
	CAST(on_hand AS TEXT) || ' ' || CAST(reserved AS TEXT) || ' ' || CAST(available AS TEXT))`

// swapStock tells memory that every product's availability may change
// with tx (a rebuilt table is swapped in): nothing is answered from memory
// until tx ends, everything is forgotten once it commits; on PostgreSQL it
// tells every instance, by a notification "*".
func (s *store) swapStock(ctx context.Context, tx *sqldb.Tx) error {
	s.mem.WriteAll(tx)
	if tx.Dialect() != sqldb.Postgres {
		return nil
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify('`+changeChannel+`', '*')`); err != nil {
		return fmt.Errorf("catalog: notify the swap of the availability table: %w", err)
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
