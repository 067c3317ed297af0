-- Personal data encrypted at rest (pii_kek.c, pii_keys.c, pii_seal.c): a
-- data key per customer, wrapped by a key-encryption key (KEK) that
-- recovery.key_command prints and the database never stores.

CREATE TABLE customer_keys (
    customer_id   bigint PRIMARY KEY,
    version       integer NOT NULL DEFAULT 1 CHECK (version > 0),
    kek_id        text,
    wrapped       bytea CHECK (octet_length(wrapped) = 60),
    created_at    timestamptz NOT NULL DEFAULT now(),
    rewrapped_at  timestamptz,
    destroyed_at  timestamptz,
    CHECK ((wrapped IS NULL) = (destroyed_at IS NOT NULL)),
    CHECK ((wrapped IS NULL) = (kek_id IS NULL))
);
CREATE INDEX customer_keys_kek ON customer_keys (kek_id, customer_id) WHERE wrapped IS NOT NULL;
COMMENT ON TABLE customer_keys IS
    'Each customer''s data key (AES-256), wrapped by the KEK kek_id; made by the first personal value sealed for the customer, destroyed (wrapped NULL) by their erasure.';
COMMENT ON COLUMN customer_keys.wrapped IS 'Nonce, tag and the key, AES-256-GCM under the KEK; NULL once destroyed.';
SELECT pg_catalog.pg_extension_config_dump('customer_keys', '');

CREATE TABLE pii_keyring (
    purpose  text PRIMARY KEY CHECK (purpose IN ('blind-index')),
    kek_id   text NOT NULL,
    wrapped  bytea NOT NULL CHECK (octet_length(wrapped) = 60)
);
COMMENT ON TABLE pii_keyring IS
    'The keys that are no customer''s: the blind-index key (HMAC-SHA-256 of emails and phones, for equality lookups), wrapped by the KEK.';
SELECT pg_catalog.pg_extension_config_dump('pii_keyring', '');

-- Sealing and opening (pii_seal.c)
CREATE FUNCTION pii_seal() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'recovery_pii_seal';
COMMENT ON FUNCTION pii_seal() IS
    'BEFORE row trigger: seals the personal columns it names (bytea: "column" or "column:blind_index_column" for UTF-8 text, "bytes column" for a file) under the customer''s data key.';

CREATE FUNCTION pii_open(value bytea, table_name text, column_name text, row_id bigint,
                         customer_id bigint) RETURNS text
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED
    -- costly enough that a query decrypts after its sort and LIMIT, not before
    COST 100
    AS 'MODULE_PATHNAME', 'recovery_pii_open';
COMMENT ON FUNCTION pii_open(bytea, text, text, bigint, bigint) IS
    'The text of a personal value: decrypted if sealed (only in the table, column, row and customer it was written for), else as stored.';
GRANT EXECUTE ON FUNCTION pii_open(bytea, text, text, bigint, bigint) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION pii_open_bytes(value bytea, table_name text, column_name text, row_id bigint,
                               customer_id bigint) RETURNS bytea
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED COST 100
    AS 'MODULE_PATHNAME', 'recovery_pii_open_bytes';
COMMENT ON FUNCTION pii_open_bytes(bytea, text, text, bigint, bigint) IS
    'pii_open for a file''s bytes (documents.content): decrypted if sealed, else as stored.';
GRANT EXECUTE ON FUNCTION pii_open_bytes(bytea, text, text, bigint, bigint) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION pii_is_sealed(value bytea) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'recovery_pii_is_sealed';
COMMENT ON FUNCTION pii_is_sealed(bytea) IS 'Whether a stored personal value is sealed (else it is plain UTF-8 text).';
GRANT EXECUTE ON FUNCTION pii_is_sealed(bytea) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION pii_blind_index(kind text, value text) RETURNS bytea
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'recovery_pii_blind_index';
COMMENT ON FUNCTION pii_blind_index(text, text) IS
    'The blind index of an email or phone (kind): what customers.email_index and phone_index hold, for lookups by equality.';
GRANT EXECUTE ON FUNCTION pii_blind_index(text, text) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION pii_reseal(value bytea, table_name text, column_name text, row_id bigint,
                           customer_id bigint) RETURNS bytea
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'recovery_pii_reseal';
COMMENT ON FUNCTION pii_reseal(bytea, text, text, bigint, bigint) IS
    'A value sealed under the customer''s current key, plain or sealed before (superusers; encrypt_existing(), customer_rotate_key()).';

-- Keys (pii_keys.c)
CREATE FUNCTION pii_destroy_key(customer_id bigint) RETURNS void
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'recovery_pii_destroy_key';
COMMENT ON FUNCTION pii_destroy_key(bigint) IS
    'Destroys a customer''s data key (customer_erase): every value sealed for them, in old row versions, WAL, standbys and backups, can no longer be decrypted.';

CREATE FUNCTION pii_current_kek() RETURNS text
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'recovery_pii_current_kek';
COMMENT ON FUNCTION pii_current_kek() IS 'The id of the KEK that new and re-wrapped keys are wrapped with: the first line of recovery.key_command.';

CREATE FUNCTION rewrap_keys(batch integer) RETURNS bigint
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'recovery_rewrap_keys';
COMMENT ON FUNCTION rewrap_keys(integer) IS
    'Re-wraps up to batch keys under the current KEK; returns how many (recovery.rotate_kek() calls it).';

-- KEK rotation: a transaction a batch, so it goes on where it stopped
-- (no SET clause: a procedure that has one cannot COMMIT)
CREATE PROCEDURE rotate_kek(batch integer DEFAULT 1000)
    LANGUAGE plpgsql
    AS $$
DECLARE
    done bigint;
    total bigint := 0;
BEGIN
    RAISE NOTICE 'rotate_kek: re-wrapping every key under "%"', recovery.pii_current_kek();
    LOOP
        done := recovery.rewrap_keys(batch);
        EXIT WHEN done = 0;
        total := total + done;
        COMMIT;
        RAISE NOTICE 'rotate_kek: % keys re-wrapped, % to go', total,
            (SELECT count(*) FROM recovery.customer_keys k
              WHERE k.wrapped IS NOT NULL AND k.kek_id <> recovery.pii_current_kek());
    END LOOP;
    RAISE NOTICE 'rotate_kek: done, % keys re-wrapped; the old KEK may now be removed from recovery.key_command', total;
END
$$;
COMMENT ON PROCEDURE rotate_kek(integer) IS
    'Re-wraps every data key under the first KEK recovery.key_command prints (superusers), batch keys a transaction; resumable; progress in recovery.key_rotation_progress.';

CREATE VIEW key_rotation_progress AS
    SELECT k.kek_id, k.kek_id = recovery.pii_current_kek() AS current, count(*) AS keys
      FROM (SELECT kek_id FROM recovery.customer_keys WHERE wrapped IS NOT NULL
            UNION ALL SELECT kek_id FROM recovery.pii_keyring) k
     GROUP BY k.kek_id;
COMMENT ON VIEW key_rotation_progress IS
    'How many keys each KEK wraps; a rotation is done when only the current one is left.';
