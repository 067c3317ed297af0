-- REST: extraction and the reconciliation queue.

CREATE FUNCTION api_bank_mappings_list() RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT jsonb_build_object('items', coalesce(jsonb_agg(to_jsonb(m) ORDER BY m.name), '[]'))
          FROM recovery.bank_mappings m $$;
GRANT EXECUTE ON FUNCTION api_bank_mappings_list() TO recovery_viewer, recovery_auditor;

CREATE FUNCTION api_extract(source text, content text, mapping text DEFAULT NULL,
                            case_id bigint DEFAULT NULL) RETURNS jsonb
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT recovery.extract_payments(source, convert_to(content, 'UTF8'), mapping, case_id) $$;
COMMENT ON FUNCTION api_extract(text, text, text, bigint) IS
    'POST /api/v1/extractions: {"source", "content", "mapping", "case_id"}.';
GRANT EXECUTE ON FUNCTION api_extract(text, text, text, bigint) TO recovery_agent, recovery_automation;

CREATE FUNCTION api_extract_statement(content bytea, mapping text DEFAULT NULL, format text DEFAULT NULL,
                                      preview boolean DEFAULT false) RETURNS jsonb
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT CASE WHEN coalesce(preview, false)
                      THEN recovery.extract_preview('statement', content, mapping, NULL, format)
                      ELSE recovery.extract_payments('statement', content, mapping, NULL, NULL, format) END $$;
COMMENT ON FUNCTION api_extract_statement(bytea, text, text, boolean) IS
    'POST /api/v1/extractions/statements?mapping=&format=&preview=: a statement as the raw body (CSV in any encoding, CAMT, MT940, xlsx, xls or PDF; the bytes tell the format unless format says it); preview=true shows what the import would do and keeps nothing.';
GRANT EXECUTE ON FUNCTION api_extract_statement(bytea, text, text, boolean) TO recovery_agent, recovery_automation;

-- Lines found through their extraction's id range
CREATE FUNCTION api_extraction_get(extraction_id bigint) RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    extraction jsonb;
BEGIN
    SELECT to_jsonb(x) - 'sha256' || jsonb_build_object('sha256', encode(x.sha256, 'hex'),
               'lines', (SELECT coalesce(jsonb_agg(to_jsonb(l) - 'fingerprint' - 'iban_index' ORDER BY l.id), '[]')
                           FROM (SELECT * FROM recovery.extraction_lines_decrypted l
                                  WHERE l.id BETWEEN x.first_line_id AND x.last_line_id
                                    AND l.extraction_id = x.id ORDER BY l.id LIMIT 500) l))
      INTO extraction FROM recovery.extractions_decrypted x WHERE x.id = extraction_id;
    IF extraction IS NULL THEN
        RAISE EXCEPTION 'extraction % does not exist', extraction_id USING ERRCODE = 'PR003';
    END IF;
    RETURN extraction;
END
$$;
COMMENT ON FUNCTION api_extraction_get(bigint) IS 'GET /api/v1/extractions/{id}: the extraction and its first 500 lines.';
GRANT EXECUTE ON FUNCTION api_extraction_get(bigint) TO recovery_viewer, recovery_auditor;

