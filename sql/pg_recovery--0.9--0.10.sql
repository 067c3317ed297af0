-- pg_recovery 0.9 -> 0.10: every statement format.  CAMT.052/053/054,
-- MT940/942, xlsx, xls and PDF are read by recovery-parse, a sandboxed
-- program installed with the extension (parse_statement_file), whose CSV
-- goes through the same import as a CSV statement's (extraction_import_file):
-- the same fingerprints, matching and review.  Statements whose balances do
-- not add up have their lines held for review; pending entries are not
-- applied.  extract_preview() shows what an import would do, keeping nothing.
\echo Use "ALTER EXTENSION pg_recovery UPDATE TO '0.10'" to load this file. \quit

CREATE FUNCTION statement_format(content bytea) RETURNS text
    LANGUAGE c IMMUTABLE STRICT AS 'MODULE_PATHNAME', 'recovery_statement_format';
COMMENT ON FUNCTION statement_format(bytea) IS
    'The format of a statement file from its first bytes: camt, mt940, xlsx, xls, pdf, xml (not a CAMT) or csv (anything else).';
GRANT EXECUTE ON FUNCTION statement_format(bytea) TO recovery_viewer, recovery_auditor;

REVOKE ALL ON FUNCTION statement_format(bytea) FROM PUBLIC;

CREATE FUNCTION parse_statement_file(content bytea, format text DEFAULT NULL, mapping jsonb DEFAULT NULL,
                                     OUT format text, OUT columns text, OUT content bytea, OUT summary jsonb)
    RETURNS record
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'recovery_parse_statement_file';
COMMENT ON FUNCTION parse_statement_file(bytea, text, jsonb) IS
    'A CAMT.052/053/054, MT940/942, xlsx, xls or PDF statement read by the sandboxed recovery-parse: content is CSV (columns canonical: the parser''s own; own: a spreadsheet''s or a PDF table''s rows under their header) or a PDF''s text (columns text); summary says the format, statements, entries and balance problems.';
GRANT EXECUTE ON FUNCTION parse_statement_file(bytea, text, jsonb) TO recovery_viewer, recovery_auditor;

REVOKE ALL ON FUNCTION parse_statement_file(bytea, text, jsonb) FROM PUBLIC;

