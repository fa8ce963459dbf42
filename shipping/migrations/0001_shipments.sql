-- One row per order: the saga's state (has_order, paid, cancelled,
-- shipped_order) and the shipment it led to. A row exists from the first
-- event about the order, whichever arrives first.
CREATE TABLE shipments (
	order_id        TEXT PRIMARY KEY,
	shipment_id     TEXT NOT NULL UNIQUE,
	user_id         TEXT NOT NULL DEFAULT '',
	address         TEXT NOT NULL DEFAULT '{}',
	has_order       BIGINT NOT NULL DEFAULT 0,
	paid            BIGINT NOT NULL DEFAULT 0,
	cancelled       BIGINT NOT NULL DEFAULT 0,
	shipped_order   BIGINT NOT NULL DEFAULT 0,
	status          TEXT NOT NULL,
	carrier         TEXT NOT NULL DEFAULT '',
	tracking_number TEXT NOT NULL DEFAULT '',
	-- The saga's correlation id and the id of the last event emitted for
	-- this shipment (ShippingCreated, then ShippingDispatched): the
	-- simulated carrier's events carry them as correlation and causation.
	correlation_id  TEXT NOT NULL DEFAULT '',
	last_event_id   TEXT NOT NULL DEFAULT '',
	created_at      BIGINT NOT NULL,
	updated_at      BIGINT NOT NULL,
	shipped_at      BIGINT,
	dispatched_at   BIGINT,
	delivered_at    BIGINT
);
CREATE INDEX shipments_user ON shipments (user_id, created_at);
CREATE INDEX shipments_status ON shipments (status);
