-- pg_recovery 0.6 -> 0.7: pg_dump keeps the data, and a restore neither
-- writes a second audit trail nor sends what its original already sent.
-- Every table is marked for pg_dump (the shipped currencies and the
-- delivery circuits excepted); a pg_restore session writes no audit rows and
-- holds reminders, delivery and the scheduled jobs until restore_release().
\echo Use "ALTER EXTENSION pg_recovery UPDATE TO '0.7'" to load this file. \quit

-------------------------------------------------------------------------------
-- The currencies the extension ships stay out of dumps; those added go in
-------------------------------------------------------------------------------
CREATE FUNCTION shipped_currencies(OUT code char(3), OUT minor_units smallint, OUT name text)
    RETURNS SETOF record
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$ VALUES ('AED'::char(3), 2::smallint, 'UAE Dirham'::text), ('AUD', 2, 'Australian Dollar'),
                 ('BGN', 2, 'Bulgarian Lev'), ('BHD', 3, 'Bahraini Dinar'),
                 ('BRL', 2, 'Brazilian Real'), ('CAD', 2, 'Canadian Dollar'),
                 ('CHF', 2, 'Swiss Franc'), ('CLP', 0, 'Chilean Peso'), ('CNY', 2, 'Yuan Renminbi'),
                 ('CZK', 2, 'Czech Koruna'), ('DKK', 2, 'Danish Krone'), ('EUR', 2, 'Euro'),
                 ('GBP', 2, 'Pound Sterling'), ('HKD', 2, 'Hong Kong Dollar'), ('HUF', 2, 'Forint'),
                 ('IDR', 2, 'Rupiah'), ('ILS', 2, 'New Israeli Sheqel'), ('INR', 2, 'Indian Rupee'),
                 ('ISK', 0, 'Iceland Krona'), ('JOD', 3, 'Jordanian Dinar'), ('JPY', 0, 'Yen'),
                 ('KRW', 0, 'Won'), ('KWD', 3, 'Kuwaiti Dinar'), ('MXN', 2, 'Mexican Peso'),
                 ('MYR', 2, 'Malaysian Ringgit'), ('NOK', 2, 'Norwegian Krone'),
                 ('NZD', 2, 'New Zealand Dollar'), ('OMR', 3, 'Rial Omani'),
                 ('PHP', 2, 'Philippine Peso'), ('PLN', 2, 'Zloty'), ('RON', 2, 'Romanian Leu'),
                 ('SAR', 2, 'Saudi Riyal'), ('SEK', 2, 'Swedish Krona'),
                 ('SGD', 2, 'Singapore Dollar'), ('THB', 2, 'Baht'), ('TND', 3, 'Tunisian Dinar'),
                 ('TRY', 2, 'Turkish Lira'), ('TWD', 2, 'New Taiwan Dollar'), ('UAH', 2, 'Hryvnia'),
                 ('USD', 2, 'US Dollar'), ('VND', 0, 'Dong'), ('ZAR', 2, 'Rand') $$;
COMMENT ON FUNCTION shipped_currencies() IS
    'The ISO 4217 currencies the extension installs, with their minor units; pg_dump leaves these rows of recovery.currencies out.';
GRANT EXECUTE ON FUNCTION shipped_currencies() TO recovery_viewer, recovery_auditor;
REVOKE ALL ON FUNCTION shipped_currencies() FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('currencies',
    'WHERE code NOT IN (SELECT s.code FROM recovery.shipped_currencies() s)');