-- A statement file in any format.  CSV is read in the backend; the other
-- formats by recovery-parse, whose CSV then goes through the same import
-- (so the same fingerprints: a payment seen in a CAMT is not added again
-- from the bank's CSV or MT940 of the same day), and a PDF without a table
-- through the text reader, as an email's text is.
CREATE FUNCTION extraction_import_file(extraction_id bigint, content bytea, format text, map jsonb, case_id bigint)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    fmt text := coalesce(format, recovery.statement_format(content));
    file record;
    imported jsonb;
    parsed jsonb;
BEGIN
    IF fmt NOT IN ('csv', 'camt', 'mt940', 'mt942', 'xlsx', 'xls', 'pdf', 'xml') THEN
        RAISE EXCEPTION 'format is csv, camt, mt940, xlsx, xls or pdf' USING ERRCODE = 'PR004',
            HINT = 'Without a format, the file''s first bytes tell it.';
    END IF;
    IF fmt = 'csv' THEN
        RETURN recovery.extraction_import_csv(extraction_id, content, map, case_id)
               || jsonb_build_object('format', 'csv');
    END IF;
    file := recovery.parse_statement_file(content, fmt, map);
    IF file.columns = 'canonical' THEN
        imported := recovery.extraction_import_csv(extraction_id, file.content,
            '{"date": "date", "amount": "amount", "currency": "currency", "reference": "reference",
              "payer": "payer", "iban": "iban", "problem": "problem", "hold": "hold",
              "delimiter": ",", "decimal": "."}', case_id);
    ELSIF file.columns = 'own' THEN
        -- a spreadsheet's numbers are written as numbers: "1234.5"
        imported := recovery.extraction_import_csv(extraction_id, file.content,
            coalesce(map, '{}') || '{"delimiter": ",", "decimal": "."}', case_id);
    ELSE
        parsed := recovery.parse_text(convert_from(file.content, 'UTF8'));
        imported := recovery.extraction_add_text(extraction_id, parsed -> 'items',
            (SELECT x.sha256 FROM recovery.extractions x WHERE x.id = extraction_id), case_id);
    END IF;
    RETURN imported || jsonb_build_object('format', file.format, 'statement', file.summary - 'format' - 'columns');
END
$$;
COMMENT ON FUNCTION extraction_import_file(bigint, bytea, text, jsonb, bigint) IS
    'A statement in any format (CSV in the backend; CAMT, MT940, xlsx, xls and PDF through recovery-parse) into extraction_lines, as extraction_import_csv does. Called by extract_payments().';

REVOKE ALL ON FUNCTION extraction_import_file(bigint, bytea, text, jsonb, bigint) FROM PUBLIC;

-- an email's statement attachments say their format too
CREATE OR REPLACE FUNCTION extraction_outcome_add(a jsonb, b jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE WHEN a IS NULL THEN b WHEN b IS NULL THEN a ELSE
        jsonb_build_object(
            'records', (a ->> 'records')::bigint + (b ->> 'records')::bigint,
            'added', (a ->> 'added')::bigint + (b ->> 'added')::bigint,
            'duplicates', (a ->> 'duplicates')::bigint + (b ->> 'duplicates')::bigint,
            'by_status', (SELECT coalesce(jsonb_object_agg(s.status, s.n), '{}')
                            FROM (SELECT e.key AS status, sum(e.value::bigint) AS n
                                    FROM (SELECT * FROM jsonb_each_text(a -> 'by_status')
                                          UNION ALL SELECT * FROM jsonb_each_text(b -> 'by_status')) e
                                   GROUP BY e.key) s))
        || jsonb_strip_nulls(jsonb_build_object('case_id', coalesce(a -> 'case_id', b -> 'case_id'),
                                                'file', coalesce(a -> 'file', b -> 'file'),
                                                'format', coalesce(a -> 'format', b -> 'format'),
                                                'statement', coalesce(a -> 'statement', b -> 'statement')))
    END $$;

DROP FUNCTION extract_payments(text, bytea, text, bigint, bigint);

CREATE FUNCTION extract_payments(source text, content bytea, mapping text DEFAULT NULL,
                        case_id bigint DEFAULT NULL, document_id bigint DEFAULT NULL,
                        format text DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    map jsonb;
    ex recovery.extractions;
    parsed jsonb;
    imported jsonb;
    att jsonb;
    kept jsonb := '[]';
    target recovery.recovery_cases;
    outcome jsonb;
    has_csv boolean := false;
    attachments jsonb;
    size bigint;
    digest bytea;
BEGIN
    IF NOT recovery.caller_has_role('recovery_agent') AND NOT recovery.caller_has_role('recovery_automation') THEN
        RAISE EXCEPTION 'permission denied to extract payments' USING ERRCODE = '42501';
    END IF;
    IF source IS NULL OR source NOT IN ('statement', 'email', 'sms', 'text') THEN
        RAISE EXCEPTION 'source is statement, email, sms or text' USING ERRCODE = 'PR004';
    END IF;
    IF content IS NULL OR length(content) = 0 THEN
        RAISE EXCEPTION 'there is nothing to read' USING ERRCODE = 'PR004';
    END IF;
    IF mapping IS NOT NULL THEN
        SELECT m.mapping INTO map FROM recovery.bank_mappings m WHERE m.name = extract_payments.mapping;
        IF map IS NULL THEN
            RAISE EXCEPTION 'there is no bank mapping named "%"', mapping USING ERRCODE = 'PR003',
                HINT = 'GET /api/v1/bank-mappings lists them; without one the usual header names are tried.';
        END IF;
    END IF;
    IF case_id IS NOT NULL THEN
        SELECT * INTO target FROM recovery.recovery_cases c WHERE c.id = extract_payments.case_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'recovery case % does not exist', case_id USING ERRCODE = 'PR003';
        END IF;
    END IF;

    -- content goes to functions only, never into a statement's plan: a
    -- statement's custom plan would copy it as a constant, 100 MB each time
    size := length(content);
    digest := sha256(content);
    INSERT INTO recovery.extractions (source, document_id, case_id, mapping, size, sha256, created_by)
    VALUES (source, document_id, case_id, mapping, size, digest, recovery.task_worker())
    RETURNING * INTO ex;

    IF source = 'statement' THEN
        imported := recovery.extraction_import_file(ex.id, content, format, map, case_id);
    ELSIF source = 'email' THEN
        parsed := recovery.parse_email(content);
        -- a remittance file without a currency is in the currency its email
        -- or its case names
        IF NOT coalesce(map ? 'default_currency', false) THEN
            map := coalesce(map, '{}') || jsonb_strip_nulls(jsonb_build_object('default_currency',
                coalesce(target.currency::text,
                         (SELECT i ->> 'currency' FROM jsonb_array_elements(parsed -> 'items') i
                           WHERE i ->> 'kind' = 'amount' LIMIT 1))));
        END IF;
        -- a statement attachment (CSV, CAMT, MT940, a workbook, a PDF
        -- remittance advice) is the remittance itself; the text only speaks of it
        FOR att IN SELECT a FROM jsonb_array_elements(parsed -> 'attachments') a LOOP
            IF att ->> 'content_type' IN ('text/csv', 'text/comma-separated-values', 'application/vnd.ms-excel',
                                          'application/pdf', 'application/xml', 'text/xml',
                                          'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet')
               OR att ->> 'filename' ~* '\.(csv|pdf|xml|xlsx|xls|sta|mt940)$' THEN
                imported := recovery.extraction_outcome_add(imported,
                    recovery.extraction_import_file(ex.id, decode(att ->> 'content_base64', 'base64'),
                        CASE WHEN att ->> 'filename' ~* '\.csv$' OR att ->> 'content_type' LIKE 'text/c%' THEN 'csv' END,
                        map, case_id));
                has_csv := true;
            END IF;
        END LOOP;
        IF NOT has_csv THEN
            imported := recovery.extraction_add_text(ex.id, parsed -> 'items', ex.sha256, case_id);
        END IF;
        -- the result keeps what the attachments were, not their bytes
        attachments := parsed -> 'attachments';
        parsed := jsonb_set(parsed, '{attachments}', coalesce((
            SELECT jsonb_agg(a - 'content_base64') FROM jsonb_array_elements(attachments) a), '[]'));
    ELSE
        BEGIN
            parsed := recovery.parse_text(convert_from(content, 'UTF8'));
        EXCEPTION WHEN character_not_in_repertoire OR untranslatable_character THEN
            RAISE EXCEPTION 'cannot read the text: it is not valid UTF-8' USING ERRCODE = 'PR004';
        END;
        imported := recovery.extraction_add_text(ex.id, parsed -> 'items', ex.sha256, case_id);
    END IF;

    -- an email's attachments are kept with the case its money went to
    IF source = 'email' THEN
        SELECT c.* INTO target FROM recovery.recovery_cases c
         WHERE c.id = coalesce(extract_payments.case_id, (imported ->> 'case_id')::bigint);
        IF target.id IS NOT NULL THEN
            FOR att IN SELECT a FROM jsonb_array_elements(attachments) a LOOP
                BEGIN
                    kept := kept || jsonb_build_object('filename', att ->> 'filename', 'document_id',
                        (recovery.api_document_upload(target.id, att ->> 'filename', att ->> 'content_type',
                                                      decode(att ->> 'content_base64', 'base64')) ->> 'id')::bigint);
                EXCEPTION WHEN sqlstate 'PR004' THEN
                    kept := kept || jsonb_build_object('filename', att ->> 'filename', 'not_kept', SQLERRM);
                END;
            END LOOP;
        END IF;
    END IF;

    outcome := jsonb_build_object(
        'lines', (imported ->> 'added')::bigint,
        'by_status', (SELECT coalesce(jsonb_object_agg(s.key, s.value), '{}')
                        FROM jsonb_each(imported -> 'by_status') s WHERE s.value::bigint > 0),
        'duplicates', (imported ->> 'duplicates')::bigint,
        'file', imported -> 'file',
        'format', imported -> 'format',
        'statement', imported -> 'statement',
        'documents', kept);
    UPDATE recovery.extractions x SET summary = outcome,
           result = CASE WHEN extract_payments.source = 'statement' THEN NULL ELSE parsed END
     WHERE x.id = ex.id;
    RETURN jsonb_build_object('id', ex.id, 'source', source) || outcome
           || jsonb_build_object('parsed', CASE WHEN source = 'statement' THEN NULL ELSE parsed END);
END
$$;
COMMENT ON FUNCTION extract_payments(text, bytea, text, bigint, bigint, text) IS
    'Reads a statement (CSV with a bank mapping or the usual header names, CAMT.052/053/054, MT940/942, xlsx, xls or PDF: format, or its first bytes, says which), an email, an SMS or a text; matches each payment found to a case and applies it above recovery.reconcile_auto_apply, else queues it for review; a line imported before is skipped.';
GRANT EXECUTE ON FUNCTION extract_payments(text, bytea, text, bigint, bigint, text) TO recovery_agent, recovery_automation;

-- What an import would do, undone: the lines found, their matches and
-- what would be applied, from the very code that applies them, in a
-- subtransaction rolled back before it returns.
CREATE FUNCTION extract_preview(source text, content bytea, mapping text DEFAULT NULL,
                                case_id bigint DEFAULT NULL, format text DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    outcome jsonb;
BEGIN
    BEGIN
        outcome := recovery.extract_payments(source, content, mapping, case_id, NULL, format);
        outcome := outcome - 'id' || jsonb_build_object('preview', true, 'lines_found', (
            SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'line_no', l.line_no, 'booked_on', l.booked_on, 'amount', l.amount,
                       'currency', l.currency, 'reference', l.reference, 'payer', l.payer,
                       'status', l.status, 'case_id', l.case_id, 'score', l.score, 'reason', l.reason)
                       ORDER BY l.id), '[]')
              FROM (SELECT * FROM recovery.extraction_lines l
                     WHERE l.extraction_id = (outcome ->> 'id')::bigint ORDER BY l.id LIMIT 500) l));
        RAISE EXCEPTION 'preview' USING ERRCODE = 'PR0PV';
    EXCEPTION WHEN sqlstate 'PR0PV' THEN
        NULL;					-- everything it wrote is undone; outcome is kept
    END;
    RETURN outcome;
END
$$;
COMMENT ON FUNCTION extract_preview(text, bytea, text, bigint, text) IS
    'What extract_payments() would do with the file (its first 500 lines, their matches, what would be applied), with nothing kept: the web app''s import page shows it before the agent applies.';
GRANT EXECUTE ON FUNCTION extract_preview(text, bytea, text, bigint, text) TO recovery_agent, recovery_automation;

REVOKE ALL ON FUNCTION extract_payments(text, bytea, text, bigint, bigint, text), extract_preview(text, bytea, text, bigint, text) FROM PUBLIC;

DROP FUNCTION api_extract_statement(bytea, text);

CREATE FUNCTION api_extract_statement(content bytea, mapping text DEFAULT NULL, format text DEFAULT NULL,
                                      preview boolean DEFAULT false) RETURNS jsonb
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT CASE WHEN coalesce(preview, false)
                      THEN recovery.extract_preview('statement', content, mapping, NULL, format)
                      ELSE recovery.extract_payments('statement', content, mapping, NULL, NULL, format) END $$;
COMMENT ON FUNCTION api_extract_statement(bytea, text, text, boolean) IS
    'POST /api/v1/extractions/statements?mapping=&format=&preview=: a statement as the raw body (CSV in any encoding, CAMT, MT940, xlsx, xls or PDF; the bytes tell the format unless format says it); preview=true shows what the import would do and keeps nothing.';
GRANT EXECUTE ON FUNCTION api_extract_statement(bytea, text, text, boolean) TO recovery_agent, recovery_automation;

REVOKE ALL ON FUNCTION api_extract_statement(bytea, text, text, boolean) FROM PUBLIC;
