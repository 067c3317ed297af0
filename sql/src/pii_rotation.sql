-- One customer's data key rotated: a new key, and every value sealed for
-- them (their rows and the audit trail's) sealed again under it, in one
-- transaction (pii_reseal, audit_row_sealed).

CREATE FUNCTION rotate_data_key(customer_id bigint) RETURNS integer
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'recovery_rotate_data_key';
COMMENT ON FUNCTION rotate_data_key(bigint) IS
    'A new data key for the customer; the old one opens values until the transaction ends (customer_rotate_key() seals them again).';

CREATE FUNCTION customer_rotate_key(customer_id bigint) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    version integer;
    customers bigint;
    notes bigint;
    documents bigint;
    events bigint;
    holds bigint;
    lines bigint;
    extractions bigint;
    audit_rows bigint;
BEGIN
    IF NOT recovery.caller_has_role('recovery_admin') THEN
        RAISE EXCEPTION 'permission denied to rotate a customer''s key' USING ERRCODE = '42501',
            HINT = 'Key rotation is for administrators.';
    END IF;
    PERFORM 1 FROM recovery.customers c WHERE c.id = customer_rotate_key.customer_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'customer % does not exist', customer_id USING ERRCODE = 'PR003';
    END IF;
    version := recovery.rotate_data_key(customer_id);

    -- only the storage changes: no audit row, no live event, no trigger
    PERFORM set_config('session_replication_role', 'replica', true);
    UPDATE recovery.customers c
       SET name = recovery.pii_reseal(c.name, 'customers', 'name', c.id, c.id),
           email = recovery.pii_reseal(c.email, 'customers', 'email', c.id, c.id),
           phone = recovery.pii_reseal(c.phone, 'customers', 'phone', c.id, c.id)
     WHERE c.id = customer_rotate_key.customer_id;
    GET DIAGNOSTICS customers = ROW_COUNT;
    UPDATE recovery.case_notes n
       SET body = recovery.pii_reseal(n.body, 'case_notes', 'body', n.id, n.customer_id)
     WHERE n.customer_id = customer_rotate_key.customer_id;
    GET DIAGNOSTICS notes = ROW_COUNT;
    UPDATE recovery.documents d
       SET filename = recovery.pii_reseal(d.filename, 'documents', 'filename', d.id, d.customer_id),
           content = recovery.pii_reseal(d.content, 'documents', 'content', d.id, d.customer_id)
     WHERE d.customer_id = customer_rotate_key.customer_id;
    GET DIAGNOSTICS documents = ROW_COUNT;
    UPDATE recovery.case_events e
       SET reason = recovery.pii_reseal(e.reason, 'case_events', 'reason', e.id, e.customer_id),
           personal_details = recovery.pii_reseal(e.personal_details, 'case_events', 'personal_details',
                                                  e.id, e.customer_id)
     WHERE e.customer_id = customer_rotate_key.customer_id
       AND (e.reason IS NOT NULL OR e.personal_details IS NOT NULL);
    GET DIAGNOSTICS events = ROW_COUNT;
    UPDATE recovery.dunning_holds h
       SET reason = recovery.pii_reseal(h.reason, 'dunning_holds', 'reason', h.id, h.customer_id)
     WHERE h.customer_id = customer_rotate_key.customer_id;
    GET DIAGNOSTICS holds = ROW_COUNT;
    UPDATE recovery.extraction_lines l
       SET payer = recovery.pii_reseal(l.payer, 'extraction_lines', 'payer', l.id, l.customer_id),
           iban = recovery.pii_reseal(l.iban, 'extraction_lines', 'iban', l.id, l.customer_id)
     WHERE l.customer_id = customer_rotate_key.customer_id;
    GET DIAGNOSTICS lines = ROW_COUNT;
    UPDATE recovery.extractions x
       SET result = recovery.pii_reseal(x.result, 'extractions', 'result', x.id, x.customer_id)
     WHERE x.customer_id = customer_rotate_key.customer_id AND x.result IS NOT NULL;
    GET DIAGNOSTICS extractions = ROW_COUNT;
    -- the trail's copies too, keeping the digests of what each row held
    UPDATE recovery.audit_log a
       SET old_digest = coalesce(a.old_digest, sha256(convert_to(a.old_row::text, 'UTF8'))),
           new_digest = coalesce(a.new_digest, sha256(convert_to(a.new_row::text, 'UTF8'))),
           old_row = recovery.audit_row_sealed(a.old_row, a.table_name, a.row_key, a.customer_id),
           new_row = recovery.audit_row_sealed(a.new_row, a.table_name, a.row_key, a.customer_id)
     WHERE a.customer_id = customer_rotate_key.customer_id AND a.erased_at IS NULL
       AND (strpos(coalesce(a.old_row::text, ''), '"\\xff01') > 0
            OR strpos(coalesce(a.new_row::text, ''), '"\\xff01') > 0);
    GET DIAGNOSTICS audit_rows = ROW_COUNT;
    PERFORM set_config('session_replication_role', 'origin', true);

    RETURN jsonb_build_object('customer_id', customer_id, 'key_version', version,
                              'customers', customers, 'notes', notes, 'documents', documents,
                              'events', events, 'holds', holds, 'statement_lines', lines,
                              'extractions', extractions, 'audit_rows', audit_rows);
END
$$;
COMMENT ON FUNCTION customer_rotate_key(bigint) IS
    'A new data key for the customer (admins): their name, email, phone, notes, documents, event reasons and details, hold reasons, statement lines, extraction results and the audit trail''s copies sealed again under it, in one transaction; the old key is gone at commit.';
GRANT EXECUTE ON FUNCTION customer_rotate_key(bigint) TO recovery_admin;
