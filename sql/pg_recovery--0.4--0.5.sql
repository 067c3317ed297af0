-- pg_recovery 0.5: statements imported in bulk.  Parsing, fingerprints,
-- duplicates, matching and applying move to C (extraction_import.c,
-- reconcile.c); the lines are written as COPY writes rows (bulk_insert.c).
-- extraction_lines keeps no btree that every line must enter: a BRIN
-- index on id, and partial indexes on the few lines that wait for review
-- or belong to a customer.
\echo Use "ALTER EXTENSION pg_recovery UPDATE TO '0.5'" to load this file. \quit

-------------------------------------------------------------------------------
-- Where each extraction's lines are, and the dates they cover
-------------------------------------------------------------------------------
ALTER TABLE extractions
    ADD COLUMN first_line_id bigint,
    ADD COLUMN last_line_id  bigint,
    ADD COLUMN booked_from   date,
    ADD COLUMN booked_to     date,
    ADD COLUMN has_undated   boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN extractions.first_line_id IS
    'Its lines have ids from first_line_id to last_line_id: WHERE l.id BETWEEN x.first_line_id AND x.last_line_id AND l.extraction_id = x.id finds them through the BRIN index.';
COMMENT ON COLUMN extractions.booked_from IS
    'The dates of its lines (booked_from to booked_to, has_undated): a later import compares its lines with those of the extractions its dates overlap.';

UPDATE extractions x
   SET first_line_id = s.first_id, last_line_id = s.last_id,
       booked_from = s.booked_from, booked_to = s.booked_to, has_undated = s.has_undated
  FROM (SELECT l.extraction_id, min(l.id) AS first_id, max(l.id) AS last_id,
               min(l.booked_on) AS booked_from, max(l.booked_on) AS booked_to,
               bool_or(l.booked_on IS NULL) AS has_undated
          FROM extraction_lines l GROUP BY l.extraction_id) s
 WHERE s.extraction_id = x.id;

-------------------------------------------------------------------------------
-- extraction_lines: no index that every line enters but a BRIN one
-------------------------------------------------------------------------------
-- A unique fingerprint, a primary key and the queue index were btrees
-- every line of a statement entered, each with its own WAL record: three
-- quarters of an import.  Duplicates are now found under an advisory lock
-- (see extraction_import.c), ids come from the identity in one range per
-- import, and lines are found by id through a BRIN index.
ALTER TABLE extraction_lines DROP CONSTRAINT extraction_lines_pkey;
ALTER TABLE extraction_lines DROP CONSTRAINT extraction_lines_fingerprint_key;
DROP INDEX extraction_lines_extraction;
DROP INDEX extraction_lines_queue;
CREATE INDEX extraction_lines_id ON extraction_lines USING brin (id) WITH (pages_per_range = 16);
CREATE INDEX extraction_lines_review ON extraction_lines (id) WHERE status = 'review';
CREATE INDEX extraction_lines_customer ON extraction_lines (customer_id) WHERE customer_id IS NOT NULL;
COMMENT ON COLUMN extraction_lines.id IS
    'Unique: taken from the identity, in one range per import, only by the extension''s import; found through a BRIN index.';
COMMENT ON COLUMN extraction_lines.fingerprint IS
    'SHA-256 of date, amount, currency, reference, payer, IBAN and the count of identical lines before it: a line whose fingerprint an earlier line of the same dates has is not imported again.';

-------------------------------------------------------------------------------
-- The import, in C
-------------------------------------------------------------------------------
DROP FUNCTION reconcile_match(bigint);
DROP FUNCTION reconcile_apply(bigint);
DROP FUNCTION extraction_add_csv(bigint, bytea, jsonb);
DROP FUNCTION extraction_add_text(bigint, jsonb, bytea, bigint);

CREATE FUNCTION extraction_import_csv(extraction_id bigint, content bytea, mapping jsonb, case_id bigint)
    RETURNS jsonb
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'recovery_extraction_import_csv';
COMMENT ON FUNCTION extraction_import_csv(bigint, bytea, jsonb, bigint) IS
    'The payments of a CSV statement into extraction_lines: lines imported before skipped, the others matched, applied or queued, written in bulk. Called by extract_payments().';

CREATE FUNCTION extraction_import_line(extraction_id bigint, case_id bigint, booked_on date, amount bigint,
                                       currency text, reference text, span_start integer, span_end integer,
                                       confidence real, fingerprint bytea, problem text)
    RETURNS jsonb
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'recovery_extraction_import_line';
COMMENT ON FUNCTION extraction_import_line(bigint, bigint, date, bigint, text, text, integer, integer, real, bytea, text) IS
    'One payment read from a text, imported as extraction_import_csv() imports a statement''s.';

-- One line from what a text says: its first amount, its references.
CREATE FUNCTION extraction_add_text(extraction_id bigint, items jsonb, source_digest bytea,
                                    case_id bigint) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    amount jsonb := (SELECT i FROM jsonb_array_elements(items) i WHERE i ->> 'kind' = 'amount' LIMIT 1);
    refs text := (SELECT string_agg(i ->> 'value', ' ') FROM jsonb_array_elements(items) i
                   WHERE i ->> 'kind' IN ('case_reference', 'invoice_reference'));
    intent text := (SELECT i ->> 'value' FROM jsonb_array_elements(items) i WHERE i ->> 'kind' = 'intent' LIMIT 1);
    booked date := (SELECT (i ->> 'value')::date FROM jsonb_array_elements(items) i WHERE i ->> 'kind' = 'date' LIMIT 1);
    minor_units integer;
    minor numeric;
