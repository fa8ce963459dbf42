-- The stream engine's state (internal/stream): one row per entry, keyed
-- by (operator, key, win). Operator '' holds each source partition's
-- stream time and last offset processed, so the state and the offsets it
-- was computed from are written in one transaction.
CREATE TABLE analytics_state (
	operator TEXT NOT NULL,
	key      TEXT NOT NULL,
	win      TEXT NOT NULL,
	value    {{BLOB}} NOT NULL,
	PRIMARY KEY (operator, key, win)
);

-- Closed windows' figures (analytics.Counters as JSON), per size
-- ('minute', 'hour') and start (Unix milliseconds).
CREATE TABLE analytics_windows (
	size     TEXT NOT NULL,
	start_ms BIGINT NOT NULL,
	end_ms   BIGINT NOT NULL,
	counters TEXT NOT NULL,
	PRIMARY KEY (size, start_ms)
);

-- Pattern detections (cep.Detection), in the order the engine made them.
CREATE TABLE analytics_detections (
	seq        {{ID}},
	event_id   TEXT NOT NULL UNIQUE,
	rule       TEXT NOT NULL,
	type       TEXT NOT NULL,
	match_key  TEXT NOT NULL,
	at_ms      BIGINT NOT NULL,
	dry_run    BIGINT NOT NULL,
	evidence   TEXT NOT NULL,
	holders    BIGINT NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE INDEX analytics_detections_rule ON analytics_detections (rule, seq);

-- The rule document set with PUT /api/v1/analytics/rules (one row, id 1);
-- version grows with each change, so the instance running the engine sees it.
CREATE TABLE analytics_rules (
	id         BIGINT PRIMARY KEY,
	version    BIGINT NOT NULL,
	document   TEXT NOT NULL,
	updated_at BIGINT NOT NULL
);