-------------------------------------------------------------------------------
-- Every other table that holds data, and its ids (the delivery circuits are
-- each database's own state, and the restore holds its own history)
-------------------------------------------------------------------------------
SELECT pg_catalog.pg_extension_config_dump('users', '');
SELECT pg_catalog.pg_extension_config_dump('users_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('api_keys', '');
SELECT pg_catalog.pg_extension_config_dump('api_keys_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('audit_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('customers', '');
SELECT pg_catalog.pg_extension_config_dump('customers_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('dunning_policies', '');
SELECT pg_catalog.pg_extension_config_dump('dunning_policies_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('templates', '');
SELECT pg_catalog.pg_extension_config_dump('templates_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('recovery_cases', '');
SELECT pg_catalog.pg_extension_config_dump('recovery_cases_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('case_events', '');
SELECT pg_catalog.pg_extension_config_dump('case_events_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('promises', '');
SELECT pg_catalog.pg_extension_config_dump('promises_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('case_notes', '');
SELECT pg_catalog.pg_extension_config_dump('case_notes_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('payments', '');
SELECT pg_catalog.pg_extension_config_dump('payments_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('receipts', '');
SELECT pg_catalog.pg_extension_config_dump('receipts_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('receipt_allocations', '');
SELECT pg_catalog.pg_extension_config_dump('receipt_allocations_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('idempotency_keys', '');
SELECT pg_catalog.pg_extension_config_dump('tasks', '');
SELECT pg_catalog.pg_extension_config_dump('tasks_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('documents', '');
SELECT pg_catalog.pg_extension_config_dump('documents_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('notifications', '');
SELECT pg_catalog.pg_extension_config_dump('notifications_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('dunning_holds', '');
SELECT pg_catalog.pg_extension_config_dump('dunning_holds_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('reminder_runs', '');
SELECT pg_catalog.pg_extension_config_dump('reminder_runs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('bank_mappings', '');
SELECT pg_catalog.pg_extension_config_dump('bank_mappings_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('extractions', '');
SELECT pg_catalog.pg_extension_config_dump('extractions_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('extraction_lines', '');
SELECT pg_catalog.pg_extension_config_dump('extraction_lines_id_seq', '');

-------------------------------------------------------------------------------
-- A restored database holds until an operator releases it
-------------------------------------------------------------------------------
CREATE TABLE restore_holds (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    restored_at timestamptz NOT NULL DEFAULT now(),
    restored_by text NOT NULL DEFAULT session_user,
    released_at timestamptz,
    released_by text,
    CHECK ((released_at IS NULL) = (released_by IS NULL))
);
-- one hold at a time
CREATE UNIQUE INDEX restore_holds_held ON restore_holds ((true)) WHERE released_at IS NULL;
COMMENT ON TABLE restore_holds IS
    'Restores of this database from a dump: until released, reminders, delivery and the scheduled jobs hold. This database''s own history, so never in a dump itself.';
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON restore_holds
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
GRANT SELECT ON restore_holds TO recovery_viewer, recovery_auditor;

CREATE FUNCTION restore_held() RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$ SELECT EXISTS (SELECT 1 FROM recovery.restore_holds h WHERE h.released_at IS NULL) $$;
COMMENT ON FUNCTION restore_held() IS
    'Whether this database was restored from a dump and holds its reminders, delivery and scheduled jobs until restore_release().';
GRANT EXECUTE ON FUNCTION restore_held() TO recovery_viewer, recovery_auditor;

CREATE FUNCTION restore_release() RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    hold recovery.restore_holds;
BEGIN
    IF NOT recovery.caller_has_role('recovery_admin') THEN
        RAISE EXCEPTION 'only an administrator may release a restored database'
            USING ERRCODE = '42501',
                  DETAIL = 'Released, it sends the reminders and messages its outbox holds.',
                  HINT = 'Run it as recovery_admin or a superuser.';
    END IF;
    UPDATE recovery.restore_holds h
       SET released_at = now(),
           released_by = coalesce(nullif(current_setting('recovery.actor', true), ''), session_user)
     WHERE h.released_at IS NULL
    RETURNING * INTO hold;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('released', false, 'message', 'nothing was held');
    END IF;
    NOTIFY recovery_outbox;
    RETURN jsonb_build_object(
        'released', true, 'restored_at', hold.restored_at, 'released_at', hold.released_at,
        'released_by', hold.released_by,
        'queued_notifications', (SELECT count(*) FROM recovery.notifications n
                                  WHERE n.status IN ('queued', 'failed')));
END
$$;
COMMENT ON FUNCTION restore_release() IS
    'Ends the hold of a restored database (administrators): reminders, delivery and the scheduled jobs start again; says what the outbox holds.';
GRANT EXECUTE ON FUNCTION restore_release() TO recovery_admin;
REVOKE ALL ON FUNCTION restore_held(), restore_release() FROM PUBLIC;

-- what holds: delivery, reminders (run_reminders, in C), the scheduled jobs
CREATE OR REPLACE FUNCTION delivery_next(channels text[])
    RETURNS TABLE (id bigint, channel text, recipient text, recipient_name text, subject text,
                   body text, html_body text, message_id text, webhook_payload text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    allowed text[];
    m recovery.notifications;
    decision jsonb;
    rendered record;
    cu recovery.customers;
    address text;
BEGIN
    -- a restored copy sends nothing its original may have sent already
    IF recovery.restore_held() THEN
        RETURN;
    END IF;
    -- an open circuit whose cool-down is over lets one probe through
    UPDATE recovery.delivery_circuits dc SET state = 'half_open', updated_at = now()
     WHERE dc.channel = ANY (channels) AND dc.state = 'open' AND dc.retry_at <= now();
    SELECT array_agg(dc.channel) INTO allowed FROM recovery.delivery_circuits dc
     WHERE dc.channel = ANY (channels)
       AND (dc.state = 'closed'
            OR (dc.state = 'half_open' AND NOT EXISTS (
                    SELECT 1 FROM recovery.notifications n WHERE n.channel = dc.channel AND n.status = 'sending')));
    IF allowed IS NULL THEN
        RETURN;
    END IF;
    LOOP
        SELECT * INTO m FROM recovery.notifications n
         WHERE n.status IN ('queued', 'failed') AND n.send_after <= now() AND n.channel = ANY (allowed)
         ORDER BY n.send_after, n.id LIMIT 1 FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        decision := recovery.delivery_check(m.id, now());
        IF decision ->> 'decision' = 'cancel' THEN
            UPDATE recovery.notifications n SET status = 'cancelled', cancel_reason = decision ->> 'reason'
             WHERE n.id = m.id;
            CONTINUE;
        ELSIF decision ->> 'decision' = 'defer' THEN
            UPDATE recovery.notifications n SET send_after = (decision ->> 'until')::timestamptz,
                   last_error = 'deferred: ' || (decision ->> 'reason')
             WHERE n.id = m.id;
            CONTINUE;
        END IF;
        BEGIN
            SELECT * INTO rendered FROM recovery.render_template(m.template_id, m.case_id);
        EXCEPTION WHEN OTHERS THEN
            -- a message that cannot be rendered never will be: a dead letter
            UPDATE recovery.notifications n SET status = 'dead', last_error = 'cannot render: ' || SQLERRM
             WHERE n.id = m.id;
            CONTINUE;
        END;
        SELECT x.* INTO cu FROM recovery.customers x WHERE x.id = (
            SELECT c.customer_id FROM recovery.recovery_cases c WHERE c.id = m.case_id);
        address := CASE m.channel WHEN 'email' THEN cu.email WHEN 'sms' THEN cu.phone END;
        UPDATE recovery.notifications n
           SET status = 'sending', attempts = n.attempts + 1, sending_started_at = now(),
               message_id = coalesce(n.message_id, format('<notification-%s@%s>', n.id,
                   coalesce(nullif(current_setting('recovery.message_id_domain', true), ''), 'recovery.invalid')))
         WHERE n.id = m.id
        RETURNING * INTO m;
        RETURN QUERY SELECT m.id, m.channel, address, cu.name, rendered.subject, rendered.body,
                            rendered.html_body, m.message_id,
                            jsonb_build_object('id', m.message_id, 'notification_id', m.id,
                                               'channel', m.channel, 'to', address, 'name', cu.name,
                                               'customer_ref', cu.external_ref, 'locale', cu.locale,
                                               'case_id', m.case_id,
                                               'case_reference', recovery.case_reference(m.case_id),
                                               'subject', rendered.subject, 'body', rendered.body)::text;
        RETURN;
    END LOOP;
END
$$;
COMMENT ON FUNCTION delivery_next(text[]) IS
    'The delivery worker''s claim: the next ready message of the channels whose circuit allows it, checked, rendered and marked sending; cancels or defers what the contact rules stop on the way.';

CREATE OR REPLACE FUNCTION delivery_problem() RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE WHEN NOT recovery.delivery_worker_preloaded() THEN jsonb_build_object(
        'message', 'pg_recovery is not in shared_preload_libraries: reminders are queued but not delivered.',
        'detail', 'The delivery worker, which sends the outbox by SMTP and webhooks, starts only with the server.',
        'hint', 'Add pg_recovery to shared_preload_libraries (after pg_cron) and restart PostgreSQL; nothing queued meanwhile is lost.')
    WHEN recovery.restore_held() THEN jsonb_build_object(
        'message', 'This database was restored from a dump: reminders, delivery and the scheduled jobs hold.',
        'detail', 'A copy must not send what its original already sent; its outbox waits as it was.',
        'hint', 'When the copy should work on its own, an administrator runs SELECT recovery.restore_release().')
    END
$$;
COMMENT ON FUNCTION delivery_problem() IS
    'Why messages are not delivered, as message, detail and hint: the server cannot run the delivery worker, or a restore holds; NULL when nothing stops them.';

CREATE OR REPLACE FUNCTION check_promises(now timestamptz DEFAULT now()) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    grace integer := recovery.setting_int('recovery.promise_grace_days', 3);
    late record;
    broken integer := 0;
    defaulted integer := 0;
    failed integer := 0;
BEGIN
    -- a restored copy fires nothing its original may have fired already
    IF recovery.restore_held() THEN
        RETURN jsonb_build_object('promises_broken', 0, 'plans_defaulted', 0, 'skipped', 0,
                                  'held', 'restored from a dump: see recovery.restore_release()');
    END IF;
    FOR late IN
        SELECT c.id AS case_id, c.version, c.state,
               bool_or(p.kind = 'instalment') AS instalment, min(p.due_date) AS due_date
          FROM recovery.promises p
          JOIN recovery.recovery_cases c ON c.id = p.case_id
          JOIN recovery.customers cu ON cu.id = c.customer_id
         WHERE p.outcome = 'pending' AND p.paid_amount < p.amount
           AND p.due_date + grace < recovery.local_date(cu.time_zone, check_promises.now)
           AND c.state IN ('promised', 'plan')
         GROUP BY c.id, c.version, c.state
         ORDER BY c.id
    LOOP
        BEGIN
            PERFORM recovery.case_transition(late.case_id,
                CASE WHEN late.state = 'plan' THEN 'plan_default' ELSE 'promise_broken' END,
                late.version,
                jsonb_build_object('due_date', late.due_date, 'grace_days', grace));
            IF late.state = 'plan' THEN defaulted := defaulted + 1; ELSE broken := broken + 1; END IF;
        EXCEPTION WHEN OTHERS THEN
            -- changed meanwhile (a payment, an agent): the next run looks again
            failed := failed + 1;
            RAISE WARNING 'check_promises: case %: %', late.case_id, SQLERRM;
        END;
    END LOOP;
    RETURN jsonb_build_object('promises_broken', broken, 'plans_defaulted', defaulted, 'skipped', failed);
END
$$;
COMMENT ON FUNCTION check_promises(timestamptz) IS
    'The scheduled check: a promise unpaid past its date plus recovery.promise_grace_days fires promise_broken; a missed instalment fires plan_default.';
GRANT EXECUTE ON FUNCTION check_promises(timestamptz) TO recovery_automation, recovery_admin;

CREATE OR REPLACE FUNCTION perform_extraction_tasks() RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    task recovery.tasks;
    doc recovery.documents;
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
GRANT EXECUTE ON FUNCTION perform_extraction_tasks() TO recovery_automation, recovery_admin;

CREATE OR REPLACE FUNCTION perform_reminder_tasks(now timestamptz DEFAULT now()) RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    task recovery.tasks;
    queued bigint;
    done integer := 0;
BEGIN
    IF recovery.restore_held() THEN
        RETURN 0;
    END IF;
    FOR task IN SELECT * FROM recovery.tasks t
                 WHERE t.kind = 'reminder' AND t.state = 'scheduled' AND t.run_at <= perform_reminder_tasks.now
                 ORDER BY t.run_at, t.id LIMIT 1000 FOR UPDATE SKIP LOCKED LOOP
        BEGIN
            IF task.payload ? 'template' THEN
                INSERT INTO recovery.notifications (case_id, customer_id, channel, template_id,
                                                    send_after, created_by)
                SELECT c.id, c.customer_id, t.channel, t.id,
                       recovery.contact_window_opens(cu.time_zone, perform_reminder_tasks.now),
                       'task ' || task.id
                  FROM recovery.recovery_cases c
                  JOIN recovery.customers cu ON cu.id = c.customer_id
                  CROSS JOIN LATERAL (
                      SELECT t.* FROM recovery.templates t
                       WHERE t.name = task.payload ->> 'template' AND t.channel = task.payload ->> 'channel'
                       ORDER BY t.locale = cu.locale DESC, t.locale LIMIT 1) t
                 WHERE c.id = (task.payload ->> 'case_id')::bigint
                   AND NOT recovery.case_state_is_terminal(c.state);
                GET DIAGNOSTICS queued = ROW_COUNT;
            ELSE
                queued := recovery.queue_reminders(perform_reminder_tasks.now,
                                                   (task.payload ->> 'case_id')::bigint - 1,
                                                   (task.payload ->> 'case_id')::bigint);
            END IF;
            UPDATE recovery.tasks t
               SET state = 'done', attempts = t.attempts + 1, completed_at = now(), updated_at = now(),
                   result = jsonb_build_object('notifications_queued', queued)
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
COMMENT ON FUNCTION perform_reminder_tasks(timestamptz) IS
    'Performs due tasks of kind reminder: the named template, or the case''s next due dunning step; run by run_reminders.';
GRANT EXECUTE ON FUNCTION perform_reminder_tasks(timestamptz) TO recovery_automation, recovery_admin;

-------------------------------------------------------------------------------
-- Contact preferences name channels that exist, each true or false
-------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION customer_update(customer_id bigint, expected_version integer,
                                name text DEFAULT NULL, email text DEFAULT NULL,
                                phone text DEFAULT NULL, locale text DEFAULT NULL,
                                time_zone text DEFAULT NULL,
                                contact_preferences jsonb DEFAULT NULL)
    RETURNS customers
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    current recovery.customers;
    updated recovery.customers;
    refused record;
BEGIN
    IF NOT recovery.caller_has_role('recovery_agent')
       AND NOT recovery.caller_has_role('recovery_automation') THEN
        RAISE EXCEPTION 'permission denied to update customers'
            USING ERRCODE = '42501', HINT = 'Ask an agent to do it.';
    END IF;
    IF expected_version IS NULL THEN
        RAISE EXCEPTION 'expected_version is required' USING ERRCODE = 'PR004',
            HINT = 'Send the version of the customer you read.';
    END IF;
    SELECT * INTO current FROM recovery.customers c WHERE c.id = customer_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'customer % does not exist', customer_id USING ERRCODE = 'PR003';
    END IF;
    IF current.version <> expected_version THEN
        RAISE EXCEPTION 'customer % was changed by someone else', customer_id
            USING ERRCODE = 'PR002',
                  DETAIL = format('You expected version %s; the customer is now at version %s.',
                                  expected_version, current.version),
                  HINT = 'Reload the customer and apply your change again.';
    END IF;
    -- a channel the delivery worker does not know would be consent to nothing
    IF jsonb_typeof(contact_preferences) = 'object' THEN
        SELECT k.key, k.value INTO refused FROM jsonb_each(contact_preferences) k
         WHERE k.key NOT IN ('email', 'sms', 'letter', 'webhook') OR jsonb_typeof(k.value) <> 'boolean'
         ORDER BY k.key LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'contact preference "%" is not a channel set to true or false', refused.key
                USING ERRCODE = 'PR004',
                      DETAIL = format('It is "%s": %s.', refused.key, refused.value),
                      HINT = 'The channels are email, sms, letter, webhook; each is true (the customer may be contacted on it) or false.';
        END IF;
    END IF;
    IF time_zone IS NOT NULL THEN
        BEGIN
            PERFORM now() AT TIME ZONE time_zone;
        EXCEPTION WHEN invalid_parameter_value THEN
            RAISE EXCEPTION 'unknown time zone "%"', time_zone USING ERRCODE = 'PR004',
                HINT = 'Use an IANA time zone name such as Europe/Berlin or America/New_York.';
        END;
    END IF;
    UPDATE recovery.customers c
       SET name = coalesce(customer_update.name, c.name),
           email = coalesce(customer_update.email, c.email),
           phone = coalesce(customer_update.phone, c.phone),
           locale = coalesce(customer_update.locale, c.locale),
           time_zone = coalesce(customer_update.time_zone, c.time_zone),
           contact_preferences = coalesce(customer_update.contact_preferences, c.contact_preferences),
           updated_at = now(),
           version = c.version + 1
     WHERE c.id = customer_id
    RETURNING * INTO updated;
    RETURN updated;
EXCEPTION
    WHEN check_violation OR not_null_violation THEN
        RAISE EXCEPTION 'invalid customer: %', SQLERRM USING ERRCODE = 'PR004',
            HINT = 'Email needs an @; phone is E.164 such as +441632960961; locale looks like en-US; contact_preferences is an object.';
END
$$;
COMMENT ON FUNCTION customer_update(bigint, integer, text, text, text, text, text, jsonb) IS
    'Changes the given fields of a customer if its version is still expected_version; NULL keeps a field.';
GRANT EXECUTE ON FUNCTION customer_update(bigint, integer, text, text, text, text, text, jsonb) TO recovery_agent, recovery_automation;
