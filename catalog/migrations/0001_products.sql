CREATE TABLE products (
	id             TEXT PRIMARY KEY,
	sku            TEXT NOT NULL UNIQUE,
	name           TEXT NOT NULL,
	price_cents    BIGINT NOT NULL,
	currency       TEXT NOT NULL,
	status         TEXT NOT NULL,
	on_hand        BIGINT NOT NULL DEFAULT 0,
	reserved       BIGINT NOT NULL DEFAULT 0,
	available      BIGINT NOT NULL DEFAULT 0,
	stock_version  BIGINT NOT NULL DEFAULT 0,
	created_at     BIGINT NOT NULL,
	updated_at     BIGINT NOT NULL
);
CREATE INDEX products_created ON products (created_at, id);
