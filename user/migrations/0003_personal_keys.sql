-- One AES-256-GCM key per user, sealing the personal fields of the user's
-- events (docs/security.md, "Erasure of personal data"). Erasure destroys
-- the key (key_hex NULL, destroyed_at set) and keeps the row, so that no
-- new key is ever made for an erased user. Accounts created before this
-- table get their key when an event of theirs is first sealed.
CREATE TABLE personal_keys (
	user_id      TEXT PRIMARY KEY,
	key_hex      TEXT,
	created_at   BIGINT NOT NULL,
	destroyed_at BIGINT
);
