-- Where each recorded event sat on its topic, so replay can read the
-- archive where the topic's retention has deleted records. Rows recorded
-- before this migration have -1. Not covered by the hash: a locator, not
-- content (the envelope, key and topic are).
ALTER TABLE audit_log ADD COLUMN record_partition INTEGER NOT NULL DEFAULT -1;
ALTER TABLE audit_log ADD COLUMN record_offset BIGINT NOT NULL DEFAULT -1;
CREATE INDEX audit_log_location ON audit_log (topic, record_partition, record_offset);
