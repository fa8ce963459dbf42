-- Availability moves to a table of its own: the catalog's read model of
-- inventory's stock levels, built only from inventory events, so it can
-- be rebuilt from scratch into a fresh table and swapped in
-- (eventmart replay catalog --rebuild).
CREATE TABLE product_stock (
	product_id TEXT PRIMARY KEY,
	on_hand    BIGINT NOT NULL,
	reserved   BIGINT NOT NULL,
	available  BIGINT NOT NULL,
	version    BIGINT NOT NULL
);
INSERT INTO product_stock (product_id, on_hand, reserved, available, version)
	SELECT id, on_hand, reserved, available, stock_version FROM products WHERE stock_version > 0;
ALTER TABLE products DROP COLUMN on_hand;
ALTER TABLE products DROP COLUMN reserved;
ALTER TABLE products DROP COLUMN available;
ALTER TABLE products DROP COLUMN stock_version;
