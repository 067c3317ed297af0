-- GDPR erasure of a customer's personal data, the audit trail included.

-- the fields of audited rows that hold personal data, at any depth
CREATE FUNCTION erase_personal(data jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    personal CONSTANT text[] := ARRAY['name', 'email', 'phone', 'body', 'reason',
                                      'contact_preferences', 'display_name', 'filename',
                                      'personal_details'];
    erased jsonb;
BEGIN
    CASE jsonb_typeof(data)
    WHEN 'object' THEN
        SELECT coalesce(jsonb_object_agg(key,
                   CASE WHEN key = ANY (personal) AND value <> 'null'::jsonb
                        THEN to_jsonb('[erased]'::text)
                        ELSE recovery.erase_personal(value) END), '{}')
          INTO erased FROM jsonb_each(data);
        RETURN erased;
    WHEN 'array' THEN
        SELECT coalesce(jsonb_agg(recovery.erase_personal(value) ORDER BY n), '[]')
          INTO erased FROM jsonb_array_elements(data) WITH ORDINALITY AS e(value, n);
        RETURN erased;
    ELSE
        RETURN data;
    END CASE;
END
$$;
COMMENT ON FUNCTION erase_personal(jsonb) IS
    'A row (or event details) with its personal fields, at any depth (name, email, phone, notes, reasons, contact preferences), replaced by "[erased]".';

CREATE FUNCTION customer_erase(customer_id bigint) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    target recovery.customers;
    notes bigint;
    events bigint;
    documents bigint;
    audit_rows bigint;
BEGIN
    IF NOT recovery.caller_has_role('recovery_admin') THEN
        RAISE EXCEPTION 'permission denied to erase customers' USING ERRCODE = '42501',
            HINT = 'Erasure is for administrators.';
    END IF;
    SELECT * INTO target FROM recovery.customers c WHERE c.id = customer_erase.customer_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'customer % does not exist', customer_id USING ERRCODE = 'PR003';
    END IF;

    -- First the key: from here on every value sealed for the customer, in
    -- old row versions, the WAL, standbys and backups, is unreadable, and
    -- the rows below take only the erasure's own words.
    PERFORM recovery.pii_destroy_key(customer_id);

    -- the business rows, audited as any change
    UPDATE recovery.customers c
       SET name = convert_to('erased customer ' || c.id, 'UTF8'), email = NULL, phone = NULL,
           contact_preferences = '{"email": false, "sms": false, "letter": false}',
           erased_at = coalesce(c.erased_at, now()), updated_at = now(), version = c.version + 1
     WHERE c.id = customer_erase.customer_id;
    UPDATE recovery.case_notes n SET body = convert_to('[erased]', 'UTF8')
     WHERE n.customer_id = customer_erase.customer_id AND n.body <> convert_to('[erased]', 'UTF8');
    GET DIAGNOSTICS notes = ROW_COUNT;
    UPDATE recovery.case_events e
       SET reason = CASE WHEN e.reason IS NOT NULL THEN convert_to('[erased]', 'UTF8') END,
           personal_details = NULL
     WHERE e.customer_id = customer_erase.customer_id
       AND (e.reason <> convert_to('[erased]', 'UTF8') OR e.personal_details IS NOT NULL);
    GET DIAGNOSTICS events = ROW_COUNT;
    UPDATE recovery.documents d
       SET content = NULL, filename = convert_to('erased', 'UTF8'), erased_at = now()
     WHERE d.customer_id = customer_erase.customer_id AND d.erased_at IS NULL;
    GET DIAGNOSTICS documents = ROW_COUNT;

    -- then the trail, including the rows the updates above just wrote
    PERFORM set_config('session_replication_role', 'replica', true);
    UPDATE recovery.audit_log a
       -- a row sealed by encrypt_existing() has the digests of what it was
       SET old_digest = coalesce(a.old_digest, sha256(convert_to(a.old_row::text, 'UTF8'))),
           new_digest = coalesce(a.new_digest, sha256(convert_to(a.new_row::text, 'UTF8'))),
           old_row = recovery.erase_personal(a.old_row::jsonb)::json,
           new_row = recovery.erase_personal(a.new_row::jsonb)::json,
           erased_at = now()
     WHERE a.customer_id = customer_erase.customer_id AND a.erased_at IS NULL;
    GET DIAGNOSTICS audit_rows = ROW_COUNT;
    PERFORM set_config('session_replication_role', 'origin', true);

    -- outside the cluster, so that no restore brings the customer back
    PERFORM recovery.erasure_ledger_record(customer_id);

    RETURN jsonb_build_object('customer_id', customer_id, 'erased_at', now(),
                              'notes_erased', notes, 'events_erased', events,
                              'documents_erased', documents,
                              'audit_rows_erased', audit_rows);
END
$$;
COMMENT ON FUNCTION customer_erase(bigint) IS
    'GDPR erasure of a customer (admins): their data key destroyed, personal data removed from customers, notes, event reasons and the audit trail; amounts and history kept; the audit chains still verify.';
GRANT EXECUTE ON FUNCTION customer_erase(bigint) TO recovery_admin;

-- The erasure ledger (erasure_ledger.c): a file outside the cluster naming
-- every erased customer, written as the erasure commits; a restore erases
-- them all again before the cluster takes traffic (scripts/backup.sh).
CREATE FUNCTION erasure_ledger_record(customer_id bigint) RETURNS void
    LANGUAGE c VOLATILE STRICT
    AS 'MODULE_PATHNAME', 'recovery_erasure_ledger_record';
COMMENT ON FUNCTION erasure_ledger_record(bigint) IS
    'Records the customer in the erasure ledger (recovery.erasure_ledger) when the transaction commits; customer_erase() calls it.';

CREATE FUNCTION erasure_ledger_replay() RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    ledger CONSTANT text := current_setting('recovery.erasure_ledger', true);
    line text;
    ids bigint[] := '{}';
    customer bigint;
    malformed bigint := 0;
    erased bigint := 0;
    already bigint := 0;
    absent bigint := 0;
BEGIN
    IF coalesce(ledger, '') = '' THEN
        RAISE EXCEPTION 'no erasure ledger is configured' USING ERRCODE = '55000',
            DETAIL = 'recovery.erasure_ledger is empty.',
            HINT = 'Set recovery.erasure_ledger to the file where this cluster records erasures.';
    END IF;
    FOR line IN SELECT regexp_split_to_table(coalesce(pg_read_file(ledger, 0, (pg_stat_file(ledger, true)).size, true), ''), E'\n') LOOP
        CONTINUE WHEN line = '';
        IF line !~ '^[1-9][0-9]{0,17}\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$' THEN
            malformed := malformed + 1;
            RAISE WARNING 'erasure ledger %: skipping a malformed line: %', ledger, left(line, 80);
            CONTINUE;
        END IF;
        ids := ids || split_part(line, E'\t', 1)::bigint;
    END LOOP;
    -- these are in the ledger already
    PERFORM set_config('recovery.erasure_ledger', '', true);
    FOR customer IN SELECT DISTINCT u FROM unnest(ids) u ORDER BY 1 LOOP
        IF NOT EXISTS (SELECT 1 FROM recovery.customers c WHERE c.id = customer) THEN
            absent := absent + 1;
        ELSIF EXISTS (SELECT 1 FROM recovery.customers c WHERE c.id = customer AND c.erased_at IS NOT NULL) THEN
            already := already + 1;
        ELSE
            PERFORM recovery.customer_erase(customer);
            erased := erased + 1;
        END IF;
    END LOOP;
    -- an erased customer's id is never given to another: a later replay
    -- would erase them
    IF cardinality(ids) > 0 THEN
        PERFORM setval('recovery.customers_id_seq',
                       greatest((SELECT max(u) FROM unnest(ids) u),
                                (SELECT last_value FROM recovery.customers_id_seq)));
    END IF;
    RETURN jsonb_build_object('ledger', ledger, 'customers', cardinality(ARRAY(SELECT DISTINCT unnest(ids))),
                              'erased', erased, 'already_erased', already,
                              'not_in_database', absent, 'malformed_lines', malformed);
END
$$;
COMMENT ON FUNCTION erasure_ledger_replay() IS
    'After a restore (superusers; scripts/backup.sh): erases again every customer the erasure ledger names that the restored database still holds, and moves the customer ids past them.';

-- erasure reaches what was read about the customer
CREATE FUNCTION customer_erased() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    UPDATE recovery.dunning_holds h SET reason = convert_to('[erased]', 'UTF8')
     WHERE h.customer_id = NEW.id AND h.reason <> convert_to('[erased]', 'UTF8');
    -- nothing queued reaches an erased customer
    UPDATE recovery.notifications n SET status = 'cancelled', cancel_reason = 'the customer was erased'
     WHERE n.customer_id = NEW.id AND n.status IN ('queued', 'failed');
    UPDATE recovery.extractions x SET result = NULL
     WHERE x.customer_id = NEW.id AND x.result IS NOT NULL;
    UPDATE recovery.extraction_lines l SET payer = convert_to('[erased]', 'UTF8'), iban = NULL, reference = '[erased]'
     WHERE l.customer_id = NEW.id AND l.payer IS DISTINCT FROM convert_to('[erased]', 'UTF8');
    RETURN NULL;
END
$$;

CREATE TRIGGER erased AFTER UPDATE OF erased_at ON customers
    FOR EACH ROW WHEN (OLD.erased_at IS NULL AND NEW.erased_at IS NOT NULL)
    EXECUTE FUNCTION customer_erased();
