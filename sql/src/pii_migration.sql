-- Rows written before personal data was encrypted (0.11 and earlier) are
-- kept as plain text by the upgrade and read as they are; this seals them.

-- a customer whose key is destroyed takes no sealed value again
CREATE FUNCTION pii_key_destroyed(customer_id bigint) RETURNS boolean
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT EXISTS (SELECT 1 FROM recovery.customer_keys k
                    WHERE k.customer_id = pii_key_destroyed.customer_id AND k.wrapped IS NULL)
$$;

-- which audited fields the tables seal
CREATE FUNCTION sealed_columns(table_name text) RETURNS text[]
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE table_name WHEN 'customers' THEN ARRAY['name', 'email', 'phone']
                           WHEN 'case_notes' THEN ARRAY['body']
                           WHEN 'documents' THEN ARRAY['filename']
                           WHEN 'case_events' THEN ARRAY['reason', 'personal_details']
                           WHEN 'dunning_holds' THEN ARRAY['reason']
                           WHEN 'extraction_lines' THEN ARRAY['payer', 'iban'] END
$$;

-- whose key sealed an audited row's values: the row's own customer (a
-- statement line's may be none, then the shared key's, or change), else
-- the audit row's
CREATE FUNCTION audit_row_customer(audited json, table_name text, row_key text, customer_id bigint)
    RETURNS bigint
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE WHEN table_name = 'customers' THEN row_key::bigint
                WHEN json_typeof(audited) = 'object' AND audited::jsonb ? 'customer_id'
                THEN coalesce((audited ->> 'customer_id')::bigint, 0)
                ELSE customer_id END
$$;
GRANT EXECUTE ON FUNCTION audit_row_customer(json, text, text, bigint) TO recovery_auditor;

-- an audited event of 0.12 or earlier: its personal details moved to
-- personal_details, as case_event_personal() moves them now
CREATE FUNCTION audit_row_split(audited json, table_name text) RETURNS json
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE WHEN table_name = 'case_events' AND json_typeof(audited) = 'object'
                     AND recovery.event_details_personal(audited::jsonb -> 'details') IS NOT NULL
                THEN (audited::jsonb
                      || jsonb_build_object('details', recovery.event_details_clear(audited::jsonb -> 'details'),
                                            'personal_details',
                                            recovery.event_details_personal(audited::jsonb -> 'details')::text))::json
                ELSE audited END
$$;

