-- stock: one row per product known from ProductCreated. Invariants kept by
-- the service: reserved >= 0 and on_hand - reserved >= 0. version grows by
-- one with every change of on_hand or reserved (it is the StockLevel
-- version consumers order levels by). discontinued is 0 or 1.
CREATE TABLE stock (
	product_id   TEXT PRIMARY KEY,
	on_hand      BIGINT NOT NULL DEFAULT 0,
	reserved     BIGINT NOT NULL DEFAULT 0,
	version      BIGINT NOT NULL DEFAULT 0,
	discontinued BIGINT NOT NULL DEFAULT 0,
	updated_at   BIGINT NOT NULL
);

-- reservations: one row per order the service has heard of, whatever the
-- outcome, so every order event is applied at most once and in a valid
-- order. status: reserved, released, failed, fulfilled, or cancelled (a
-- tombstone: the order was cancelled before it was created here). lines is
-- the JSON array of reserved lines, one per product.
CREATE TABLE reservations (
	order_id   TEXT PRIMARY KEY,
	status     TEXT NOT NULL,
	lines      TEXT NOT NULL,
	reason     TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);
