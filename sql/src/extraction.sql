-- Payment data read from statements, emails and SMS, matched to cases.

-- The parsers
CREATE FUNCTION parse_csv(content bytea, mapping jsonb DEFAULT NULL,
                          OUT line integer, OUT span_start integer, OUT span_end integer,
                          OUT booked_on date, OUT amount numeric, OUT amount_minor bigint,
                          OUT currency text, OUT reference text, OUT payer text, OUT iban text,
                          OUT confidence real, OUT fingerprint bytea, OUT problem text)
    RETURNS SETOF record
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'recovery_parse_csv';
COMMENT ON FUNCTION parse_csv(bytea, jsonb) IS
    'A CSV statement (RFC 4180; comma, semicolon or tab; UTF-8 or Windows-1252) as one row per record: the amount as read and exactly in minor units of its currency, the record''s fingerprint, and problem saying why a record is not a payment.';
GRANT EXECUTE ON FUNCTION parse_csv(bytea, jsonb) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION parse_csv_summary() RETURNS jsonb
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'recovery_parse_csv_summary';
COMMENT ON FUNCTION parse_csv_summary() IS
    'What the last parse_csv() of this session read: records, encoding, delimiter.';
GRANT EXECUTE ON FUNCTION parse_csv_summary() TO recovery_viewer, recovery_auditor;

CREATE FUNCTION statement_format(content bytea) RETURNS text
    LANGUAGE c IMMUTABLE STRICT AS 'MODULE_PATHNAME', 'recovery_statement_format';
COMMENT ON FUNCTION statement_format(bytea) IS
    'The format of a statement file from its first bytes: camt, mt940, xlsx, xls, pdf, xml (not a CAMT) or csv (anything else).';
GRANT EXECUTE ON FUNCTION statement_format(bytea) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION parse_statement_file(content bytea, format text DEFAULT NULL, mapping jsonb DEFAULT NULL,
                                     OUT format text, OUT columns text, OUT content bytea, OUT summary jsonb)
    RETURNS record
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'recovery_parse_statement_file';
COMMENT ON FUNCTION parse_statement_file(bytea, text, jsonb) IS
    'A CAMT.052/053/054, MT940/942, xlsx, xls or PDF statement read by the sandboxed recovery-parse: content is CSV (columns canonical: the parser''s own; own: a spreadsheet''s or a PDF table''s rows under their header) or a PDF''s text (columns text); summary says the format, statements, entries and balance problems.';
GRANT EXECUTE ON FUNCTION parse_statement_file(bytea, text, jsonb) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION parse_text(content text) RETURNS jsonb
    LANGUAGE c IMMUTABLE STRICT AS 'MODULE_PATHNAME', 'recovery_parse_text';
COMMENT ON FUNCTION parse_text(text) IS
    'Amounts with currency, case and invoice references, dates and intents (paid, promise, dispute) in a text or SMS, each with its byte span and a confidence.';
GRANT EXECUTE ON FUNCTION parse_text(text) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION parse_email(content bytea) RETURNS jsonb
    LANGUAGE c IMMUTABLE STRICT AS 'MODULE_PATHNAME', 'recovery_parse_email';
COMMENT ON FUNCTION parse_email(bytea) IS
    'An email (RFC 5322, MIME, through GMime): subject, from, date, text (text/plain, else text/html without tags), the text''s items, attachments in base64.';
GRANT EXECUTE ON FUNCTION parse_email(bytea) TO recovery_viewer, recovery_auditor;

