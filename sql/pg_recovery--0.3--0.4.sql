-- pg_recovery 0.4: extraction and reconciliation.  Bank statements (CSV),
-- remittance emails and SMS are parsed in C (extract_*.c); each payment
-- found is matched to a case (by case reference, invoice, customer and
-- amount, payer name) and applied through case_record_payment() when the
-- match is good enough, else it waits in a review queue for a person.
\echo Use "ALTER EXTENSION pg_recovery UPDATE TO '0.4'" to load this file. \quit

-------------------------------------------------------------------------------
-- The parsers
-------------------------------------------------------------------------------
CREATE FUNCTION parse_csv(content bytea, mapping jsonb DEFAULT NULL,
                          OUT line integer, OUT span_start integer, OUT span_end integer,
                          OUT booked_on date, OUT amount numeric, OUT amount_minor bigint,
                          OUT currency text, OUT reference text, OUT payer text, OUT iban text,
                          OUT confidence real, OUT fingerprint bytea, OUT problem text)
    RETURNS SETOF record
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'recovery_parse_csv';
COMMENT ON FUNCTION parse_csv(bytea, jsonb) IS
    'A CSV statement (RFC 4180; comma, semicolon or tab; UTF-8 or Windows-1252) as one row per record: the amount as read and exactly in minor units of its currency, the record''s fingerprint, and problem saying why a record is not a payment.';

CREATE FUNCTION parse_csv_summary() RETURNS jsonb
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'recovery_parse_csv_summary';
COMMENT ON FUNCTION parse_csv_summary() IS
    'What the last parse_csv() of this session read: records, encoding, delimiter.';

CREATE FUNCTION parse_text(content text) RETURNS jsonb
    LANGUAGE c IMMUTABLE STRICT AS 'MODULE_PATHNAME', 'recovery_parse_text';
COMMENT ON FUNCTION parse_text(text) IS
    'Amounts with currency, case and invoice references, dates and intents (paid, promise, dispute) in a text or SMS, each with its byte span and a confidence.';

CREATE FUNCTION parse_email(content bytea) RETURNS jsonb
    LANGUAGE c IMMUTABLE STRICT AS 'MODULE_PATHNAME', 'recovery_parse_email';
COMMENT ON FUNCTION parse_email(bytea) IS
    'An email (RFC 5322, MIME, through GMime): subject, from, date, text (text/plain, else text/html without tags), the text''s items, attachments in base64.';

CREATE INDEX payments_external_ref ON payments (external_ref);

-------------------------------------------------------------------------------
-- Column mappings, saved once per bank
-------------------------------------------------------------------------------
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

CREATE FUNCTION api_bank_mappings_list() RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT jsonb_build_object('items', coalesce(jsonb_agg(to_jsonb(m) ORDER BY m.name), '[]'))
          FROM recovery.bank_mappings m $$;

-------------------------------------------------------------------------------
-- Extractions and the payments found in them
-------------------------------------------------------------------------------
CREATE TABLE extractions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source      text NOT NULL CHECK (source IN ('statement', 'email', 'sms', 'text')),
    document_id bigint REFERENCES documents,
    case_id     bigint REFERENCES recovery_cases,
    mapping     text,
    size        bigint NOT NULL,
    sha256      bytea NOT NULL,
    summary     jsonb NOT NULL DEFAULT '{}',
    result      jsonb,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE extractions IS
    'Each statement, email, SMS or text read: its source, what was parsed (result), and what became of its payments (summary).';
-- the parsed result holds names and message text: kept out of the trail
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON extractions
    FOR EACH ROW EXECUTE FUNCTION audit_trigger('result');
GRANT SELECT ON extractions TO recovery_viewer, recovery_auditor;

