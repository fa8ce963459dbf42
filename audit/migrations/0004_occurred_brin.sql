-- occurred_at (the envelope's time) grows with seq, the order rows are
-- appended in, so on PostgreSQL a BRIN index (min and max per range of
-- pages, a few kilobytes) finds a time range as the B-tree did, without
-- an entry written per row: nine per order, under the chain head's lock.
-- The B-tree on (occurred_at, seq) gave no seq order within a range
-- either (a range query sorts by seq both ways). On SQLite, which has no
-- BRIN, a B-tree on occurred_at replaces it. An older release reads and
-- writes the table as before (it names no index).
DROP INDEX audit_log_occurred;
CREATE INDEX audit_log_occurred_at ON audit_log {{BRIN}} (occurred_at);
