-- shipments_status indexed every shipment in every status, so each change
-- of status (waiting, created, dispatched, delivered) wrote a new entry
-- into it. Its only query, the carrier's due shipments, looks for the
-- created and dispatched ones alone, those the carrier may still move: a
-- partial index holds just those, and a waiting, delivered or cancelled
-- version writes no entry. Its key is status, a column the predicate
-- names anyway: indexing a column a change touches (updated_at) would
-- make the updates that are HOT now (status unchanged) write into every
-- index. The query names the predicate with literals, which SQLite needs
-- to use a partial index and PostgreSQL for a generic plan; an older
-- release's due query (status = ? … OR status = ? …) finds them through
-- it on PostgreSQL with a custom plan, on SQLite by a scan.
DROP INDEX shipments_status;
CREATE INDEX shipments_moving ON shipments (status) WHERE status IN ('created', 'dispatched');
