-- The card vault encrypts numbers (vault.go): number holds
-- "enc1:<key id>:<sealed>" (clear numbers of older releases are sealed at
-- start); fingerprint identifies a number without revealing it.
ALTER TABLE cards ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
