-- The SHA-256 of the request body an Idempotency-Key was first used with:
-- the key reused with another body is refused (422). '' for keys stored
-- before this column.
ALTER TABLE idempotency_keys ADD COLUMN request_sha256 TEXT NOT NULL DEFAULT '';
