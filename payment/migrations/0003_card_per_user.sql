-- Vaulting a card its customer has vaulted before answers the card they
-- have (cards.go): one row per customer and card number, found by the
-- number's fingerprint. Releases before vaulted a new row per order, so a
-- database may hold several rows of one card: all stay (orders and ledgers
-- name their tokens); the first by token is the one vaulting answers
-- (duplicate = ''), the others are marked with their own token so that
-- the unique index holds. So are rows without a fingerprint (numbers in
-- clear from before the vault encrypted, fingerprinted at start after
-- this): they are never answered, and their fingerprint then cannot
-- collide. A concurrent vaulting of the same new card (two instances)
-- conflicts on the index and answers the winner's row.
ALTER TABLE cards ADD COLUMN duplicate TEXT NOT NULL DEFAULT '';
-- An index seek per row rather than a scan of the table per row.
CREATE INDEX cards_dedup ON cards (user_id, fingerprint, token);
UPDATE cards SET duplicate = token WHERE fingerprint = '' OR EXISTS (
	SELECT 1 FROM cards c WHERE c.user_id = cards.user_id AND c.fingerprint = cards.fingerprint AND c.token < cards.token);
DROP INDEX cards_dedup;
CREATE UNIQUE INDEX cards_user_fingerprint ON cards (user_id, fingerprint, duplicate);
