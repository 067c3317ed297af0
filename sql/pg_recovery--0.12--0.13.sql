-- pg_recovery 0.12 -> 0.13: the rest of the personal data sealed.  Case
-- event reasons and the details that are not the system's own (moved to
-- case_events.personal_details), dunning hold reasons, the parsed text of
-- emails and SMS (extractions.result), and statement lines' payer and IBAN
-- (with a blind index) become sealed bytea, read through the new
-- *_decrypted views; a line no case matched is sealed under the shared key
-- of customer 0.  Delivery errors keep no address or phone number.  As in
-- 0.12, this script needs no key: the values stay as they are until
-- CALL recovery.encrypt_existing() seals them (scripts/cluster.sh does).
\echo Use "ALTER EXTENSION pg_recovery UPDATE TO '0.13'" to load this file. \quit

-- only the storage changes here: no audit row, no live event
SET LOCAL session_replication_role = replica;

-- case events
ALTER TABLE case_events ALTER COLUMN reason TYPE bytea USING convert_to(reason, 'UTF8'),
                        ADD COLUMN personal_details bytea;
COMMENT ON COLUMN case_events.reason IS 'Sealed (pii_seal.c): read it decrypted in case_events_decrypted.';
COMMENT ON COLUMN case_events.details IS
    'The details the system reads (amounts, dates, ids: event_details_clear()), in clear; the rest of what was sent is in personal_details.';
COMMENT ON COLUMN case_events.personal_details IS
    'Sealed: the details that are not the system''s own (the reason as sent, any other field), a JSON object; NULL when there are none.';

