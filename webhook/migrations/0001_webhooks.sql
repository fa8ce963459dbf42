-- endpoints: where admins asked events to be delivered. event_types is a
-- comma-separated list ('' for every type); secret signs deliveries and,
-- until prev_secret_until (Unix ms), prev_secret signs them too (rotation).
-- failing_since is when the current run of failed attempts began (0: the
-- last attempt succeeded).
CREATE TABLE endpoints (
	id                TEXT PRIMARY KEY,
	url               TEXT NOT NULL,
	description       TEXT NOT NULL,
	event_types       TEXT NOT NULL,
	enabled           BIGINT NOT NULL,
	disabled_reason   TEXT NOT NULL,
	ordered           BIGINT NOT NULL,
	secret            TEXT NOT NULL,
	prev_secret       TEXT NOT NULL,
	prev_secret_until BIGINT NOT NULL,
	failing_since     BIGINT NOT NULL,
	created_at        BIGINT NOT NULL,
	updated_at        BIGINT NOT NULL
);

-- events: the body of every event some endpoint was to receive, once,
-- however many endpoints receive it.
CREATE TABLE events (
	event_id    TEXT PRIMARY KEY,
	event_type  TEXT NOT NULL,
	occurred_at BIGINT NOT NULL,
	body        TEXT NOT NULL
);

-- deliveries: the per-endpoint queues. id is the webhook-id, one per
-- event and endpoint; seq orders an endpoint's queue.
CREATE TABLE deliveries (
	seq             {{ID}},
	id              TEXT NOT NULL UNIQUE,
	endpoint_id     TEXT NOT NULL,
	event_id        TEXT NOT NULL,
	event_type      TEXT NOT NULL,
	status          TEXT NOT NULL,
	attempts        BIGINT NOT NULL,
	next_attempt_at BIGINT NOT NULL,
	last_status     BIGINT NOT NULL,
	last_error      TEXT NOT NULL,
	created_at      BIGINT NOT NULL,
	updated_at      BIGINT NOT NULL,
	-- requeues counts replays and re-sends: an attempt in flight when one
	-- happens must not overwrite the delivery's new pending state.
	requeues        BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX deliveries_due ON deliveries (endpoint_id, status, next_attempt_at);
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, status, seq);
CREATE INDEX deliveries_event ON deliveries (event_id);

-- attempts: every attempt of every delivery, with the first bytes of the
-- response.
CREATE TABLE attempts (
	seq          {{ID}},
	delivery_id  TEXT NOT NULL,
	endpoint_id  TEXT NOT NULL,
	attempted_at BIGINT NOT NULL,
	status_code  BIGINT NOT NULL,
	latency_ms   BIGINT NOT NULL,
	response     TEXT NOT NULL,
	error        TEXT NOT NULL
);
CREATE INDEX attempts_delivery ON attempts (delivery_id, seq);