-- No foreign keys: a statement brings a million lines at once, and a
-- foreign key check per line cost more than the import itself (see
-- bench/extraction.sh).  Only the extension's functions write here, and
-- they take every id from the row it refers to; nothing is ever deleted
-- from extractions, cases, customers or receipts.
CREATE TABLE extraction_lines (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    extraction_id bigint NOT NULL,
    line_no       integer,
    span_start    integer,
    span_end      integer,
    booked_on     date,
    amount        bigint,
    currency      char(3),
    reference     text,
    payer         text,
    iban          text,
    confidence    real,
    fingerprint   bytea NOT NULL UNIQUE,
    status        text NOT NULL CHECK (status IN ('applied', 'review', 'unmatched', 'confirmed',
                                                 'rejected', 'ignored')),
    case_id       bigint,
    customer_id   bigint,
    score         numeric(3, 2),
    reason        text,
    receipt_id    bigint,
    decided_by    text,
    decided_at    timestamptz
);
-- the lines of an extraction are written together: a BRIN index finds them
-- and costs an import next to nothing (a btree here cost 15% of it)
CREATE INDEX extraction_lines_extraction ON extraction_lines USING brin (extraction_id);
CREATE INDEX extraction_lines_queue ON extraction_lines (id) WHERE status IN ('review', 'unmatched');
COMMENT ON TABLE extraction_lines IS
    'Payments found in extractions: matched to a case with a score and its reason, then applied, queued for review, or ignored (debits, unreadable lines); a fingerprint keeps a line from being imported twice.';
COMMENT ON COLUMN extraction_lines.fingerprint IS
    'SHA-256 of date, amount, currency, reference, payer, IBAN and the count of identical lines before it: the same statement imported again adds nothing.';
-- imports are bulk and derived from their source; decisions are audited
CREATE TRIGGER audit AFTER UPDATE OR DELETE ON extraction_lines
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
GRANT SELECT ON extraction_lines TO recovery_viewer, recovery_auditor;

-- Matching, set-based, for the still unmatched lines of an extraction: one
-- pass over its lines, joined to the cases each rule points at; the best
-- rule wins.
CREATE FUNCTION reconcile_match(extraction_id bigint) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    UPDATE recovery.extraction_lines l
       SET case_id = m.case_id, customer_id = m.customer_id, score = m.score, reason = m.reason
      FROM (SELECT t.id,
                   coalesce(rc.id, inv.case_id, cust.case_id, payer.case_id) AS case_id,
                   coalesce(rc.customer_id, inv.customer_id, cust.customer_id, payer.customer_id) AS customer_id,
                   CASE WHEN rc.id IS NOT NULL THEN 1.00
                        WHEN inv.case_id IS NOT NULL THEN 0.95
                        WHEN cust.case_id IS NOT NULL THEN CASE WHEN t.amount = cust.balance THEN 0.90 ELSE 0.70 END
                        ELSE CASE WHEN t.amount = payer.balance THEN 0.80 ELSE 0.60 END END AS score,
                   CASE WHEN rc.id IS NOT NULL THEN 'case reference ' || recovery.case_reference(rc.id)
                        WHEN inv.case_id IS NOT NULL THEN 'invoice ' || inv.external_ref
                        WHEN cust.case_id IS NOT NULL
                        THEN 'customer ' || cust.external_ref
                             || CASE WHEN t.amount = cust.balance THEN ' and the balance' ELSE '' END
                        ELSE 'payer name' || CASE WHEN t.amount = payer.balance THEN ' and the balance' ELSE '' END
                   END AS reason
              FROM (SELECT x.id, x.amount, x.currency, lower(btrim(x.payer)) AS payer,
                           nullif(substring(x.reference FROM '(?i)\mRC[- ]?0*([0-9]{1,12})\M'), '')::bigint AS rc,
                           upper(substring(x.reference FROM '(?i)\m(INV-[0-9A-Z-]+)')) AS inv,
                           upper(substring(x.reference FROM '(?i)\m(CUST-[0-9]+)\M')) AS cust
                      FROM recovery.extraction_lines x
                     WHERE x.extraction_id = reconcile_match.extraction_id AND x.status = 'unmatched') t
              -- 1. the case reference the system issues (RC-000042)
              LEFT JOIN recovery.recovery_cases rc ON rc.id = t.rc AND rc.currency = t.currency
              -- 2. an invoice that is in a case (INV-2026-000123)
              LEFT JOIN recovery.payments inv ON inv.external_ref = t.inv AND inv.case_id IS NOT NULL
                                             AND inv.currency = t.currency
              -- 3. the customer's number, with the balance of their open case
              LEFT JOIN (SELECT cu.external_ref, c.id AS case_id, c.customer_id, c.currency, c.balance
                           FROM recovery.customers cu
                           JOIN recovery.recovery_cases c ON c.customer_id = cu.id
                          WHERE NOT recovery.case_state_is_terminal(c.state)) cust
                     ON cust.external_ref = t.cust AND cust.currency = t.currency
              -- 4. the payer's name, when one open case in the currency has it
              LEFT JOIN (SELECT lower(cu.name) AS name, c.currency, min(c.id) AS case_id,
                                min(cu.id) AS customer_id, min(c.balance) AS balance
                           FROM recovery.customers cu
                           JOIN recovery.recovery_cases c ON c.customer_id = cu.id
                          WHERE NOT recovery.case_state_is_terminal(c.state) AND cu.erased_at IS NULL
                          GROUP BY lower(cu.name), c.currency HAVING count(*) = 1) payer
                     ON payer.name = t.payer AND payer.currency = t.currency
             WHERE rc.id IS NOT NULL OR inv.case_id IS NOT NULL OR cust.case_id IS NOT NULL
                OR payer.case_id IS NOT NULL) m
     WHERE l.id = m.id;