-- Column mappings, saved once per bank
CREATE TABLE bank_mappings (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    mapping    jsonb NOT NULL CHECK (jsonb_typeof(mapping) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    version    integer NOT NULL DEFAULT 1
);
COMMENT ON TABLE bank_mappings IS
    'How a bank''s CSV statements are read: the header names of date, amount, currency, reference, payer and iban, the delimiter, the decimal mark, the date order and a default currency.';
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON bank_mappings
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
GRANT SELECT ON bank_mappings TO recovery_viewer, recovery_auditor;
SELECT pg_catalog.pg_extension_config_dump('bank_mappings', '');
SELECT pg_catalog.pg_extension_config_dump('bank_mappings_id_seq', '');

CREATE FUNCTION bank_mapping_save(name text, mapping jsonb) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    keys CONSTANT text[] := ARRAY['date', 'amount', 'currency', 'reference', 'payer', 'iban',
                                  'delimiter', 'decimal', 'date_order', 'default_currency'];
    bad text;
    saved recovery.bank_mappings;
BEGIN
    IF NOT recovery.caller_has_role('recovery_manager') THEN
        RAISE EXCEPTION 'permission denied to change bank mappings' USING ERRCODE = '42501';
    END IF;
    IF jsonb_typeof(mapping) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'a mapping is a JSON object' USING ERRCODE = 'PR004';
    END IF;
    SELECT string_agg(k, ', ') INTO bad FROM jsonb_each(mapping) AS e(k, v)
     WHERE NOT k = ANY (keys) OR jsonb_typeof(v) <> 'string';
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'the mapping has unknown keys or values that are not text: %', bad USING ERRCODE = 'PR004',
            HINT = 'The keys are ' || array_to_string(keys, ', ') || '; every value is text.';
    END IF;
    IF NOT mapping ? 'amount' OR NOT (mapping ? 'reference' OR mapping ? 'payer') THEN
        RAISE EXCEPTION 'a mapping names the amount column and the reference or payer column' USING ERRCODE = 'PR004';
    END IF;
    IF coalesce(mapping ->> 'decimal', '.') NOT IN ('.', ',')
       OR coalesce(mapping ->> 'date_order', 'DMY') NOT IN ('DMY', 'MDY', 'YMD')
       OR coalesce(mapping ->> 'delimiter', ',') NOT IN (',', ';', 'tab', '|') THEN
        RAISE EXCEPTION 'decimal is "." or ","; date_order DMY, MDY or YMD; delimiter ",", ";", "tab" or "|"'
            USING ERRCODE = 'PR004';
    END IF;
    IF mapping ? 'default_currency' AND NOT EXISTS (
           SELECT 1 FROM recovery.currencies c WHERE c.code = mapping ->> 'default_currency') THEN
        RAISE EXCEPTION 'unknown currency "%"', mapping ->> 'default_currency' USING ERRCODE = 'PR004';
    END IF;
    INSERT INTO recovery.bank_mappings AS m (name, mapping) VALUES (name, mapping)
    ON CONFLICT ON CONSTRAINT bank_mappings_name_key DO UPDATE
       SET mapping = excluded.mapping, updated_at = now(), version = m.version + 1
    RETURNING * INTO saved;
    RETURN to_jsonb(saved);
EXCEPTION
    WHEN check_violation THEN
        RAISE EXCEPTION 'a mapping''s name is lower case letters, digits and . _ -' USING ERRCODE = 'PR004';
END
$$;
COMMENT ON FUNCTION bank_mapping_save(text, jsonb) IS 'Creates or replaces the column mapping of a bank (managers).';
GRANT EXECUTE ON FUNCTION bank_mapping_save(text, jsonb) TO recovery_manager;

-- Extractions and the payments found in them
CREATE TABLE extractions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source      text NOT NULL CHECK (source IN ('statement', 'email', 'sms', 'text')),
    document_id bigint REFERENCES documents,
    case_id     bigint REFERENCES recovery_cases,
    mapping     text,
    size        bigint NOT NULL,
    sha256      bytea NOT NULL,
    summary     jsonb NOT NULL DEFAULT '{}',
    result      bytea,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    first_line_id bigint,
    last_line_id  bigint,
    booked_from   date,
    booked_to     date,
    has_undated   boolean NOT NULL DEFAULT false,
    customer_id   bigint REFERENCES customers
);
COMMENT ON TABLE extractions IS
    'Each statement, email, SMS or text read: its source, what was parsed (result), and what became of its payments (summary).';
COMMENT ON COLUMN extractions.first_line_id IS
    'Its lines have ids from first_line_id to last_line_id: WHERE l.id BETWEEN x.first_line_id AND x.last_line_id AND l.extraction_id = x.id finds them through the BRIN index.';
COMMENT ON COLUMN extractions.booked_from IS
    'The dates of its lines (booked_from to booked_to, has_undated): a later import compares its lines with those of the extractions its dates overlap.';
