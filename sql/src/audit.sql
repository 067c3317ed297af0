-- The audit trail: the log, its trigger, its immutability and its verification.

CREATE TABLE audit_log (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    chain         integer NOT NULL,
    seq           bigint NOT NULL,
    occurred_at   timestamptz NOT NULL,
    actor         text NOT NULL,
    actor_user_id bigint,
    db_user       text NOT NULL,
    db_role       text NOT NULL,
    request_id    text,
    action        text NOT NULL CHECK (action IN ('INSERT', 'UPDATE', 'DELETE')),
    table_name    text NOT NULL,
    row_key       text NOT NULL,
    customer_id   bigint,
    old_row       json,
    new_row       json,
    old_digest    bytea,
    new_digest    bytea,
    row_hash      bytea NOT NULL,
    erased_at     timestamptz,
    PRIMARY KEY (chain, seq)
);
COMMENT ON TABLE audit_log IS 'Every change to a business table: who, when, under which request, old and new row; append-only and hash-chained (see recovery.audit_verify()).';
COMMENT ON COLUMN audit_log.actor IS 'The application user from recovery.actor, else session_user.';
COMMENT ON COLUMN audit_log.db_role IS 'The PostgreSQL role in effect (SET ROLE) when the change was made.';
COMMENT ON COLUMN audit_log.chain IS 'Which of the independent hash chains the row is on; a transaction appends to one chain.';
COMMENT ON COLUMN audit_log.row_hash IS 'SHA-256 over the previous row''s row_hash on the chain, the fields and the digests of old_row and new_row.';
COMMENT ON COLUMN audit_log.old_digest IS 'Set by erasure: SHA-256 of old_row as it was, so that the chain still verifies.';
COMMENT ON COLUMN audit_log.new_digest IS 'Set by erasure: SHA-256 of new_row as it was.';
COMMENT ON COLUMN audit_log.old_row IS 'The row before a DELETE; for an UPDATE, the old values of the columns it changed.';
COMMENT ON COLUMN audit_log.new_row IS 'The row after an INSERT; for an UPDATE, the new values of the columns it changed (the INSERT and the UPDATEs before it give the rest).';
COMMENT ON COLUMN audit_log.erased_at IS 'Set when personal data was erased from old_row/new_row; the digests keep the chain verifiable.';
GRANT SELECT ON audit_log TO recovery_auditor;
SELECT pg_catalog.pg_extension_config_dump('audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('audit_log_id_seq', '');

CREATE FUNCTION audit_trigger() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'recovery_audit_trigger';
COMMENT ON FUNCTION audit_trigger() IS
    'AFTER row trigger writing the hash-chained audit trail; its arguments name columns left out of the trail.';

CREATE FUNCTION audit_log_immutable() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'recovery_audit_log_immutable';

-- No role, the owner included, changes or removes an audit row through SQL.
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_immutable();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_immutable();

CREATE FUNCTION audit_verify(OUT ok boolean, OUT rows_checked bigint,
                             OUT chains integer, OUT broken_rows bigint,
                             OUT first_broken_id bigint, OUT problem text)
    RETURNS record
    LANGUAGE c STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'recovery_audit_verify';
COMMENT ON FUNCTION audit_verify() IS
    'Walks every audit chain and reports whether it is intact, and the first damaged row (lowest id) with what is wrong with it.';
GRANT EXECUTE ON FUNCTION audit_verify() TO recovery_auditor;

CREATE VIEW audit_chain_heads AS
    SELECT DISTINCT ON (chain) chain, seq, id, row_hash, occurred_at
    FROM audit_log ORDER BY chain, seq DESC;
COMMENT ON VIEW audit_chain_heads IS
    'The last row of each audit chain: copy it somewhere else now and then, so that removing the newest rows can be noticed too.';
GRANT SELECT ON audit_chain_heads TO recovery_auditor;