END
$$;

-- Applies the lines scored at least recovery.reconcile_auto_apply; the
-- others with a candidate wait for review.
CREATE FUNCTION reconcile_apply(extraction_id bigint) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    threshold numeric := coalesce(nullif(current_setting('recovery.reconcile_auto_apply', true), '')::numeric, 0.90);
    l recovery.extraction_lines;
BEGIN
    FOR l IN SELECT * FROM recovery.extraction_lines x
              WHERE x.extraction_id = reconcile_apply.extraction_id AND x.status = 'unmatched'
                AND x.case_id IS NOT NULL ORDER BY x.id LOOP
        IF l.score >= threshold THEN
            PERFORM recovery.reconcile_record(l, 'applied');
        ELSE
            UPDATE recovery.extraction_lines x SET status = 'review' WHERE x.id = l.id;
        END IF;
    END LOOP;
END
$$;

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
                                   coalesce(l.reference, l.payer, '')), 200),
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

-- Lines from the rows of a parsed CSV (amounts in minor units and the
-- fingerprints come from C); returns how many records were read and how
-- many were new.
CREATE FUNCTION extraction_add_csv(extraction_id bigint, content bytea, mapping jsonb,
                                   OUT records bigint, OUT added bigint, OUT summary jsonb)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    INSERT INTO recovery.extraction_lines
           (extraction_id, line_no, span_start, span_end, booked_on, amount, currency, reference,
            payer, iban, confidence, fingerprint, status, reason)
    SELECT extraction_add_csv.extraction_id, p.line, p.span_start, p.span_end, p.booked_on,
           p.amount_minor, CASE WHEN length(p.currency) = 3 THEN p.currency END, left(p.reference, 1000),
           left(p.payer, 500),
           left(p.iban, 64), p.confidence, p.fingerprint,
           CASE WHEN p.problem IS NOT NULL OR p.amount_minor <= 0 THEN 'ignored' ELSE 'unmatched' END,
           coalesce(p.problem, CASE WHEN p.amount_minor <= 0 THEN 'money paid out, not received' END)
      FROM recovery.parse_csv(content, mapping) AS p
    ON CONFLICT (fingerprint) DO NOTHING;
    GET DIAGNOSTICS added = ROW_COUNT;
    summary := recovery.parse_csv_summary();
    records := (summary ->> 'records')::bigint;