COMMENT ON COLUMN extractions.result IS
    'What an email, SMS or text said, parsed (JSON), sealed (pii_seal.c) for customer_id, or under the shared key of customer 0: read it in extractions_decrypted.';
COMMENT ON COLUMN extractions.customer_id IS 'The customer of the case the extraction was made for, if any: whose key seals its result.';
-- the parsed result holds names and message text: kept out of the trail
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON extractions
    FOR EACH ROW EXECUTE FUNCTION audit_trigger('result');
CREATE TRIGGER seal_personal BEFORE INSERT OR UPDATE ON extractions
    FOR EACH ROW EXECUTE FUNCTION pii_seal('result');
GRANT SELECT ON extractions TO recovery_viewer, recovery_auditor;
SELECT pg_catalog.pg_extension_config_dump('extractions', '');
SELECT pg_catalog.pg_extension_config_dump('extractions_id_seq', '');

CREATE VIEW extractions_decrypted AS
    SELECT x.id, x.source, x.document_id, x.case_id, x.mapping, x.size, x.sha256, x.summary,
           recovery.pii_open(x.result, 'extractions', 'result', x.id, coalesce(x.customer_id, 0))::jsonb AS result,
           x.created_by, x.created_at, x.first_line_id, x.last_line_id, x.booked_from, x.booked_to,
           x.has_undated
      FROM recovery.extractions x;
COMMENT ON VIEW extractions_decrypted IS 'recovery.extractions with the parsed result decrypted.';
GRANT SELECT ON extractions_decrypted TO recovery_viewer, recovery_auditor;

-- No foreign keys: a statement brings a million lines at once, and a
-- foreign key check per line cost more than the import itself (see
-- bench/extraction.sh).  Only the extension's functions write here, and
-- they take every id from the row it refers to; nothing is ever deleted
-- from extractions, cases, customers or receipts.
CREATE TABLE extraction_lines (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    extraction_id bigint NOT NULL,
    line_no       integer,
    span_start    integer,
    span_end      integer,
    booked_on     date,
    amount        bigint,
    currency      char(3),
    reference     text,
    payer         bytea,
    iban          bytea,
    confidence    real,
    fingerprint   bytea NOT NULL,
    status        text NOT NULL CHECK (status IN ('applied', 'review', 'unmatched', 'confirmed',
                                                 'rejected', 'ignored')),
    case_id       bigint,
    customer_id   bigint,
    score         numeric(3, 2),
    reason        text,
    receipt_id    bigint,
    decided_by    text,
    decided_at    timestamptz,
    iban_index    bytea
);
CREATE INDEX extraction_lines_id ON extraction_lines USING brin (id) WITH (pages_per_range = 16);
CREATE INDEX extraction_lines_iban_index ON extraction_lines (iban_index) WHERE iban_index IS NOT NULL;
CREATE INDEX extraction_lines_review ON extraction_lines (id) WHERE status = 'review';
CREATE INDEX extraction_lines_customer ON extraction_lines (customer_id) WHERE customer_id IS NOT NULL;
COMMENT ON TABLE extraction_lines IS
    'Payments found in extractions: matched to a case with a score and its reason, then applied, queued for review, or ignored (debits, unreadable lines); a fingerprint keeps a line from being imported twice.';
COMMENT ON COLUMN extraction_lines.fingerprint IS
    'SHA-256 of date, amount, currency, reference, payer, IBAN and the count of identical lines before it: a line whose fingerprint an earlier line of the same dates has is not imported again.';
COMMENT ON COLUMN extraction_lines.id IS
    'Unique: taken from the identity, in one range per import, only by the extension''s import; found through a BRIN index.';
COMMENT ON COLUMN extraction_lines.payer IS
    'Sealed (pii_seal.c), for the line''s customer, or under the shared key of customer 0 while it has none: read it in extraction_lines_decrypted.';
