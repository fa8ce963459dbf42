-- orders_status indexed every order in every status, so each change of
-- status (two or three an order) wrote a new entry into it. The queries
-- by status look for the orders in flight alone — PENDING (the saga
-- timeout, admission control) and CONFIRMED (GET /admin/sagas) — a few
-- hundred rows however long the table: a partial index holds just those,
-- and a SHIPPED or CANCELLED version is written into it no more. The
-- queries name the predicate's own IN term (status IN ('PENDING',
-- 'CONFIRMED')) with literals, which both databases need to use a partial
-- index. An older release's `status = ?` queries still find PENDING orders
-- through it on PostgreSQL (a custom plan knows the value); an order list
-- filtered by another status walks orders_created, as it does without a
-- status filter.
DROP INDEX orders_status;
CREATE INDEX orders_in_flight ON orders (created_at) WHERE status IN ('PENDING', 'CONFIRMED');