END
$$;

-- One line from what a text says: its first amount, its references.
CREATE FUNCTION extraction_add_text(extraction_id bigint, items jsonb, source_digest bytea,
                                    case_id bigint) RETURNS bigint
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
    added bigint;
BEGIN
    IF amount IS NULL OR intent IN ('promise', 'dispute') THEN
        RETURN 0;      -- not money received; the result keeps what was said
    END IF;
    SELECT c.minor_units INTO minor_units FROM recovery.currencies c WHERE c.code = amount ->> 'currency';
    minor := (amount ->> 'value')::numeric * (10::numeric ^ coalesce(minor_units, 0));
    IF case_id IS NOT NULL AND refs IS NULL THEN
        refs := recovery.case_reference(case_id);
    END IF;
    INSERT INTO recovery.extraction_lines
           (extraction_id, span_start, span_end, booked_on, amount, currency, reference, confidence,
            fingerprint, status, reason)
    VALUES (extraction_add_text.extraction_id, (amount ->> 'start')::integer, (amount ->> 'end')::integer,
            coalesce(booked, current_date),
            CASE WHEN minor = trunc(minor) AND abs(minor) < 1e15 THEN minor::bigint END,
            amount ->> 'currency', refs, (amount ->> 'confidence')::real,
            sha256(source_digest || convert_to(concat_ws('|', amount ->> 'value', amount ->> 'currency', refs), 'UTF8')),
            CASE WHEN minor_units IS NULL OR minor <> trunc(minor) OR minor <= 0 THEN 'ignored' ELSE 'unmatched' END,
            CASE WHEN minor_units IS NULL THEN 'unknown currency'
                 WHEN minor <> trunc(minor) THEN 'more decimals than the currency has'
                 WHEN minor <= 0 THEN 'not money received' END)
    ON CONFLICT (fingerprint) DO NOTHING;
    GET DIAGNOSTICS added = ROW_COUNT;
    RETURN added;
END
$$;