-- The queue is what waits for a person: review.  Lines no rule matched
-- (unmatched) are listed per extraction: a bank statement brings many
-- that are none of ours.
CREATE FUNCTION api_reconciliation_queue(status text DEFAULT NULL, cursor text DEFAULT NULL,
                                                    "limit" integer DEFAULT NULL, extraction_id bigint DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    page_size integer := recovery.page_size("limit");
    after bigint := coalesce((recovery.cursor_decode(cursor) ->> 'id')::bigint, 0);
    wanted text := coalesce(status, 'review');
    ex recovery.extractions;
    items jsonb;
BEGIN
    IF wanted NOT IN ('review', 'unmatched') THEN
        RAISE EXCEPTION 'status is review or unmatched' USING ERRCODE = 'PR004';
    END IF;
    IF extraction_id IS NOT NULL THEN
        SELECT * INTO ex FROM recovery.extractions x WHERE x.id = api_reconciliation_queue.extraction_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'extraction % does not exist', extraction_id USING ERRCODE = 'PR003';
        END IF;
    ELSIF wanted = 'unmatched' THEN
        RAISE EXCEPTION 'unmatched lines are listed per extraction' USING ERRCODE = 'PR004',
            HINT = 'Add extraction_id: the summary of each import says how many of its lines matched no case.';
    END IF;
    IF ex.id IS NULL THEN
        -- through the partial index of the lines in review
        SELECT coalesce(jsonb_agg(to_jsonb(q) ORDER BY q.id), '[]') INTO items
          FROM (SELECT * FROM recovery.reconciliation_lines l
                 WHERE l.status = 'review' AND l.id > after ORDER BY l.id LIMIT page_size) q;
    ELSE
        -- through the extraction's id range and the BRIN index
        SELECT coalesce(jsonb_agg(to_jsonb(q) ORDER BY q.id), '[]') INTO items
          FROM (SELECT * FROM recovery.reconciliation_lines l
                 WHERE l.id BETWEEN greatest(ex.first_line_id, after + 1) AND ex.last_line_id
                   AND l.extraction_id = ex.id AND l.status = wanted
                 ORDER BY l.id LIMIT page_size) q;
    END IF;
    RETURN recovery.page_of(items, page_size, jsonb_build_object('id', items -> -1 -> 'id'));
END
$$;
COMMENT ON FUNCTION api_reconciliation_queue(text, text, integer, bigint) IS
    'GET /api/v1/reconciliation: payments found that wait for review, oldest first, with the suggested case and why; of one extraction if given, whose unmatched lines are listed with status=unmatched.';
GRANT EXECUTE ON FUNCTION api_reconciliation_queue(text, text, integer, bigint) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION api_reconciliation_confirm(line_id bigint, case_id bigint DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    l recovery.extraction_lines := recovery.reconciliation_line_for_decision(line_id);
    target recovery.recovery_cases;
BEGIN
    SELECT * INTO target FROM recovery.recovery_cases c WHERE c.id = coalesce(api_reconciliation_confirm.case_id, l.case_id);
    IF target.id IS NULL THEN
        RAISE EXCEPTION 'name the case the payment belongs to' USING ERRCODE = 'PR004',
            HINT = 'Send {"case_id": ...}; this line has no suggested case.';
    END IF;
    UPDATE recovery.extraction_lines x
       SET case_id = target.id, customer_id = target.customer_id,
           reason = CASE WHEN x.case_id IS DISTINCT FROM target.id THEN 'chosen by ' || recovery.task_worker()
                         ELSE x.reason END
     WHERE x.id = l.id RETURNING * INTO l;
    IF NOT recovery.reconcile_record(l, 'confirmed') THEN
        SELECT * INTO l FROM recovery.extraction_lines x WHERE x.id = line_id;
        RAISE EXCEPTION 'the payment cannot be applied to case %', target.id USING ERRCODE = 'PR001',
            DETAIL = l.reason;
    END IF;
    RETURN (SELECT to_jsonb(x) - 'fingerprint' - 'iban_index' FROM recovery.extraction_lines_decrypted x WHERE x.id = line_id);
END
$$;
COMMENT ON FUNCTION api_reconciliation_confirm(bigint, bigint) IS
    'POST /api/v1/reconciliation/{id}/confirm: applies the payment to the suggested case, or to case_id.';
GRANT EXECUTE ON FUNCTION api_reconciliation_confirm(bigint, bigint) TO recovery_agent;

CREATE FUNCTION api_reconciliation_reject(line_id bigint, reason text) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    l recovery.extraction_lines := recovery.reconciliation_line_for_decision(line_id);
BEGIN
    IF reason IS NULL OR length(btrim(reason)) = 0 THEN
        RAISE EXCEPTION 'say why the payment is rejected' USING ERRCODE = 'PR004';
    END IF;
    UPDATE recovery.extraction_lines x
       SET status = 'rejected', reason = left(api_reconciliation_reject.reason, 500),
           decided_by = recovery.task_worker(), decided_at = now()
     WHERE x.id = l.id;
    RETURN (SELECT to_jsonb(x) - 'fingerprint' - 'iban_index' FROM recovery.extraction_lines_decrypted x WHERE x.id = line_id);
END
$$;
COMMENT ON FUNCTION api_reconciliation_reject(bigint, text) IS
    'POST /api/v1/reconciliation/{id}/reject: {"reason"}; nothing is applied.';
GRANT EXECUTE ON FUNCTION api_reconciliation_reject(bigint, text) TO recovery_agent;
