-- carts: one cart per customer, made with its first item and kept when
-- emptied. updated_at is the last change of its contents; abandoned_at is
-- when the current idle period was reported (CartAbandoned), 0 if not yet:
-- every change resets it, so a cart is reported once per idle period.
CREATE TABLE carts (
	user_id      TEXT PRIMARY KEY,
	cart_id      TEXT NOT NULL UNIQUE,
	created_at   BIGINT NOT NULL,
	updated_at   BIGINT NOT NULL,
	abandoned_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX carts_idle ON carts (abandoned_at, updated_at);

CREATE TABLE cart_items (
	user_id    TEXT NOT NULL,
	product_id TEXT NOT NULL,
	quantity   BIGINT NOT NULL,
	added_at   BIGINT NOT NULL,
	PRIMARY KEY (user_id, product_id)
);
CREATE INDEX cart_items_product ON cart_items (product_id);

-- deactivated_users: accounts that may no longer fill a cart (UserDeactivated).
CREATE TABLE deactivated_users (
	user_id        TEXT PRIMARY KEY,
	deactivated_at BIGINT NOT NULL
);
