-- Failed logins per account (key "account:" + SHA-256 of the typed email)
-- and per client address ("address:" + address), shared by every instance
-- of the user service (see throttle.go).
CREATE TABLE login_throttle (
	throttle_key  TEXT PRIMARY KEY,
	failures      BIGINT NOT NULL,
	last_at       BIGINT NOT NULL,
	blocked_until BIGINT NOT NULL,
	reported      BIGINT NOT NULL
);
CREATE INDEX login_throttle_last ON login_throttle (last_at);