-- whether an audited row holds a personal field in plain text
CREATE FUNCTION audit_row_plain(audited json, table_name text) RETURNS boolean
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT coalesce(json_typeof(audited) = 'object' AND (EXISTS (
               SELECT 1 FROM json_each(audited) f
                WHERE f.key = ANY (recovery.sealed_columns(table_name))
                  AND json_typeof(f.value) = 'string' AND left(f.value #>> '{}', 6) <> '\xff01')
               OR recovery.audit_row_split(audited, table_name)::text <> audited::text), false)
$$;

-- an audited row with its personal fields sealed as the table seals them,
-- under the customer's current key (plain ones, and sealed ones again)
CREATE FUNCTION audit_row_sealed(audited json, table_name text, row_key text, customer_id bigint)
    RETURNS json
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp SET bytea_output = hex
    AS $$
    SELECT CASE WHEN audited IS NULL OR json_typeof(audited) <> 'object' THEN audited
           ELSE (SELECT json_object_agg(f.key,
                            CASE WHEN f.key = ANY (recovery.sealed_columns(table_name))
                                      AND json_typeof(f.value) = 'string'
                                 THEN to_json(recovery.pii_reseal(
                                          CASE WHEN left(f.value #>> '{}', 6) = '\xff01'
                                               THEN decode(substr(f.value #>> '{}', 3), 'hex')
                                               ELSE convert_to(f.value #>> '{}', 'UTF8') END,
                                          table_name, f.key, row_key::bigint,
                                          recovery.audit_row_customer(audited, table_name, row_key,
                                                                      customer_id))::text)
                                 ELSE f.value END)
                   FROM json_each(recovery.audit_row_split(audited, table_name)) f)
           END
$$;

-- (no SET clause: a procedure that has one cannot COMMIT)
CREATE PROCEDURE encrypt_existing(batch integer DEFAULT 1000)
    LANGUAGE plpgsql
    AS $$
DECLARE
    customers bigint;
    notes bigint;
    documents bigint;
    events bigint;
    holds bigint;
    extractions bigint;
    lines bigint;
    line_from bigint := 0;
    line_last bigint;
    audit_rows bigint;
    total bigint := 0;
    last_chain integer := -1;
    last_seq bigint := -1;
    span_chain integer;
    span_seq bigint;
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
           SET name = recovery.pii_reseal(c.name, 'customers', 'name', c.id, c.id),
               email = recovery.pii_reseal(c.email, 'customers', 'email', c.id, c.id),
               phone = recovery.pii_reseal(c.phone, 'customers', 'phone', c.id, c.id),
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
           SET body = recovery.pii_reseal(n.body, 'case_notes', 'body', n.id, n.customer_id)
          FROM todo WHERE n.id = todo.id;
        GET DIAGNOSTICS notes = ROW_COUNT;
        -- files are large: a tenth of the batch (at least one) a transaction
        WITH todo AS (
            SELECT d.id FROM recovery.documents d
              JOIN recovery.customers c ON c.id = d.customer_id AND c.erased_at IS NULL
             WHERE NOT recovery.pii_key_destroyed(c.id)
               AND (NOT recovery.pii_is_sealed(d.filename)
                    OR coalesce(NOT recovery.pii_is_sealed(d.content), false))
             ORDER BY d.id LIMIT greatest(batch / 10, 1) FOR UPDATE OF d SKIP LOCKED)
        UPDATE recovery.documents d
           SET filename = recovery.pii_reseal(d.filename, 'documents', 'filename', d.id, d.customer_id),
               content = recovery.pii_reseal(d.content, 'documents', 'content', d.id, d.customer_id)
          FROM todo WHERE d.id = todo.id;
        GET DIAGNOSTICS documents = ROW_COUNT;
        -- an event of 0.12 or earlier has its personal details among the others
        WITH todo AS (
            SELECT e.id FROM recovery.case_events e
              JOIN recovery.customers c ON c.id = e.customer_id AND c.erased_at IS NULL
             WHERE NOT recovery.pii_key_destroyed(c.id)
               AND (coalesce(NOT recovery.pii_is_sealed(e.reason), false)
                    OR coalesce(NOT recovery.pii_is_sealed(e.personal_details), false)
                    OR recovery.event_details_personal(e.details) IS NOT NULL)
             ORDER BY e.id LIMIT batch FOR UPDATE OF e SKIP LOCKED)
        UPDATE recovery.case_events e
           SET reason = recovery.pii_reseal(e.reason, 'case_events', 'reason', e.id, e.customer_id),
               personal_details = recovery.pii_reseal(
                   coalesce(e.personal_details,
                            convert_to(recovery.event_details_personal(e.details)::text, 'UTF8')),
                   'case_events', 'personal_details', e.id, e.customer_id),
               details = recovery.event_details_clear(e.details)
          FROM todo WHERE e.id = todo.id;
        GET DIAGNOSTICS events = ROW_COUNT;
        WITH todo AS (
            SELECT h.id FROM recovery.dunning_holds h
              JOIN recovery.customers c ON c.id = h.customer_id AND c.erased_at IS NULL
             WHERE NOT recovery.pii_key_destroyed(c.id) AND NOT recovery.pii_is_sealed(h.reason)
             ORDER BY h.id LIMIT batch FOR UPDATE OF h SKIP LOCKED)
        UPDATE recovery.dunning_holds h
           SET reason = recovery.pii_reseal(h.reason, 'dunning_holds', 'reason', h.id, h.customer_id)
          FROM todo WHERE h.id = todo.id;
        GET DIAGNOSTICS holds = ROW_COUNT;
        WITH todo AS (
            SELECT x.id FROM recovery.extractions x
             WHERE NOT recovery.pii_is_sealed(x.result)
               AND NOT recovery.pii_key_destroyed(coalesce(x.customer_id, 0))
             ORDER BY x.id LIMIT greatest(batch / 10, 1) FOR UPDATE OF x SKIP LOCKED)
        UPDATE recovery.extractions x
           SET result = recovery.pii_reseal(x.result, 'extractions', 'result', x.id, coalesce(x.customer_id, 0))
          FROM todo WHERE x.id = todo.id;
        GET DIAGNOSTICS extractions = ROW_COUNT;
        PERFORM set_config('session_replication_role', 'origin', true);
        EXIT WHEN customers + notes + documents + events + holds + extractions = 0;
        total := total + customers + notes + documents + events + holds + extractions;
        COMMIT;
        RAISE NOTICE 'encrypt_existing: % rows sealed', total;
    END LOOP;
    -- statement lines, along their ids (a BRIN index: ranges, not a sort)
    SELECT max(l.id) INTO line_last FROM recovery.extraction_lines l;
    WHILE line_from < coalesce(line_last, 0) LOOP
        PERFORM set_config('session_replication_role', 'replica', true);
        UPDATE recovery.extraction_lines l
           SET payer = recovery.pii_reseal(l.payer, 'extraction_lines', 'payer', l.id, coalesce(l.customer_id, 0)),
               iban = recovery.pii_reseal(l.iban, 'extraction_lines', 'iban', l.id, coalesce(l.customer_id, 0)),
               iban_index = recovery.pii_blind_index('iban', recovery.pii_open(l.iban, 'extraction_lines', 'iban',
                                                                               l.id, coalesce(l.customer_id, 0)))
         WHERE l.id > line_from AND l.id <= line_from + batch
           AND (coalesce(NOT recovery.pii_is_sealed(l.payer), false)
                OR coalesce(NOT recovery.pii_is_sealed(l.iban), false))
           AND NOT recovery.pii_key_destroyed(coalesce(l.customer_id, 0));
        GET DIAGNOSTICS lines = ROW_COUNT;
        PERFORM set_config('session_replication_role', 'origin', true);
        total := total + lines;
        line_from := line_from + batch;
        COMMIT;
        IF lines > 0 THEN
            RAISE NOTICE 'encrypt_existing: % rows sealed; statement lines up to id %', total, line_from;
        END IF;
    END LOOP;
    -- then the audit trail, along its primary key; a row keeps the digests
    -- of what it held, so that the chain still verifies (audit_verify())
    LOOP
        SELECT a.chain, a.seq INTO span_chain, span_seq FROM recovery.audit_log a
         WHERE (a.chain, a.seq) > (last_chain, last_seq)
         ORDER BY a.chain, a.seq OFFSET batch - 1 LIMIT 1;
        PERFORM set_config('session_replication_role', 'replica', true);
        UPDATE recovery.audit_log a
           SET old_digest = sha256(convert_to(a.old_row::text, 'UTF8')),
               new_digest = sha256(convert_to(a.new_row::text, 'UTF8')),
               old_row = recovery.audit_row_sealed(a.old_row, a.table_name, a.row_key, a.customer_id),
               new_row = recovery.audit_row_sealed(a.new_row, a.table_name, a.row_key, a.customer_id)
         WHERE (a.chain, a.seq) > (last_chain, last_seq)
           AND (span_chain IS NULL OR (a.chain, a.seq) <= (span_chain, span_seq))
           AND a.table_name IN ('customers', 'case_notes', 'documents', 'case_events', 'dunning_holds',
                                'extraction_lines')
           AND a.erased_at IS NULL
           AND a.old_digest IS NULL AND a.new_digest IS NULL
           AND NOT recovery.pii_key_destroyed(coalesce(a.customer_id, 0))
           AND (recovery.audit_row_plain(a.old_row, a.table_name)
                OR recovery.audit_row_plain(a.new_row, a.table_name));
        GET DIAGNOSTICS audit_rows = ROW_COUNT;
        PERFORM set_config('session_replication_role', 'origin', true);
        total := total + audit_rows;
        COMMIT;
        EXIT WHEN span_chain IS NULL;
        last_chain := span_chain;
        last_seq := span_seq;
        IF audit_rows > 0 THEN
            RAISE NOTICE 'encrypt_existing: % rows sealed; the audit trail is read up to chain %, seq %',
                total, last_chain, last_seq;
        END IF;
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
      FROM recovery.case_notes n JOIN recovery.customers c ON c.id = n.customer_id
    UNION ALL
    SELECT 'documents',
           count(*) FILTER (WHERE recovery.pii_is_sealed(d.filename)),
           count(*) FILTER (WHERE NOT recovery.pii_is_sealed(d.filename) AND c.erased_at IS NULL),
           count(*) FILTER (WHERE c.erased_at IS NOT NULL)
      FROM recovery.documents d JOIN recovery.customers c ON c.id = d.customer_id
    UNION ALL
    SELECT 'case_events',
           count(*) FILTER (WHERE recovery.pii_is_sealed(e.reason) OR recovery.pii_is_sealed(e.personal_details)),
           count(*) FILTER (WHERE c.erased_at IS NULL
                              AND (coalesce(NOT recovery.pii_is_sealed(e.reason), false)
                                   OR coalesce(NOT recovery.pii_is_sealed(e.personal_details), false)
                                   OR recovery.event_details_personal(e.details) IS NOT NULL)),
           count(*) FILTER (WHERE c.erased_at IS NOT NULL)
      FROM recovery.case_events e JOIN recovery.customers c ON c.id = e.customer_id
     WHERE e.reason IS NOT NULL OR e.personal_details IS NOT NULL
        OR recovery.event_details_personal(e.details) IS NOT NULL
    UNION ALL
    SELECT 'dunning_holds',
           count(*) FILTER (WHERE recovery.pii_is_sealed(h.reason)),
           count(*) FILTER (WHERE NOT recovery.pii_is_sealed(h.reason) AND c.erased_at IS NULL),
           count(*) FILTER (WHERE c.erased_at IS NOT NULL)
      FROM recovery.dunning_holds h JOIN recovery.customers c ON c.id = h.customer_id
    UNION ALL
    SELECT 'extractions',
           count(*) FILTER (WHERE recovery.pii_is_sealed(x.result)),
           count(*) FILTER (WHERE NOT recovery.pii_is_sealed(x.result) AND c.erased_at IS NULL),
           count(*) FILTER (WHERE c.erased_at IS NOT NULL)
      FROM recovery.extractions x LEFT JOIN recovery.customers c ON c.id = x.customer_id
     WHERE x.result IS NOT NULL
    UNION ALL
    SELECT 'extraction_lines',
           count(*) FILTER (WHERE recovery.pii_is_sealed(l.payer) OR recovery.pii_is_sealed(l.iban)),
           count(*) FILTER (WHERE c.erased_at IS NULL
                              AND (coalesce(NOT recovery.pii_is_sealed(l.payer), false)
                                   OR coalesce(NOT recovery.pii_is_sealed(l.iban), false))),
           count(*) FILTER (WHERE c.erased_at IS NOT NULL)
      FROM recovery.extraction_lines l LEFT JOIN recovery.customers c ON c.id = l.customer_id
     WHERE l.payer IS NOT NULL OR l.iban IS NOT NULL
    UNION ALL
    SELECT 'audit_log',
           count(*) FILTER (WHERE a.erased_at IS NULL
                              AND NOT recovery.audit_row_plain(a.old_row, a.table_name)
                              AND NOT recovery.audit_row_plain(a.new_row, a.table_name)),
           count(*) FILTER (WHERE a.erased_at IS NULL
                              AND (recovery.audit_row_plain(a.old_row, a.table_name)
                                   OR recovery.audit_row_plain(a.new_row, a.table_name))),
           count(*) FILTER (WHERE a.erased_at IS NOT NULL)
      FROM recovery.audit_log a
     WHERE a.table_name IN ('customers', 'case_notes', 'documents', 'case_events', 'dunning_holds',
                            'extraction_lines');
COMMENT ON VIEW encryption_progress IS
    'Rows of each table with personal data, and of the audit trail''s rows of them: sealed, still plain (recovery.encrypt_existing() seals them), and erased (their placeholders stay plain).';
