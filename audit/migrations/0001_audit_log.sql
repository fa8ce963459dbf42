-- The audit trail: one immutable row per business event, appended in seq
-- order and chained by hash (see audit.go). seq is assigned from
-- chain_head under a row lock, not by an identity column, so it has no
-- gaps (a PostgreSQL sequence skips numbers on rollback) and a missing
-- row shows as a gap.
CREATE TABLE audit_log (
	seq            BIGINT PRIMARY KEY,
	event_id       TEXT NOT NULL UNIQUE,
	event_type     TEXT NOT NULL,
	topic          TEXT NOT NULL,
	record_key     TEXT NOT NULL,
	correlation_id TEXT NOT NULL,
	causation_id   TEXT NOT NULL,
	source         TEXT NOT NULL,
	occurred_at    BIGINT NOT NULL,
	recorded_at    BIGINT NOT NULL,
	envelope       TEXT NOT NULL,
	prev_hash      TEXT NOT NULL,
	hash           TEXT NOT NULL
);
CREATE INDEX audit_log_correlation ON audit_log (correlation_id, seq);
CREATE INDEX audit_log_type ON audit_log (event_type, seq);
CREATE INDEX audit_log_key ON audit_log (record_key, seq);
CREATE INDEX audit_log_occurred ON audit_log (occurred_at, seq);

-- The chain's last link: one row, locked by every append.
CREATE TABLE chain_head (
	id   BIGINT PRIMARY KEY,
	seq  BIGINT NOT NULL,
	hash TEXT NOT NULL
);
INSERT INTO chain_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