COMMENT ON COLUMN extraction_lines.iban IS 'Sealed as the payer is; iban_index finds it (statement_lines_by_iban).';
COMMENT ON COLUMN extraction_lines.iban_index IS 'Blind index of the IBAN: recovery.pii_blind_index(''iban'', iban).';
-- imports are bulk and derived from their source; decisions are audited
CREATE TRIGGER audit AFTER UPDATE OR DELETE ON extraction_lines
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
-- the import seals as it writes (extraction_import.c); a decision that
-- gives a line its customer moves its values to their key
CREATE TRIGGER seal_personal BEFORE UPDATE ON extraction_lines
    FOR EACH ROW EXECUTE FUNCTION pii_seal('payer', 'iban:iban_index');
GRANT SELECT ON extraction_lines TO recovery_viewer, recovery_auditor;
SELECT pg_catalog.pg_extension_config_dump('extraction_lines', '');
SELECT pg_catalog.pg_extension_config_dump('extraction_lines_id_seq', '');

CREATE VIEW extraction_lines_decrypted AS
    SELECT l.id, l.extraction_id, l.line_no, l.span_start, l.span_end, l.booked_on, l.amount,
           l.currency, l.reference,
           recovery.pii_open(l.payer, 'extraction_lines', 'payer', l.id, coalesce(l.customer_id, 0)) AS payer,
           recovery.pii_open(l.iban, 'extraction_lines', 'iban', l.id, coalesce(l.customer_id, 0)) AS iban,
           l.confidence, l.fingerprint, l.status, l.case_id, l.customer_id, l.score, l.reason,
           l.receipt_id, l.decided_by, l.decided_at, l.iban_index
      FROM recovery.extraction_lines l;
COMMENT ON VIEW extraction_lines_decrypted IS
    'recovery.extraction_lines with the payer and the IBAN decrypted (and the blind index, for lookups by IBAN).';
GRANT SELECT ON extraction_lines_decrypted TO recovery_viewer, recovery_auditor;

CREATE FUNCTION statement_lines_by_iban(iban text) RETURNS SETOF extraction_lines_decrypted
    LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT d.* FROM recovery.extraction_lines_decrypted d
     WHERE d.iban_index = recovery.pii_blind_index('iban', statement_lines_by_iban.iban)
     ORDER BY d.id
$$;
COMMENT ON FUNCTION statement_lines_by_iban(text) IS
    'The statement lines paid from an IBAN (spaces and case do not matter), through its blind index.';
GRANT EXECUTE ON FUNCTION statement_lines_by_iban(text) TO recovery_viewer, recovery_auditor;

