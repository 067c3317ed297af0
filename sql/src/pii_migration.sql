-- Rows written before personal data was encrypted (0.11 and earlier) are
-- kept as plain text by the upgrade and read as they are; this seals them.

-- a customer whose key is destroyed takes no sealed value again
CREATE FUNCTION pii_key_destroyed(customer_id bigint) RETURNS boolean
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT EXISTS (SELECT 1 FROM recovery.customer_keys k
                    WHERE k.customer_id = pii_key_destroyed.customer_id AND k.wrapped IS NULL)
$$;

CREATE PROCEDURE encrypt_existing(batch integer DEFAULT 1000)
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    customers bigint;
    notes bigint;
    total bigint := 0;
BEGIN
    LOOP
        -- Only the storage changes: no audit row, no live event, no trigger.
        PERFORM set_config('session_replication_role', 'replica', true);
        WITH todo AS (
            SELECT c.id FROM recovery.customers c
             WHERE c.erased_at IS NULL AND NOT recovery.pii_key_destroyed(c.id)
               AND (NOT recovery.pii_is_sealed(c.name)
                    OR coalesce(NOT recovery.pii_is_sealed(c.email), false)
                    OR coalesce(NOT recovery.pii_is_sealed(c.phone), false))
             ORDER BY c.id LIMIT batch FOR UPDATE SKIP LOCKED)
        UPDATE recovery.customers c
           SET name = recovery.pii_seal_value(c.name, 'customers', 'name', c.id, c.id),
               email = recovery.pii_seal_value(c.email, 'customers', 'email', c.id, c.id),
               phone = recovery.pii_seal_value(c.phone, 'customers', 'phone', c.id, c.id),
               email_index = recovery.pii_blind_index('email', recovery.pii_open(c.email, 'customers', 'email', c.id, c.id)),
               phone_index = recovery.pii_blind_index('phone', recovery.pii_open(c.phone, 'customers', 'phone', c.id, c.id))
          FROM todo WHERE c.id = todo.id;
        GET DIAGNOSTICS customers = ROW_COUNT;
        WITH todo AS (
            SELECT n.id FROM recovery.case_notes n
              JOIN recovery.customers c ON c.id = n.customer_id AND c.erased_at IS NULL
             WHERE NOT recovery.pii_key_destroyed(c.id) AND NOT recovery.pii_is_sealed(n.body)
             ORDER BY n.id LIMIT batch FOR UPDATE OF n SKIP LOCKED)
        UPDATE recovery.case_notes n
           SET body = recovery.pii_seal_value(n.body, 'case_notes', 'body', n.id, n.customer_id)
          FROM todo WHERE n.id = todo.id;
        GET DIAGNOSTICS notes = ROW_COUNT;
        PERFORM set_config('session_replication_role', 'origin', true);
        EXIT WHEN customers + notes = 0;
        total := total + customers + notes;
        COMMIT;
        RAISE NOTICE 'encrypt_existing: % rows sealed; % to go', total,
            (SELECT sum(p.plain_rows) FROM recovery.encryption_progress p);
    END LOOP;
    RAISE NOTICE 'encrypt_existing: done, % rows sealed', total;
END
$$;
COMMENT ON PROCEDURE encrypt_existing(integer) IS
    'Seals the personal data written before encryption (superusers), batch rows of each table a transaction; resumable; progress in recovery.encryption_progress.';

CREATE VIEW encryption_progress AS
    SELECT 'customers' AS table_name,
           count(*) FILTER (WHERE recovery.pii_is_sealed(c.name)) AS sealed_rows,
           count(*) FILTER (WHERE NOT recovery.pii_is_sealed(c.name) AND c.erased_at IS NULL) AS plain_rows,
           count(*) FILTER (WHERE c.erased_at IS NOT NULL) AS erased_rows
      FROM recovery.customers c
    UNION ALL
    SELECT 'case_notes',
           count(*) FILTER (WHERE recovery.pii_is_sealed(n.body)),
           count(*) FILTER (WHERE NOT recovery.pii_is_sealed(n.body) AND c.erased_at IS NULL),
           count(*) FILTER (WHERE c.erased_at IS NOT NULL)
      FROM recovery.case_notes n JOIN recovery.customers c ON c.id = n.customer_id;
COMMENT ON VIEW encryption_progress IS
    'Rows of each table with personal data: sealed, still plain (recovery.encrypt_existing() seals them), and erased (their placeholders stay plain).';