-- An event's details are what the client sent with it: the fields the
-- system itself reads and writes (money, dates, ids) stay clear for
-- reports; the reason and anything else may be personal and are sealed.
-- The trigger below asks for every event, payments included: one jsonb
-- operator answers.
CREATE FUNCTION event_details_personal(details jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE WHEN jsonb_typeof(details) = 'object'
                THEN nullif(details - '{amount,due_date,instalments,grace_days,payment_id,status,receipt_id,allocated,balance,notification_id,channel}'::text[],
                            '{}') END
$$;
COMMENT ON FUNCTION event_details_personal(jsonb) IS
    'The fields of an event''s details that are sealed: all but amount, due_date, instalments, grace_days, payment_id, status, receipt_id, allocated, balance, notification_id and channel (the reason, any field a client adds); NULL when there are none.';
GRANT EXECUTE ON FUNCTION event_details_personal(jsonb) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION event_details_clear(details jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE WHEN jsonb_typeof(details) = 'object'
                THEN details - ARRAY(SELECT jsonb_object_keys(recovery.event_details_personal(details)))
                ELSE '{}' END
$$;
COMMENT ON FUNCTION event_details_clear(jsonb) IS
    'The fields of an event''s details kept in clear: those event_details_personal() leaves out.';
GRANT EXECUTE ON FUNCTION event_details_clear(jsonb) TO recovery_viewer, recovery_auditor;

-- Before the seal: the personal details move to their sealed column, and
-- an erased customer's event keeps only the erasure's words.
CREATE FUNCTION case_event_personal() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    personal jsonb := recovery.event_details_personal(NEW.details);
BEGIN
    IF personal IS NOT NULL THEN
        IF NEW.personal_details IS NOT NULL THEN
            personal := recovery.pii_open(NEW.personal_details, 'case_events', 'personal_details',
                                          NEW.id, NEW.customer_id)::jsonb || personal;
        END IF;
        NEW.details := recovery.event_details_clear(NEW.details);
        NEW.personal_details := convert_to(personal::text, 'UTF8');
    END IF;
    IF (NOT recovery.pii_is_sealed(NEW.reason) OR NOT recovery.pii_is_sealed(NEW.personal_details))
       AND recovery.pii_key_destroyed(NEW.customer_id) THEN
        IF NOT recovery.pii_is_sealed(NEW.reason) THEN
            NEW.reason := convert_to('[erased]', 'UTF8');
        END IF;
        IF NOT recovery.pii_is_sealed(NEW.personal_details) THEN
            NEW.personal_details := NULL;
        END IF;
    END IF;
    RETURN NEW;
END
$$;
-- triggers fire by name: this one, then the seal
CREATE TRIGGER check_personal BEFORE INSERT OR UPDATE ON case_events
    FOR EACH ROW EXECUTE FUNCTION case_event_personal();
CREATE TRIGGER seal_personal BEFORE INSERT OR UPDATE ON case_events
    FOR EACH ROW EXECUTE FUNCTION pii_seal('reason', 'personal_details');

CREATE VIEW case_events_decrypted AS
    SELECT e.id, e.case_id, e.customer_id, e.event, e.from_state, e.to_state, e.actor,
           e.actor_user_id, e.occurred_at,
           recovery.pii_open(e.reason, 'case_events', 'reason', e.id, e.customer_id) AS reason,
           e.details || coalesce(recovery.pii_open(e.personal_details, 'case_events', 'personal_details',
                                                   e.id, e.customer_id)::jsonb, '{}') AS details,
           e.request_id
      FROM recovery.case_events e;
COMMENT ON VIEW case_events_decrypted IS 'recovery.case_events with the reason decrypted and the details whole again.';
GRANT SELECT ON case_events_decrypted TO recovery_viewer, recovery_auditor;

-- dunning holds
ALTER TABLE dunning_holds DROP CONSTRAINT dunning_holds_reason_check,
                          ALTER COLUMN reason TYPE bytea USING convert_to(reason, 'UTF8'),
                          ADD CONSTRAINT dunning_holds_reason_check CHECK (octet_length(reason) > 0);
COMMENT ON COLUMN dunning_holds.reason IS
    'Sealed (pii_seal.c): read it decrypted in dunning_holds_decrypted; 1 to 2000 characters (api_dunning_hold).';
CREATE TRIGGER seal_personal BEFORE INSERT OR UPDATE ON dunning_holds
    FOR EACH ROW EXECUTE FUNCTION pii_seal('reason');

CREATE VIEW dunning_holds_decrypted AS
    SELECT h.id, h.customer_id, h.case_id,
           recovery.pii_open(h.reason, 'dunning_holds', 'reason', h.id, h.customer_id) AS reason,
           h.starts_at, h.ends_at, h.created_by, h.created_at, h.released_at, h.released_by
      FROM recovery.dunning_holds h;
COMMENT ON VIEW dunning_holds_decrypted IS 'recovery.dunning_holds with the reason decrypted.';
GRANT SELECT ON dunning_holds_decrypted TO recovery_viewer, recovery_auditor;

-- extractions: the parsed text sealed for the case's customer
ALTER TABLE extractions ALTER COLUMN result TYPE bytea USING convert_to(result::text, 'UTF8'),
                        ADD COLUMN customer_id bigint REFERENCES customers;
UPDATE extractions x SET customer_id = c.customer_id FROM recovery_cases c WHERE c.id = x.case_id;
-- what an erased customer's email or SMS said was kept until now
UPDATE extractions x SET result = NULL FROM customers c
 WHERE c.id = x.customer_id AND c.erased_at IS NOT NULL AND x.result IS NOT NULL;
COMMENT ON COLUMN extractions.result IS
    'What an email, SMS or text said, parsed (JSON), sealed (pii_seal.c) for customer_id, or under the shared key of customer 0: read it in extractions_decrypted.';
COMMENT ON COLUMN extractions.customer_id IS 'The customer of the case the extraction was made for, if any: whose key seals its result.';
CREATE TRIGGER seal_personal BEFORE INSERT OR UPDATE ON extractions
    FOR EACH ROW EXECUTE FUNCTION pii_seal('result');

CREATE VIEW extractions_decrypted AS
    SELECT x.id, x.source, x.document_id, x.case_id, x.mapping, x.size, x.sha256, x.summary,
           recovery.pii_open(x.result, 'extractions', 'result', x.id, coalesce(x.customer_id, 0))::jsonb AS result,
           x.created_by, x.created_at, x.first_line_id, x.last_line_id, x.booked_from, x.booked_to,
           x.has_undated
      FROM recovery.extractions x;
COMMENT ON VIEW extractions_decrypted IS 'recovery.extractions with the parsed result decrypted.';
GRANT SELECT ON extractions_decrypted TO recovery_viewer, recovery_auditor;

-- statement lines: payer and IBAN sealed, the IBAN with a blind index
DROP VIEW reconciliation_lines;
ALTER TABLE extraction_lines ALTER COLUMN payer TYPE bytea USING convert_to(payer, 'UTF8'),
                             ALTER COLUMN iban TYPE bytea USING convert_to(iban, 'UTF8'),
                             ADD COLUMN iban_index bytea;
CREATE INDEX extraction_lines_iban_index ON extraction_lines (iban_index) WHERE iban_index IS NOT NULL;
COMMENT ON COLUMN extraction_lines.payer IS
    'Sealed (pii_seal.c), for the line''s customer, or under the shared key of customer 0 while it has none: read it in extraction_lines_decrypted.';
COMMENT ON COLUMN extraction_lines.iban IS 'Sealed as the payer is; iban_index finds it (statement_lines_by_iban).';
COMMENT ON COLUMN extraction_lines.iban_index IS 'Blind index of the IBAN: recovery.pii_blind_index(''iban'', iban).';
-- the import seals as it writes (extraction_import.c); a decision that
-- gives a line its customer moves its values to their key
CREATE TRIGGER seal_personal BEFORE UPDATE ON extraction_lines
    FOR EACH ROW EXECUTE FUNCTION pii_seal('payer', 'iban:iban_index');

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

-- A line as the queue shows it: the suggested case's balance and state.
CREATE VIEW reconciliation_lines AS
    SELECT l.id, l.extraction_id, x.source, l.line_no, l.booked_on, l.amount, l.currency,
           l.reference, l.payer, l.status, l.case_id, l.score, l.reason,
           c.balance AS case_balance, c.state AS case_state
      FROM extraction_lines_decrypted l
      JOIN extractions x ON x.id = l.extraction_id
      LEFT JOIN recovery_cases c ON c.id = l.case_id;
GRANT SELECT ON reconciliation_lines TO recovery_viewer, recovery_auditor;

RESET session_replication_role;

-- readers and writers of the sealed columns
CREATE OR REPLACE FUNCTION reconcile_record(l extraction_lines, outcome text) RETURNS boolean
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

CREATE OR REPLACE FUNCTION extract_payments(source text, content bytea, mapping text DEFAULT NULL,
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

CREATE OR REPLACE FUNCTION extract_preview(source text, content bytea, mapping text DEFAULT NULL,
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

CREATE OR REPLACE FUNCTION api_extraction_get(extraction_id bigint) RETURNS jsonb
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

CREATE OR REPLACE FUNCTION api_reconciliation_confirm(line_id bigint, case_id bigint DEFAULT NULL) RETURNS jsonb
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

CREATE OR REPLACE FUNCTION api_reconciliation_reject(line_id bigint, reason text) RETURNS jsonb
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

CREATE OR REPLACE FUNCTION perform_extraction_tasks() RETURNS integer
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

-- whose key seals an extraction task's message: its case's customer, else
-- the shared key of customer 0
CREATE FUNCTION extraction_task_customer(payload jsonb) RETURNS bigint
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT coalesce((SELECT c.customer_id FROM recovery.recovery_cases c
                      WHERE c.id = (payload ->> 'case_id')::bigint), 0)
$$;

CREATE OR REPLACE FUNCTION api_extraction_schedule(source text, document_id bigint DEFAULT NULL,
                                        content text DEFAULT NULL, case_id bigint DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    task jsonb;
    sealed jsonb;
BEGIN
    PERFORM recovery.task_require_automation();
    IF source IS NULL OR source NOT IN ('document', 'email', 'sms', 'text') THEN
        RAISE EXCEPTION 'source is document, email, sms or text' USING ERRCODE = 'PR004';
    END IF;
    IF source = 'document' THEN
        IF document_id IS NULL OR content IS NOT NULL THEN
            RAISE EXCEPTION 'a document extraction takes document_id, not content' USING ERRCODE = 'PR004';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM recovery.documents d WHERE d.id = document_id AND d.content IS NOT NULL) THEN
            RAISE EXCEPTION 'document % does not exist', document_id USING ERRCODE = 'PR003';
        END IF;
    ELSIF content IS NULL OR length(content) = 0 OR length(content) > 1048576 THEN
        RAISE EXCEPTION 'an % extraction takes content of 1 byte to 1 MiB', source USING ERRCODE = 'PR004';
    END IF;
    IF case_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM recovery.recovery_cases c WHERE c.id = case_id) THEN
        RAISE EXCEPTION 'recovery case % does not exist', case_id USING ERRCODE = 'PR003';
    END IF;
    task := recovery.api_task_schedule('extraction', now(),
                                       jsonb_strip_nulls(jsonb_build_object(
                                           'source', source, 'document_id', document_id, 'case_id', case_id)));
    IF content IS NOT NULL THEN
        -- the message is personal data: sealed for the task's row, as an
        -- extraction's result is (perform_extraction_tasks opens it)
        UPDATE recovery.tasks t
           SET payload = t.payload || jsonb_build_object('sealed_content', encode(recovery.pii_reseal(
                             convert_to(content, 'UTF8'), 'tasks', 'content', t.id,
                             recovery.extraction_task_customer(t.payload)), 'base64'))
         WHERE t.id = (task ->> 'id')::bigint
        RETURNING t.payload INTO sealed;
        task := task || jsonb_build_object('payload', sealed);
    END IF;
    RETURN task;
END
$$;
COMMENT ON FUNCTION api_extraction_schedule(text, bigint, text, bigint) IS
    'POST /api/v1/automation/extractions: schedules a task of kind extraction for a document, an email, an SMS or a text.';
GRANT EXECUTE ON FUNCTION api_extraction_schedule(text, bigint, text, bigint) TO recovery_automation, recovery_admin;

CREATE OR REPLACE FUNCTION api_case_timeline(case_id bigint) RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT coalesce(jsonb_agg(t.entry ORDER BY t.at, t.kind, t.id), '[]')
    FROM (
        SELECT 'event' AS kind, e.id, e.occurred_at AS at,
               jsonb_build_object('kind', 'event', 'id', e.id, 'at', e.occurred_at, 'event', e.event,
                                  'from_state', e.from_state, 'to_state', e.to_state,
                                  'actor', e.actor, 'reason', e.reason, 'details', e.details) AS entry
          FROM recovery.case_events_decrypted AS e WHERE e.case_id = api_case_timeline.case_id
        UNION ALL
        SELECT 'promise', p.id, p.created_at,
               jsonb_build_object('kind', 'promise', 'id', p.id, 'at', p.created_at,
                                  'promise_kind', p.kind, 'instalment_no', p.instalment_no,
                                  'amount', p.amount, 'currency', p.currency,
                                  'due_date', p.due_date, 'paid_amount', p.paid_amount,
                                  'outcome', p.outcome)
          FROM recovery.promises AS p WHERE p.case_id = api_case_timeline.case_id
        UNION ALL
        SELECT 'receipt', r.id, r.received_at,
               jsonb_build_object('kind', 'receipt', 'id', r.id, 'at', r.received_at,
                                  'amount', r.amount, 'currency', r.currency,
                                  'allocated', r.allocated, 'unallocated', r.unallocated,
                                  'reference', r.reference)
          FROM recovery.receipts AS r WHERE r.case_id = api_case_timeline.case_id
        UNION ALL
        SELECT 'notification', x.id, x.created_at,
               jsonb_build_object('kind', 'notification', 'id', x.id, 'at', x.created_at,
                                  'channel', x.channel, 'status', x.status, 'sent_at', x.sent_at,
                                  'step_no', x.step_no, 'attempts', x.attempts, 'last_error', x.last_error,
                                  'cancel_reason', x.cancel_reason)
          FROM recovery.notifications AS x WHERE x.case_id = api_case_timeline.case_id
        UNION ALL
        SELECT 'document', d.id, d.created_at,
               jsonb_build_object('kind', 'document', 'id', d.id, 'at', d.created_at,
                                  'filename', d.filename, 'content_type', d.content_type,
                                  'size', d.size, 'uploaded_by', d.uploaded_by)
          FROM recovery.documents_decrypted AS d WHERE d.case_id = api_case_timeline.case_id
        UNION ALL
        SELECT 'hold', h.id, h.created_at,
               jsonb_build_object('kind', 'hold', 'id', h.id, 'at', h.created_at, 'reason', h.reason,
                                  'ends_at', h.ends_at, 'released_at', h.released_at,
                                  'created_by', h.created_by, 'whole_customer', h.case_id IS NULL)
          FROM recovery.dunning_holds_decrypted AS h
         WHERE h.case_id = api_case_timeline.case_id
            OR (h.case_id IS NULL AND h.customer_id = (SELECT c.customer_id FROM recovery.recovery_cases c
                                                       WHERE c.id = api_case_timeline.case_id))
        UNION ALL
        SELECT 'note', n.id, n.created_at,
               jsonb_build_object('kind', 'note', 'id', n.id, 'at', n.created_at, 'body', n.body,
                                  'author', n.author)
          FROM recovery.case_notes_decrypted AS n WHERE n.case_id = api_case_timeline.case_id
    ) AS t
$$;
COMMENT ON FUNCTION api_case_timeline(bigint) IS
    'What happened to a case, oldest first: events, promises, money received, notifications (with why they failed or were cancelled), holds, documents, notes.';
GRANT EXECUTE ON FUNCTION api_case_timeline(bigint) TO recovery_viewer, recovery_auditor;

CREATE OR REPLACE FUNCTION api_dunning_hold(reason text, ends_at timestamptz, case_id bigint DEFAULT NULL,
                                 customer_id bigint DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    owner bigint := customer_id;
    hold_id bigint;
BEGIN
    IF NOT recovery.caller_has_role('recovery_agent') THEN
        RAISE EXCEPTION 'permission denied to hold reminders' USING ERRCODE = '42501';
    END IF;
    IF (case_id IS NULL) = (customer_id IS NULL) THEN
        RAISE EXCEPTION 'give a case or a customer' USING ERRCODE = 'PR004';
    END IF;
    IF reason IS NULL OR length(btrim(reason)) = 0 OR length(reason) > 2000 THEN
        RAISE EXCEPTION 'a hold needs a reason of up to 2000 characters' USING ERRCODE = 'PR004';
    END IF;
    IF ends_at IS NULL OR ends_at <= now() OR ends_at > now() + interval '1 year' THEN
        RAISE EXCEPTION 'a hold ends in the future, within a year' USING ERRCODE = 'PR004',
            HINT = 'Give ends_at as a timestamp, for example 2026-12-31T00:00:00Z.';
    END IF;
    IF case_id IS NOT NULL THEN
        SELECT c.customer_id INTO owner FROM recovery.recovery_cases c WHERE c.id = api_dunning_hold.case_id;
    ELSIF NOT EXISTS (SELECT 1 FROM recovery.customers c WHERE c.id = owner) THEN
        owner := NULL;
    END IF;
    IF owner IS NULL THEN
        RAISE EXCEPTION '% % does not exist', CASE WHEN case_id IS NULL THEN 'customer' ELSE 'recovery case' END,
            coalesce(case_id, customer_id) USING ERRCODE = 'PR003';
    END IF;
    INSERT INTO recovery.dunning_holds (customer_id, case_id, reason, ends_at, created_by)
    VALUES (owner, case_id, convert_to(reason, 'UTF8'), ends_at, recovery.task_worker())
    RETURNING id INTO hold_id;
    RETURN (SELECT to_jsonb(h) FROM recovery.dunning_holds_decrypted h WHERE h.id = hold_id);
END
$$;
COMMENT ON FUNCTION api_dunning_hold(text, timestamptz, bigint, bigint) IS
    'POST /api/v1/recovery-cases/{id}/holds and /customers/{id}/holds: no automatic reminders until ends_at.';
GRANT EXECUTE ON FUNCTION api_dunning_hold(text, timestamptz, bigint, bigint) TO recovery_agent;

CREATE OR REPLACE FUNCTION api_dunning_hold_release(hold_id bigint) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    released bigint;
BEGIN
    IF NOT recovery.caller_has_role('recovery_agent') THEN
        RAISE EXCEPTION 'permission denied to release holds' USING ERRCODE = '42501';
    END IF;
    UPDATE recovery.dunning_holds h SET released_at = now(), released_by = recovery.task_worker()
     WHERE h.id = hold_id AND h.released_at IS NULL
    RETURNING h.id INTO released;
    IF released IS NULL THEN
        RAISE EXCEPTION 'hold % does not exist or was released', hold_id USING ERRCODE = 'PR003';
    END IF;
    RETURN (SELECT to_jsonb(h) FROM recovery.dunning_holds_decrypted h WHERE h.id = released);
END
$$;
COMMENT ON FUNCTION api_dunning_hold_release(bigint) IS
    'POST /api/v1/dunning-holds/{id}/release: reminders resume before the hold''s end.';
GRANT EXECUTE ON FUNCTION api_dunning_hold_release(bigint) TO recovery_agent;

CREATE OR REPLACE FUNCTION api_dunning_holds_list(case_id bigint DEFAULT NULL, customer_id bigint DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT jsonb_build_object('items', coalesce(jsonb_agg(to_jsonb(h) ORDER BY h.id DESC), '[]'))
    FROM recovery.dunning_holds_decrypted h
    WHERE (api_dunning_holds_list.case_id IS NULL OR h.case_id = api_dunning_holds_list.case_id
           OR (h.case_id IS NULL AND h.customer_id = (SELECT c.customer_id FROM recovery.recovery_cases c
                                                      WHERE c.id = api_dunning_holds_list.case_id)))
      AND (api_dunning_holds_list.customer_id IS NULL OR h.customer_id = api_dunning_holds_list.customer_id)
$$;
COMMENT ON FUNCTION api_dunning_holds_list(bigint, bigint) IS
    'GET /api/v1/recovery-cases/{id}/holds: the holds of a case, its customer''s included.';
GRANT EXECUTE ON FUNCTION api_dunning_holds_list(bigint, bigint) TO recovery_viewer, recovery_auditor;

-- A provider's error as the outbox keeps it (delivery.c): an SMTP server or
-- an SMS gateway may quote the recipient, and last_error is in clear.
CREATE FUNCTION delivery_error_redacted(error text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'recovery_delivery_error_redacted';
COMMENT ON FUNCTION delivery_error_redacted(text) IS
    'An error of a delivery attempt with email addresses and E.164 phone numbers replaced, at most 2000 characters: what notifications.last_error keeps.';

CREATE OR REPLACE FUNCTION delivery_check(notification_id bigint, at timestamptz DEFAULT now()) RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    m recovery.notifications;
    c recovery.recovery_cases;
    cu recovery.customers_decrypted;
    hold_reason text;
    opens timestamptz;
    cap integer := recovery.setting_int('recovery.contact_cap', 3);
    oldest_in_window timestamptz;
BEGIN
    SELECT * INTO m FROM recovery.notifications n WHERE n.id = notification_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'notification % does not exist', notification_id USING ERRCODE = 'PR003';
    END IF;
    SELECT * INTO c FROM recovery.recovery_cases x WHERE x.id = m.case_id;
    SELECT * INTO cu FROM recovery.customers_decrypted x WHERE x.id = c.customer_id;
    IF cu.erased_at IS NOT NULL THEN
        RETURN jsonb_build_object('decision', 'cancel', 'reason', 'the customer was erased');
    ELSIF recovery.case_state_is_terminal(c.state) OR c.state = 'disputed' THEN
        RETURN jsonb_build_object('decision', 'cancel', 'reason', 'the case is ' || c.state);
    END IF;
    IF m.step_no IS NOT NULL THEN
        -- automatic reminders only
        IF c.state = 'escalated' THEN
            RETURN jsonb_build_object('decision', 'cancel', 'reason', 'the case is escalated');
        END IF;
        IF EXISTS (SELECT 1 FROM recovery.promises p WHERE p.case_id = c.id AND p.outcome = 'pending') THEN
            RETURN jsonb_build_object('decision', 'cancel', 'reason', 'a promise to pay is pending');
        END IF;
        SELECT format('hold %s, until %s', h.id, h.ends_at) INTO hold_reason FROM recovery.dunning_holds h
         WHERE h.customer_id = cu.id AND (h.case_id IS NULL OR h.case_id = c.id)
           AND h.released_at IS NULL AND at >= h.starts_at AND at < h.ends_at
         ORDER BY h.ends_at DESC LIMIT 1;
        IF FOUND THEN
            RETURN jsonb_build_object('decision', 'cancel', 'reason', 'dunning is on hold (' || hold_reason || ')');
        END IF;
    END IF;
    IF (cu.contact_preferences -> m.channel) = 'false'::jsonb THEN
        RETURN jsonb_build_object('decision', 'cancel', 'reason', 'the customer opted out of ' || m.channel);
    ELSIF m.channel = 'email' AND cu.email IS NULL THEN
        RETURN jsonb_build_object('decision', 'cancel', 'reason', 'the customer has no email address');
    ELSIF m.channel = 'sms' AND cu.phone IS NULL THEN
        RETURN jsonb_build_object('decision', 'cancel', 'reason', 'the customer has no phone number');
    END IF;
    opens := recovery.contact_window_opens(cu.time_zone, at);
    IF opens > at THEN
        RETURN jsonb_build_object('decision', 'defer', 'until', opens, 'reason', 'quiet hours in ' || cu.time_zone);
    END IF;
    SELECT min(s.sent_at) INTO oldest_in_window
      FROM (SELECT n.sent_at FROM recovery.notifications n
             WHERE n.customer_id = cu.id AND n.status = 'sent' AND n.sent_at > at - interval '7 days'
             ORDER BY n.sent_at DESC LIMIT cap) s
    HAVING count(*) >= cap;
    IF oldest_in_window IS NOT NULL THEN
        RETURN jsonb_build_object('decision', 'defer', 'until', oldest_in_window + interval '7 days',
                                  'reason', format('%s messages in 7 days already', cap));
    END IF;
    RETURN jsonb_build_object('decision', 'send');
END
$$;
COMMENT ON FUNCTION delivery_check(bigint, timestamptz) IS
    'The contact rules for one queued message: {"decision": "send"}, "defer" with "until" (quiet hours, the 7-day cap) or "cancel" with "reason".';
GRANT EXECUTE ON FUNCTION delivery_check(bigint, timestamptz) TO recovery_viewer, recovery_auditor;

CREATE OR REPLACE FUNCTION delivery_record(notification_id bigint, sent boolean, permanent boolean DEFAULT false,
                                response text DEFAULT NULL, error text DEFAULT NULL) RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    m recovery.notifications;
    c recovery.recovery_cases;
    provider_id text;
    max_attempts integer := recovery.setting_int('recovery.delivery_max_attempts', 8);
    base integer := recovery.setting_int('recovery.delivery_retry_base', 60);
    longest integer := recovery.setting_int('recovery.delivery_retry_max', 21600);
    threshold integer := recovery.setting_int('recovery.circuit_failure_threshold', 5);
    cooldown integer := recovery.setting_int('recovery.circuit_cooldown', 60);
    wait double precision;
BEGIN
    SELECT * INTO m FROM recovery.notifications n WHERE n.id = notification_id FOR UPDATE;
    IF NOT FOUND OR m.status <> 'sending' THEN
        RETURN coalesce(m.status, 'unknown');
    END IF;
    IF sent THEN
        BEGIN
            provider_id := response::jsonb ->> 'id';
        EXCEPTION WHEN OTHERS THEN
            provider_id := NULL;
        END;
        UPDATE recovery.notifications n
           SET status = 'sent', sent_at = now(), last_error = NULL,
               provider_message_id = left(coalesce(provider_id, m.message_id), 500)
         WHERE n.id = m.id;
        UPDATE recovery.delivery_circuits dc
           SET state = 'closed', consecutive_failures = 0, opened_at = NULL, retry_at = NULL, updated_at = now()
         WHERE dc.channel = m.channel AND (dc.state <> 'closed' OR dc.consecutive_failures > 0);
        -- what delivery does to the case: the first contact, a step's fee and action
        BEGIN
            SELECT * INTO c FROM recovery.recovery_cases x WHERE x.id = m.case_id;
            IF c.state = 'open' THEN
                PERFORM recovery.case_transition(c.id, 'contact', c.version,
                    jsonb_build_object('notification_id', m.id, 'channel', m.channel));
            END IF;
            IF m.step_no IS NOT NULL THEN
                PERFORM recovery.dunning_step_delivered(m);
            END IF;
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'notification % was sent, but updating case % failed: %', m.id, m.case_id, SQLERRM;
        END;
        RETURN 'sent';
    END IF;

    IF permanent OR m.attempts >= max_attempts THEN
        UPDATE recovery.notifications n SET status = 'dead', last_error = recovery.delivery_error_redacted(error)
         WHERE n.id = m.id;
    ELSE
        -- base * 2^(attempts - 1), at most the longest wait, with 25% jitter either way
        wait := least(base * power(2, m.attempts - 1), longest) * (0.75 + random() * 0.5);
        UPDATE recovery.notifications n
           SET status = 'failed', last_error = recovery.delivery_error_redacted(error),
               send_after = now() + make_interval(secs => wait)
         WHERE n.id = m.id;
    END IF;
    IF NOT permanent THEN
        -- the provider is failing, not the message
        UPDATE recovery.delivery_circuits dc
           SET consecutive_failures = dc.consecutive_failures + 1,
               state = CASE WHEN dc.state = 'half_open' OR dc.consecutive_failures + 1 >= threshold
                            THEN 'open' ELSE dc.state END,
               opened_at = CASE WHEN dc.state = 'half_open' OR dc.consecutive_failures + 1 >= threshold
                                THEN now() ELSE dc.opened_at END,
               retry_at = CASE WHEN dc.state = 'half_open' OR dc.consecutive_failures + 1 >= threshold
                               THEN now() + make_interval(secs => cooldown) ELSE dc.retry_at END,
               updated_at = now()
         WHERE dc.channel = m.channel;
    END IF;
    RETURN CASE WHEN permanent OR m.attempts >= max_attempts THEN 'dead' ELSE 'failed' END;
END
$$;
COMMENT ON FUNCTION delivery_record(bigint, boolean, boolean, text, text) IS
    'The delivery worker''s record of one attempt: sent (moves an open case to contacted, applies the step''s fee and action), or failed with backoff, dead after the last attempt or a permanent refusal; feeds the channel''s circuit breaker.';

CREATE OR REPLACE FUNCTION erase_personal(data jsonb) RETURNS jsonb
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

CREATE OR REPLACE FUNCTION customer_erase(customer_id bigint) RETURNS jsonb
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

CREATE OR REPLACE FUNCTION customer_erased() RETURNS trigger
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

CREATE OR REPLACE FUNCTION sealed_columns(table_name text) RETURNS text[]
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE table_name WHEN 'customers' THEN ARRAY['name', 'email', 'phone']
                           WHEN 'case_notes' THEN ARRAY['body']
                           WHEN 'documents' THEN ARRAY['filename']
                           WHEN 'case_events' THEN ARRAY['reason', 'personal_details']
                           WHEN 'dunning_holds' THEN ARRAY['reason']
                           WHEN 'extraction_lines' THEN ARRAY['payer', 'iban'] END
$$;

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

CREATE OR REPLACE FUNCTION audit_row_plain(audited json, table_name text) RETURNS boolean
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT coalesce(json_typeof(audited) = 'object' AND (EXISTS (
               SELECT 1 FROM json_each(audited) f
                WHERE f.key = ANY (recovery.sealed_columns(table_name))
                  AND json_typeof(f.value) = 'string' AND left(f.value #>> '{}', 6) <> '\xff01')
               OR recovery.audit_row_split(audited, table_name)::text <> audited::text), false)
$$;

CREATE OR REPLACE FUNCTION audit_row_sealed(audited json, table_name text, row_key text, customer_id bigint)
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

CREATE OR REPLACE PROCEDURE encrypt_existing(batch integer DEFAULT 1000)
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

CREATE OR REPLACE VIEW encryption_progress AS
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

CREATE OR REPLACE FUNCTION customer_rotate_key(customer_id bigint) RETURNS jsonb
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

CREATE OR REPLACE FUNCTION audit_row_opened(audited json, table_name text, row_key text, customer_id bigint)
    RETURNS json
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE WHEN audited IS NULL OR json_typeof(audited) <> 'object'
                     OR strpos(audited::text, '"\\xff01') = 0 THEN audited
           ELSE (SELECT json_object_agg(f.key,
                            CASE WHEN json_typeof(f.value) = 'string' AND left(f.value #>> '{}', 6) = '\xff01'
                                 THEN to_json(recovery.pii_open(decode(substr(f.value #>> '{}', 3), 'hex'),
                                                                table_name, f.key, row_key::bigint,
                                                                recovery.audit_row_customer(audited, table_name,
                                                                                            row_key, customer_id)))
                                 ELSE f.value END)
                   FROM json_each(audited) f)
           END
$$;
COMMENT ON FUNCTION audit_row_opened(json, text, text, bigint) IS
    'An audit row''s old_row or new_row with its sealed personal fields decrypted (GET /api/v1/audit).';
GRANT EXECUTE ON FUNCTION audit_row_opened(json, text, text, bigint) TO recovery_auditor;

-- nothing new is PUBLIC's
REVOKE ALL ON case_events_decrypted, dunning_holds_decrypted, extractions_decrypted,
              extraction_lines_decrypted, reconciliation_lines FROM PUBLIC;
REVOKE ALL ON FUNCTION event_details_clear(jsonb), event_details_personal(jsonb), case_event_personal(),
              delivery_error_redacted(text), audit_row_customer(json, text, text, bigint),
              audit_row_split(json, text), statement_lines_by_iban(text),
              extraction_task_customer(jsonb) FROM PUBLIC;