BEGIN
    IF amount IS NULL OR intent IN ('promise', 'dispute') THEN
        -- not money received; the result keeps what was said
        RETURN jsonb_build_object('records', 0, 'added', 0, 'duplicates', 0, 'by_status', '{}'::jsonb);
    END IF;
    SELECT c.minor_units INTO minor_units FROM recovery.currencies c WHERE c.code = amount ->> 'currency';
    minor := (amount ->> 'value')::numeric * (10::numeric ^ coalesce(minor_units, 0));
    RETURN recovery.extraction_import_line(
        extraction_id, case_id, coalesce(booked, current_date),
        CASE WHEN minor = trunc(minor) AND abs(minor) < 1e15 THEN minor::bigint END,
        amount ->> 'currency', refs, (amount ->> 'start')::integer, (amount ->> 'end')::integer,
        (amount ->> 'confidence')::real,
        sha256(source_digest || convert_to(concat_ws('|', amount ->> 'value', amount ->> 'currency', refs), 'UTF8')),
        CASE WHEN minor_units IS NULL THEN 'unknown currency'
             WHEN minor <> trunc(minor) THEN 'more decimals than the currency has'
             WHEN minor <= 0 THEN 'not money received' END);
END
$$;

-- what two imports into one extraction came to
CREATE FUNCTION extraction_outcome_add(a jsonb, b jsonb) RETURNS jsonb
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
                                                'file', coalesce(a -> 'file', b -> 'file')))
    END $$;

CREATE OR REPLACE FUNCTION extract_payments(source text, content bytea, mapping text DEFAULT NULL,
                        case_id bigint DEFAULT NULL, document_id bigint DEFAULT NULL) RETURNS jsonb
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
        imported := recovery.extraction_import_csv(ex.id, content, map, case_id);
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
        -- a CSV attachment is the remittance itself; the text only speaks of it
        FOR att IN SELECT a FROM jsonb_array_elements(parsed -> 'attachments') a LOOP
            IF att ->> 'content_type' IN ('text/csv', 'text/comma-separated-values', 'application/vnd.ms-excel')
               OR att ->> 'filename' ILIKE '%.csv' THEN
                imported := recovery.extraction_outcome_add(imported,
                    recovery.extraction_import_csv(ex.id, decode(att ->> 'content_base64', 'base64'), map, case_id));
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
        'documents', kept);
    UPDATE recovery.extractions x SET summary = outcome,
           result = CASE WHEN extract_payments.source = 'statement' THEN NULL ELSE parsed END
     WHERE x.id = ex.id;
    RETURN jsonb_build_object('id', ex.id, 'source', source) || outcome
           || jsonb_build_object('parsed', CASE WHEN source = 'statement' THEN NULL ELSE parsed END);
END
$$;

-------------------------------------------------------------------------------
-- Lines found through their extraction's id range
-------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION api_extraction_get(extraction_id bigint) RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    extraction jsonb;
BEGIN
    SELECT to_jsonb(x) - 'sha256' || jsonb_build_object('sha256', encode(x.sha256, 'hex'),
               'lines', (SELECT coalesce(jsonb_agg(to_jsonb(l) - 'fingerprint' ORDER BY l.id), '[]')
                           FROM (SELECT * FROM recovery.extraction_lines l
                                  WHERE l.id BETWEEN x.first_line_id AND x.last_line_id
                                    AND l.extraction_id = x.id ORDER BY l.id LIMIT 500) l))
      INTO extraction FROM recovery.extractions x WHERE x.id = extraction_id;
    IF extraction IS NULL THEN
        RAISE EXCEPTION 'extraction % does not exist', extraction_id USING ERRCODE = 'PR003';
    END IF;
    RETURN extraction;
END
$$;

-- A line as the queue shows it: the suggested case's balance and state.
CREATE VIEW reconciliation_lines AS
    SELECT l.id, l.extraction_id, x.source, l.line_no, l.booked_on, l.amount, l.currency,
           l.reference, l.payer, l.status, l.case_id, l.score, l.reason,
           c.balance AS case_balance, c.state AS case_state
      FROM extraction_lines l
      JOIN extractions x ON x.id = l.extraction_id
      LEFT JOIN recovery_cases c ON c.id = l.case_id;
GRANT SELECT ON reconciliation_lines TO recovery_viewer, recovery_auditor;

-- The queue is what waits for a person: review.  Lines no rule matched
-- (unmatched) are listed per extraction: a bank statement brings many
-- that are none of ours.
CREATE OR REPLACE FUNCTION api_reconciliation_queue(status text DEFAULT NULL, cursor text DEFAULT NULL,
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

-------------------------------------------------------------------------------
-- Privileges of what 0.5 added
-------------------------------------------------------------------------------
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA recovery FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_extraction_get(bigint), api_reconciliation_queue(text, text, integer, bigint)
    TO recovery_viewer, recovery_auditor;
GRANT EXECUTE ON FUNCTION extract_payments(text, bytea, text, bigint, bigint) TO recovery_agent, recovery_automation;
