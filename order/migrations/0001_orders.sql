-- Orders. lines and shipping_address are JSON; booleans are 0/1.
-- correlation_id and created_event_id are the origin of the saga, kept so the
-- OrderCancelled of the timeout sweeper joins the saga like any other event.
CREATE TABLE orders (
	id               TEXT PRIMARY KEY,
	user_id          TEXT NOT NULL,
	status           TEXT NOT NULL,
	reason_code      TEXT NOT NULL DEFAULT '',
	reason           TEXT NOT NULL DEFAULT '',
	lines            TEXT NOT NULL,
	total_cents      BIGINT NOT NULL,
	currency         TEXT NOT NULL,
	customer_email   TEXT NOT NULL,
	customer_name    TEXT NOT NULL,
	shipping_address TEXT NOT NULL,
	card_last4       TEXT NOT NULL,
	from_cart        BIGINT NOT NULL DEFAULT 0,
	payment_id       TEXT NOT NULL DEFAULT '',
	shipment_id      TEXT NOT NULL DEFAULT '',
	tracking_number  TEXT NOT NULL DEFAULT '',
	notified         BIGINT NOT NULL DEFAULT 0,
	correlation_id   TEXT NOT NULL,
	created_event_id TEXT NOT NULL,
	created_at       BIGINT NOT NULL,
	updated_at       BIGINT NOT NULL
);
CREATE INDEX orders_user ON orders (user_id, created_at);
CREATE INDEX orders_status ON orders (status, created_at);
CREATE INDEX orders_created ON orders (created_at);

-- Idempotency-Key of POST /orders, per user: the primary key makes a
-- second order with the same key impossible, even between instances.
CREATE TABLE idempotency_keys (
	user_id    TEXT NOT NULL,
	idem_key   TEXT NOT NULL,
	order_id   TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (user_id, idem_key)
);

-- Projection of user-events: customer data and deactivated accounts.
CREATE TABLE users (
	user_id TEXT PRIMARY KEY,
	email   TEXT NOT NULL DEFAULT '',
	name    TEXT NOT NULL DEFAULT '',
	status  TEXT NOT NULL
);

-- Every event of the saga of an order, for GET /orders/{id}/events. ts is the
-- envelope timestamp in microseconds.
CREATE TABLE saga_events (
	event_id     TEXT PRIMARY KEY,
	order_id     TEXT NOT NULL,
	event_type   TEXT NOT NULL,
	ts           BIGINT NOT NULL,
	causation_id TEXT NOT NULL,
	envelope     TEXT NOT NULL
);
CREATE INDEX saga_events_order ON saga_events (order_id);