-- Money recorded against the line's case as any payment is; a line the
-- case cannot take (closed, overpaid, another currency) goes to review.
CREATE FUNCTION reconcile_record(l extraction_lines, outcome text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    receipt recovery.receipts;
BEGIN
    BEGIN
        receipt := recovery.case_record_payment(l.case_id, l.amount, l.currency,
                       left(format('extraction %s line %s: %s', l.extraction_id, coalesce(l.line_no, 1),
                                   coalesce(l.reference, '')), 200),
                       coalesce(l.booked_on::timestamptz, now()));
    EXCEPTION WHEN sqlstate 'PR001' OR sqlstate 'PR005' OR sqlstate 'PR006' OR sqlstate 'PR004' THEN
        UPDATE recovery.extraction_lines x
           SET status = 'review', reason = x.reason || '; not applied: ' || SQLERRM
         WHERE x.id = l.id;
        RETURN false;
    END;
    UPDATE recovery.extraction_lines x
       SET status = outcome, receipt_id = receipt.id,
           decided_by = CASE WHEN outcome = 'confirmed' THEN recovery.task_worker() END,
           decided_at = CASE WHEN outcome = 'confirmed' THEN now() END
     WHERE x.id = l.id;
    RETURN true;
END
$$;

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
                                                'file', coalesce(a -> 'file', b -> 'file'),
                                                'format', coalesce(a -> 'format', b -> 'format'),
                                                'statement', coalesce(a -> 'statement', b -> 'statement')))
    END $$;

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
    INSERT INTO recovery.extractions (source, document_id, case_id, mapping, size, sha256, created_by,
                                      customer_id)
    VALUES (source, document_id, case_id, mapping, size, digest, recovery.task_worker(), target.customer_id)
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
           result = CASE WHEN extract_payments.source = 'statement' THEN NULL
                         ELSE convert_to(parsed::text, 'UTF8') END
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
              FROM (SELECT * FROM recovery.extraction_lines_decrypted l
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

-- A line as the queue shows it: the suggested case's balance and state.
CREATE VIEW reconciliation_lines AS
    SELECT l.id, l.extraction_id, x.source, l.line_no, l.booked_on, l.amount, l.currency,
           l.reference, l.payer, l.status, l.case_id, l.score, l.reason,
           c.balance AS case_balance, c.state AS case_state
      FROM extraction_lines_decrypted l
      JOIN extractions x ON x.id = l.extraction_id
      LEFT JOIN recovery_cases c ON c.id = l.case_id;
GRANT SELECT ON reconciliation_lines TO recovery_viewer, recovery_auditor;

CREATE FUNCTION reconciliation_line_for_decision(line_id bigint) RETURNS extraction_lines
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    l recovery.extraction_lines;
BEGIN
    IF NOT recovery.caller_has_role('recovery_agent') THEN
        RAISE EXCEPTION 'permission denied to decide on payments found' USING ERRCODE = '42501';
    END IF;
    SELECT * INTO l FROM recovery.extraction_lines x WHERE x.id = line_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'payment line % does not exist', line_id USING ERRCODE = 'PR003';
    END IF;
    IF l.status NOT IN ('review', 'unmatched') THEN
        RAISE EXCEPTION 'payment line % is % already', line_id, l.status USING ERRCODE = 'PR009',
            HINT = 'Only lines waiting for review are confirmed or rejected.';
    END IF;
    RETURN l;
END
$$;

-- The automation contract's extraction tasks, and their pg_cron job
CREATE FUNCTION perform_extraction_tasks() RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    task recovery.tasks;
    doc record;
    outcome jsonb;
    done integer := 0;
BEGIN
    IF recovery.restore_held() THEN
        RETURN 0;
    END IF;
    FOR task IN SELECT * FROM recovery.tasks t
                 WHERE t.kind = 'extraction' AND t.state = 'scheduled' AND t.run_at <= now()
                 ORDER BY t.run_at, t.id LIMIT 100 FOR UPDATE SKIP LOCKED LOOP
        BEGIN
            IF task.payload ->> 'source' = 'document' THEN
                SELECT d.id, d.case_id, d.content_type,
                       recovery.pii_open_bytes(d.content, 'documents', 'content', d.id, d.customer_id) AS content
                  INTO doc FROM recovery.documents d WHERE d.id = (task.payload ->> 'document_id')::bigint;
                outcome := recovery.extract_payments(CASE WHEN doc.content_type IN ('message/rfc822') THEN 'email'
                                                WHEN doc.content_type LIKE 'text/plain%' THEN 'text'
                                                ELSE 'statement' END,
                                           doc.content, task.payload ->> 'mapping',
                                           coalesce((task.payload ->> 'case_id')::bigint, doc.case_id), doc.id);
            ELSE
                outcome := recovery.extract_payments(task.payload ->> 'source',
                               CASE WHEN task.payload ? 'sealed_content'
                                    THEN recovery.pii_open_bytes(decode(task.payload ->> 'sealed_content', 'base64'),
                                             'tasks', 'content', task.id, recovery.extraction_task_customer(task.payload))
                                    -- scheduled before 0.13
                                    ELSE convert_to(task.payload ->> 'content', 'UTF8') END,
                               task.payload ->> 'mapping', (task.payload ->> 'case_id')::bigint);
            END IF;
            UPDATE recovery.tasks t
               SET state = 'done', attempts = t.attempts + 1, completed_at = now(), updated_at = now(),
                   result = outcome - 'parsed'
             WHERE t.id = task.id;
        EXCEPTION WHEN OTHERS THEN
            UPDATE recovery.tasks t
               SET state = 'dead', attempts = t.attempts + 1, last_error = SQLERRM, updated_at = now()
             WHERE t.id = task.id;
        END;
        done := done + 1;
    END LOOP;
    RETURN done;
END
$$;
COMMENT ON FUNCTION perform_extraction_tasks() IS
    'Performs due tasks of kind extraction (POST /api/v1/automation/extractions); pg_cron runs it every minute.';
GRANT EXECUTE ON FUNCTION perform_extraction_tasks() TO recovery_automation, recovery_admin;