CREATE FUNCTION extract_payments(source text, content bytea, mapping text DEFAULT NULL,
                        case_id bigint DEFAULT NULL, document_id bigint DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    map jsonb;
    ex recovery.extractions;
    parsed jsonb;
    added bigint := 0;
    att jsonb;
    kept jsonb := '[]';
    target recovery.recovery_cases;
    counts jsonb;
    outcome jsonb;
    has_csv boolean := false;
    attachments jsonb;
    records bigint;
    file jsonb;
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

    INSERT INTO recovery.extractions (source, document_id, case_id, mapping, size, sha256, created_by)
    VALUES (source, document_id, case_id, mapping, length(content), sha256(content), recovery.task_worker())
    RETURNING * INTO ex;

    IF source = 'statement' THEN
        SELECT r.records, r.added, r.summary INTO records, added, file FROM recovery.extraction_add_csv(ex.id, content, map) r;
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
                added := added + (recovery.extraction_add_csv(ex.id, decode(att ->> 'content_base64', 'base64'), map)).added;
                has_csv := true;
            END IF;
        END LOOP;
        IF NOT has_csv THEN
            added := recovery.extraction_add_text(ex.id, parsed -> 'items', ex.sha256, case_id);
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
        added := recovery.extraction_add_text(ex.id, parsed -> 'items', ex.sha256, case_id);
    END IF;

    -- a case given with the text is where its money goes, unless a reference says otherwise
    IF case_id IS NOT NULL THEN
        UPDATE recovery.extraction_lines l SET reference = coalesce(l.reference, recovery.case_reference(extract_payments.case_id))
         WHERE l.extraction_id = ex.id;
    END IF;
    PERFORM recovery.reconcile_match(ex.id);
    PERFORM recovery.reconcile_apply(ex.id);

    -- an email's attachments are kept with the case its money went to
    IF source = 'email' THEN
        SELECT c.* INTO target FROM recovery.recovery_cases c
         WHERE c.id = coalesce(extract_payments.case_id, (SELECT min(l.case_id) FROM recovery.extraction_lines l
                                          WHERE l.extraction_id = ex.id AND l.case_id IS NOT NULL));
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

    SELECT jsonb_object_agg(s.status, s.n) INTO counts
      FROM (SELECT l.status, count(*) AS n FROM recovery.extraction_lines l
             WHERE l.extraction_id = ex.id GROUP BY l.status) s;
    outcome := jsonb_build_object(
        'lines', added, 'by_status', coalesce(counts, '{}'),
        'duplicates', records - added,
        'file', file - 'records',
        'documents', kept);
    UPDATE recovery.extractions x SET summary = outcome,
           result = CASE WHEN extract_payments.source = 'statement' THEN NULL ELSE parsed END
     WHERE x.id = ex.id;
    RETURN jsonb_build_object('id', ex.id, 'source', source) || outcome
           || jsonb_build_object('parsed', CASE WHEN source = 'statement' THEN NULL ELSE parsed END);
END
$$;
COMMENT ON FUNCTION extract_payments(text, bytea, text, bigint, bigint) IS
    'Reads a statement (CSV, with a bank mapping or the usual header names), an email, an SMS or a text; matches each payment found to a case and applies it above recovery.reconcile_auto_apply, else queues it for review; a line imported before is skipped.';

CREATE FUNCTION api_extract(source text, content text, mapping text DEFAULT NULL,
                            case_id bigint DEFAULT NULL) RETURNS jsonb
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT recovery.extract_payments(source, convert_to(content, 'UTF8'), mapping, case_id) $$;
COMMENT ON FUNCTION api_extract(text, text, text, bigint) IS
    'POST /api/v1/extractions: {"source", "content", "mapping", "case_id"}.';

CREATE FUNCTION api_extract_statement(content bytea, mapping text DEFAULT NULL) RETURNS jsonb
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT recovery.extract_payments('statement', content, mapping) $$;
COMMENT ON FUNCTION api_extract_statement(bytea, text) IS
    'POST /api/v1/extractions/statements?mapping=: a CSV statement as the raw body, in any encoding.';

CREATE FUNCTION api_extraction_get(extraction_id bigint) RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    extraction jsonb;
BEGIN
    SELECT to_jsonb(x) - 'sha256' || jsonb_build_object('sha256', encode(x.sha256, 'hex'),
               'lines', (SELECT coalesce(jsonb_agg(to_jsonb(l) - 'fingerprint' ORDER BY l.id), '[]')
                           FROM (SELECT * FROM recovery.extraction_lines l
                                  WHERE l.extraction_id = x.id ORDER BY l.id LIMIT 500) l))
      INTO extraction FROM recovery.extractions x WHERE x.id = extraction_id;
    IF extraction IS NULL THEN
        RAISE EXCEPTION 'extraction % does not exist', extraction_id USING ERRCODE = 'PR003';
    END IF;
    RETURN extraction;
END
$$;
COMMENT ON FUNCTION api_extraction_get(bigint) IS 'GET /api/v1/extractions/{id}: the extraction and its first 500 lines.';

-------------------------------------------------------------------------------
-- The review queue
-------------------------------------------------------------------------------
CREATE FUNCTION api_reconciliation_queue(status text DEFAULT NULL, cursor text DEFAULT NULL,
                                         "limit" integer DEFAULT NULL, extraction_id bigint DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    page_size integer := recovery.page_size("limit");
    after bigint := (recovery.cursor_decode(cursor) ->> 'id')::bigint;
    items jsonb;
BEGIN
    IF status IS NOT NULL AND status NOT IN ('review', 'unmatched') THEN
        RAISE EXCEPTION 'status is review or unmatched' USING ERRCODE = 'PR004';
    END IF;
    SELECT coalesce(jsonb_agg(to_jsonb(q) ORDER BY q.id), '[]') INTO items
      FROM (SELECT l.id, l.extraction_id, x.source, l.line_no, l.booked_on, l.amount, l.currency,
                   l.reference, l.payer, l.status, l.case_id, l.score, l.reason,
                   c.balance AS case_balance, c.state AS case_state
              FROM recovery.extraction_lines l
              JOIN recovery.extractions x ON x.id = l.extraction_id
              LEFT JOIN recovery.recovery_cases c ON c.id = l.case_id
             WHERE l.status IN ('review', 'unmatched')
               AND (api_reconciliation_queue.status IS NULL OR l.status = api_reconciliation_queue.status)
               AND (api_reconciliation_queue.extraction_id IS NULL
                    OR l.extraction_id = api_reconciliation_queue.extraction_id)
               AND (after IS NULL OR l.id > after)
             ORDER BY l.id LIMIT page_size) q;
    RETURN recovery.page_of(items, page_size, jsonb_build_object('id', items -> -1 -> 'id'));
END
$$;
COMMENT ON FUNCTION api_reconciliation_queue(text, text, integer, bigint) IS
    'GET /api/v1/reconciliation: payments found that wait for a person, oldest first, with the suggested case and why; of one extraction if given.';

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
    RETURN (SELECT to_jsonb(x) - 'fingerprint' FROM recovery.extraction_lines x WHERE x.id = line_id);
END
$$;
COMMENT ON FUNCTION api_reconciliation_confirm(bigint, bigint) IS
    'POST /api/v1/reconciliation/{id}/confirm: applies the payment to the suggested case, or to case_id.';

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
    RETURN (SELECT to_jsonb(x) - 'fingerprint' FROM recovery.extraction_lines x WHERE x.id = line_id);
END
$$;
COMMENT ON FUNCTION api_reconciliation_reject(bigint, text) IS
    'POST /api/v1/reconciliation/{id}/reject: {"reason"}; nothing is applied.';

-------------------------------------------------------------------------------
-- The automation contract's extraction tasks, and their pg_cron job
-------------------------------------------------------------------------------
CREATE FUNCTION perform_extraction_tasks() RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    task recovery.tasks;
    doc recovery.documents;
    outcome jsonb;
    done integer := 0;
BEGIN
    FOR task IN SELECT * FROM recovery.tasks t
                 WHERE t.kind = 'extraction' AND t.state = 'scheduled' AND t.run_at <= now()
                 ORDER BY t.run_at, t.id LIMIT 100 FOR UPDATE SKIP LOCKED LOOP
        BEGIN
            IF task.payload ->> 'source' = 'document' THEN
                SELECT * INTO doc FROM recovery.documents d WHERE d.id = (task.payload ->> 'document_id')::bigint;
                outcome := recovery.extract_payments(CASE WHEN doc.content_type IN ('message/rfc822') THEN 'email'
                                                WHEN doc.content_type LIKE 'text/plain%' THEN 'text'
                                                ELSE 'statement' END,
                                           doc.content, task.payload ->> 'mapping',
                                           coalesce((task.payload ->> 'case_id')::bigint, doc.case_id), doc.id);
            ELSE
                outcome := recovery.extract_payments(task.payload ->> 'source', convert_to(task.payload ->> 'content', 'UTF8'),
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

CREATE OR REPLACE FUNCTION job_definitions(OUT name text, OUT schedule text, OUT command text)
    RETURNS SETOF record
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$ VALUES ('recovery-reminders', '* * * * *', 'CALL recovery.run_reminders()'),
                 ('recovery-promises', '*/15 * * * *', 'SELECT recovery.check_promises()'),
                 ('recovery-extractions', '* * * * *', 'SELECT recovery.perform_extraction_tasks()'),
                 ('recovery-retention', '17 3 * * *', 'SELECT recovery.idempotency_purge()') $$;

-- erasure reaches what was read about the customer
CREATE OR REPLACE FUNCTION customer_erased() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    UPDATE recovery.dunning_holds h SET reason = '[erased]'
     WHERE h.customer_id = NEW.id AND h.reason <> '[erased]';
    -- nothing queued reaches an erased customer
    UPDATE recovery.notifications n SET status = 'cancelled', cancel_reason = 'the customer was erased'
     WHERE n.customer_id = NEW.id AND n.status IN ('queued', 'failed');
    UPDATE recovery.extraction_lines l SET payer = '[erased]', iban = NULL, reference = '[erased]'
     WHERE l.customer_id = NEW.id AND l.payer IS DISTINCT FROM '[erased]';
    RETURN NULL;
END
$$;

-------------------------------------------------------------------------------
-- What the web app asks instead of knowing: what the caller may do, and
-- which states close a case
-------------------------------------------------------------------------------
CREATE FUNCTION caller_may() RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT jsonb_build_object(
        'act', recovery.caller_has_role('recovery_agent'),
        'manage', recovery.caller_has_role('recovery_manager'),
        'audit', recovery.caller_has_role('recovery_auditor'),
        'administer', recovery.caller_has_role('recovery_admin')) $$;
COMMENT ON FUNCTION caller_may() IS
    'What the role in effect may do: act on cases (agents), manage templates, policies and dead letters (managers), read the audit trail (auditors), administer (admins).';

CREATE OR REPLACE FUNCTION api_me() RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT jsonb_build_object(
        'user_id', u.id,
        'email', u.email,
        'display_name', u.display_name,
        'role', current_user,
        'may', recovery.caller_may(),
        'actor', nullif(current_setting('recovery.actor'), ''),
        'authenticated_by', CASE WHEN current_setting('recovery.user_id') = ''
                                 THEN 'api_key' ELSE 'token' END,
        'request_id', nullif(current_setting('recovery.request_id'), ''),
        'read_only', current_setting('transaction_read_only')::boolean)
    FROM (SELECT 1) AS one
    LEFT JOIN recovery.users AS u
           ON u.id = nullif(current_setting('recovery.user_id'), '')::bigint
$$;

CREATE FUNCTION api_case_states() RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT jsonb_build_object('items', jsonb_agg(to_jsonb(s))) FROM recovery.case_states() s $$;
COMMENT ON FUNCTION api_case_states() IS
    'GET /api/v1/case-states: the states of a case, whether each closes it, and what it means.';

-------------------------------------------------------------------------------
-- Privileges of what 0.4 added
-------------------------------------------------------------------------------
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA recovery FROM PUBLIC;
GRANT EXECUTE ON FUNCTION parse_csv(bytea, jsonb), parse_csv_summary(), parse_text(text), parse_email(bytea),
                          api_bank_mappings_list(), api_extraction_get(bigint),
                          caller_may(), api_case_states(),
                          api_reconciliation_queue(text, text, integer, bigint)
    TO recovery_viewer, recovery_auditor;
GRANT EXECUTE ON FUNCTION bank_mapping_save(text, jsonb) TO recovery_manager;
GRANT EXECUTE ON FUNCTION extract_payments(text, bytea, text, bigint, bigint), api_extract(text, text, text, bigint),
                          api_extract_statement(bytea, text)
    TO recovery_agent, recovery_automation;
GRANT EXECUTE ON FUNCTION api_reconciliation_confirm(bigint, bigint), api_reconciliation_reject(bigint, text)
    TO recovery_agent;
GRANT EXECUTE ON FUNCTION perform_extraction_tasks() TO recovery_automation, recovery_admin;
