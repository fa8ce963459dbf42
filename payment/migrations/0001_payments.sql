-- The card vault of the simulated provider. A real deployment keeps card
-- numbers in the provider's vault and stores only its token; here the
-- number stays in this table and never leaves the payment service.
CREATE TABLE cards (
	token      TEXT PRIMARY KEY,
	user_id    TEXT NOT NULL,
	number     TEXT NOT NULL,
	last4      TEXT NOT NULL,
	brand      TEXT NOT NULL,
	created_at BIGINT NOT NULL
);

-- One row per order: the saga's state (has_order, reserved, cancelled)
-- and the payment it led to. A row exists from the first event about the
-- order, whichever arrives first.
CREATE TABLE payments (
	payment_id   TEXT PRIMARY KEY,
	order_id     TEXT NOT NULL UNIQUE,
	user_id      TEXT NOT NULL DEFAULT '',
	amount_cents BIGINT NOT NULL DEFAULT 0,
	currency     TEXT NOT NULL DEFAULT '',
	card_token   TEXT NOT NULL DEFAULT '',
	card_last4   TEXT NOT NULL DEFAULT '',
	status       TEXT NOT NULL,
	auth_code    TEXT NOT NULL DEFAULT '',
	failure_code TEXT NOT NULL DEFAULT '',
	reason       TEXT NOT NULL DEFAULT '',
	has_order    BIGINT NOT NULL DEFAULT 0,
	reserved     BIGINT NOT NULL DEFAULT 0,
	cancelled    BIGINT NOT NULL DEFAULT 0,
	created_at   BIGINT NOT NULL,
	updated_at   BIGINT NOT NULL
);
CREATE INDEX payments_user ON payments (user_id, created_at);
