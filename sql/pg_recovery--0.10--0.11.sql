-- pg_recovery 0.10 -> 0.11: a lighter audit trail.  An UPDATE's audit row
-- keeps the old and the new values of the columns it changed, no longer the
-- whole new row (the INSERT and the UPDATEs before it give the rest): the
-- trail was a large part of every write's WAL.  Rows written before keep
-- their whole new row; the chain covers both alike.
\echo Use "ALTER EXTENSION pg_recovery UPDATE TO '0.11'" to load this file. \quit

COMMENT ON COLUMN audit_log.old_row IS 'The row before a DELETE; for an UPDATE, the old values of the columns it changed.';
COMMENT ON COLUMN audit_log.new_row IS 'The row after an INSERT; for an UPDATE, the new values of the columns it changed (the INSERT and the UPDATEs before it give the rest).';
