-- How far the archive on audit-events has got: the records up to
-- archived_seq are in the outbox or published, archived_hash being the
-- hash of record archived_seq (the prevHash of the next archive record).
-- Until now every block was archived in the transaction that appended it,
-- so the archive is as far as the chain.
ALTER TABLE chain_head ADD COLUMN archived_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE chain_head ADD COLUMN archived_hash TEXT NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000';
UPDATE chain_head SET archived_seq = seq, archived_hash = hash;
