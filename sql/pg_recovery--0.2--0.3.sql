-- pg_recovery 0.3: reminders and their delivery.  Dunning policies decide
-- which message goes out when; run_reminders() (C, every minute from
-- pg_cron) queues them in the outbox; the delivery worker (C, a background
-- worker) checks each again, renders it and sends it by SMTP or webhook,
-- with retries, a dead-letter state and a circuit breaker per channel.
\echo Use "ALTER EXTENSION pg_recovery UPDATE TO '0.3'" to load this file. \quit

-------------------------------------------------------------------------------
-- Formatting and contact rules (C)
-------------------------------------------------------------------------------
CREATE FUNCTION case_reference(case_id bigint) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT 'RC-' || lpad(case_id::text, 6, '0') $$;
COMMENT ON FUNCTION case_reference(bigint) IS
    'The reference of a case that customers see in messages (RC-000042); payments quoting it are matched to the case.';

CREATE FUNCTION format_amount(amount bigint, currency text, locale text) RETURNS text
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'recovery_format_amount_sql';
COMMENT ON FUNCTION format_amount(bigint, text, text) IS
    'Minor units written as the locale writes money: £1,234.56 (en-GB), 1.234,56 € (de-DE).';

CREATE FUNCTION local_date(time_zone text, at timestamptz) RETURNS date
    LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'recovery_local_date';
COMMENT ON FUNCTION local_date(text, timestamptz) IS
    'The calendar date in a time zone at a moment; an unknown zone counts as UTC.';

CREATE FUNCTION contact_window_opens(time_zone text, at timestamptz) RETURNS timestamptz
    LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'recovery_contact_window_opens';
COMMENT ON FUNCTION contact_window_opens(text, timestamptz) IS
    'at, or when the quiet hours (recovery.quiet_hours_start to _end, local time of the zone) that contain it end.';

-------------------------------------------------------------------------------
-- Which policy applies, fees as their own lines, holds
-------------------------------------------------------------------------------
ALTER TABLE customers ADD COLUMN dunning_policy_id bigint REFERENCES dunning_policies;
ALTER TABLE recovery_cases ADD COLUMN dunning_policy_id bigint REFERENCES dunning_policies;
COMMENT ON COLUMN customers.dunning_policy_id IS 'The dunning policy of this customer''s cases; NULL: the default policy.';
COMMENT ON COLUMN recovery_cases.dunning_policy_id IS 'The dunning policy of this case; NULL: the customer''s, else the default.';

ALTER TABLE payments ADD COLUMN kind text NOT NULL DEFAULT 'principal'
    CHECK (kind IN ('principal', 'fee'));
COMMENT ON COLUMN payments.kind IS 'principal: what the customer owed; fee: a dunning fee, added by a delivered dunning step as its own line.';

ALTER TABLE templates ADD COLUMN html_body text CHECK (length(html_body) BETWEEN 1 AND 50000);
COMMENT ON COLUMN templates.html_body IS 'Email only: an HTML alternative to body; every value put into it is HTML-escaped.';

CREATE FUNCTION dunning_policy_assign(policy text, case_id bigint DEFAULT NULL,
                                      customer_id bigint DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    chosen bigint;
BEGIN
    IF NOT recovery.caller_has_role('recovery_manager') THEN
        RAISE EXCEPTION 'permission denied to assign dunning policies' USING ERRCODE = '42501',
            HINT = 'Dunning policies are for managers and administrators.';
    END IF;
    IF (case_id IS NULL) = (customer_id IS NULL) THEN
        RAISE EXCEPTION 'give a case or a customer' USING ERRCODE = 'PR004';
    END IF;
    IF policy IS NOT NULL THEN
        SELECT p.id INTO chosen FROM recovery.dunning_policies p WHERE p.name = policy;
        IF chosen IS NULL THEN
            RAISE EXCEPTION 'there is no dunning policy named "%"', policy USING ERRCODE = 'PR003',
                HINT = 'GET /api/v1/dunning-policies lists them; null goes back to the default.';
        END IF;
    END IF;
    IF case_id IS NOT NULL THEN
        UPDATE recovery.recovery_cases c SET dunning_policy_id = chosen, updated_at = now(),
               version = c.version + 1
         WHERE c.id = dunning_policy_assign.case_id;
    ELSE
        UPDATE recovery.customers c SET dunning_policy_id = chosen, updated_at = now(),
               version = c.version + 1
         WHERE c.id = dunning_policy_assign.customer_id;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION '% % does not exist', CASE WHEN case_id IS NULL THEN 'customer' ELSE 'recovery case' END,
            coalesce(case_id, customer_id) USING ERRCODE = 'PR003';
    END IF;
    RETURN jsonb_build_object('case_id', case_id, 'customer_id', customer_id, 'policy', policy);
END
$$;
COMMENT ON FUNCTION dunning_policy_assign(text, bigint, bigint) IS
    'Gives a case or a customer their own dunning policy (managers); NULL returns to the default.';

CREATE TABLE dunning_holds (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers,
    case_id     bigint REFERENCES recovery_cases,
    reason      text NOT NULL CHECK (length(reason) BETWEEN 1 AND 2000),
    starts_at   timestamptz NOT NULL DEFAULT now(),
    ends_at     timestamptz NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    released_at timestamptz,
    released_by text,
    CHECK (ends_at > starts_at)
);
CREATE INDEX dunning_holds_customer ON dunning_holds (customer_id) WHERE released_at IS NULL;
COMMENT ON TABLE dunning_holds IS
    'Pauses of automatic reminders for a case (case_id) or all of a customer''s cases, with a reason and an end; reminders resume by themselves at ends_at.';
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON dunning_holds
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
GRANT SELECT ON dunning_holds TO recovery_viewer, recovery_auditor;

CREATE FUNCTION api_dunning_hold(reason text, ends_at timestamptz, case_id bigint DEFAULT NULL,
                                 customer_id bigint DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    owner bigint := customer_id;
    hold recovery.dunning_holds;
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
    VALUES (owner, case_id, reason, ends_at, recovery.task_worker())
    RETURNING * INTO hold;
    RETURN to_jsonb(hold);
END
$$;
COMMENT ON FUNCTION api_dunning_hold(text, timestamptz, bigint, bigint) IS
    'POST /api/v1/recovery-cases/{id}/holds and /customers/{id}/holds: no automatic reminders until ends_at.';

CREATE FUNCTION api_dunning_hold_release(hold_id bigint) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    hold recovery.dunning_holds;
BEGIN
    IF NOT recovery.caller_has_role('recovery_agent') THEN
        RAISE EXCEPTION 'permission denied to release holds' USING ERRCODE = '42501';
    END IF;
    UPDATE recovery.dunning_holds h SET released_at = now(), released_by = recovery.task_worker()
     WHERE h.id = hold_id AND h.released_at IS NULL
    RETURNING * INTO hold;
    IF hold.id IS NULL THEN
        RAISE EXCEPTION 'hold % does not exist or was released', hold_id USING ERRCODE = 'PR003';
    END IF;
    RETURN to_jsonb(hold);
END
$$;
COMMENT ON FUNCTION api_dunning_hold_release(bigint) IS
    'POST /api/v1/dunning-holds/{id}/release: reminders resume before the hold''s end.';

CREATE FUNCTION api_dunning_holds_list(case_id bigint DEFAULT NULL, customer_id bigint DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT jsonb_build_object('items', coalesce(jsonb_agg(to_jsonb(h) ORDER BY h.id DESC), '[]'))
    FROM recovery.dunning_holds h
    WHERE (api_dunning_holds_list.case_id IS NULL OR h.case_id = api_dunning_holds_list.case_id
           OR (h.case_id IS NULL AND h.customer_id = (SELECT c.customer_id FROM recovery.recovery_cases c
                                                      WHERE c.id = api_dunning_holds_list.case_id)))
      AND (api_dunning_holds_list.customer_id IS NULL OR h.customer_id = api_dunning_holds_list.customer_id)
$$;
COMMENT ON FUNCTION api_dunning_holds_list(bigint, bigint) IS
    'GET /api/v1/recovery-cases/{id}/holds: the holds of a case, its customer''s included.';

-------------------------------------------------------------------------------
-- Templates: an optional HTML body for email
-------------------------------------------------------------------------------
DROP FUNCTION api_template_save(text, text, text, text, text, integer);
DROP FUNCTION template_save(text, text, text, text, text, integer);

CREATE FUNCTION template_save(name text, channel text, locale text, body text,
                              subject text DEFAULT NULL, expected_version integer DEFAULT NULL,
                              html_body text DEFAULT NULL)
    RETURNS templates
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    unknown text[];
    saved recovery.templates;
BEGIN
    IF NOT recovery.caller_has_role('recovery_manager') THEN
        RAISE EXCEPTION 'permission denied to change templates' USING ERRCODE = '42501',
            HINT = 'Templates are for managers and administrators.';
    END IF;
    -- a template that would fail when sent is refused now
    SELECT array_agg(DISTINCT m[1]) INTO unknown
      FROM regexp_matches(coalesce(body, '') || ' ' || coalesce(subject, '') || ' ' || coalesce(html_body, ''),
                          '{{\s*([^{}]*?)\s*}}', 'g') AS m
     WHERE NOT m[1] = ANY (recovery.template_placeholders());
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION 'unknown placeholder %', array_to_string(unknown, ', ') USING ERRCODE = 'PR004',
            DETAIL = 'The placeholders are: ' || array_to_string(recovery.template_placeholders(), ', ') || '.',
            HINT = 'Write placeholders as {{customer_name}}.';
    END IF;
    IF channel = 'email' AND (subject IS NULL OR length(btrim(subject)) = 0) THEN
        RAISE EXCEPTION 'an email template needs a subject' USING ERRCODE = 'PR004';
    END IF;
    IF html_body IS NOT NULL AND channel IS DISTINCT FROM 'email' THEN
        RAISE EXCEPTION 'only email templates have an HTML body' USING ERRCODE = 'PR004';
    END IF;
    INSERT INTO recovery.templates AS t (name, channel, locale, subject, body, html_body)
    VALUES (name, channel, locale, subject, body, html_body)
    ON CONFLICT ON CONSTRAINT templates_name_channel_locale_key DO UPDATE
       SET subject = excluded.subject, body = excluded.body, html_body = excluded.html_body,
           updated_at = now(), version = t.version + 1
     WHERE expected_version IS NULL OR t.version = expected_version
    RETURNING * INTO saved;
    IF saved.id IS NULL THEN
        RAISE EXCEPTION 'template % was changed by someone else', name USING ERRCODE = 'PR002',
            HINT = 'Reload the template and apply your change again.';
    END IF;
    RETURN saved;
EXCEPTION
    WHEN check_violation OR not_null_violation THEN
        RAISE EXCEPTION 'invalid template: %', SQLERRM USING ERRCODE = 'PR004',
            HINT = 'name is lower case; channel is email, sms, letter or webhook; locale looks like en-GB.';
END
$$;
COMMENT ON FUNCTION template_save(text, text, text, text, text, integer, text) IS
    'Creates or replaces the template of a name, channel and locale (managers); refuses unknown placeholders.';

CREATE FUNCTION api_template_save(name text, channel text, locale text, body text,
                                  subject text DEFAULT NULL, expected_version integer DEFAULT NULL,
                                  html_body text DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT to_jsonb(t) FROM recovery.template_save(name, channel, locale, body, subject,
                                                       expected_version, html_body) AS t $$;
COMMENT ON FUNCTION api_template_save(text, text, text, text, text, integer, text) IS 'POST /api/v1/templates.';

CREATE FUNCTION render_template(template_id bigint, case_id bigint,
                                OUT subject text, OUT body text, OUT html_body text)
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'recovery_render_template';
COMMENT ON FUNCTION render_template(bigint, bigint) IS
    'A template filled in for a case: name, amounts and dates in the customer''s locale, HTML body escaped.';

CREATE FUNCTION api_template_preview(template_id bigint, case_id bigint) RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT to_jsonb(r) FROM recovery.render_template(template_id, case_id) AS r $$;
COMMENT ON FUNCTION api_template_preview(bigint, bigint) IS
    'GET /api/v1/templates/{id}/preview?case_id=: the message as the case''s customer would get it.';

-------------------------------------------------------------------------------
-- The outbox: one notification per case and dunning step, a NOTIFY for
-- the delivery worker when something is queued
-------------------------------------------------------------------------------
ALTER TABLE notifications
    ADD COLUMN dunning_policy_id bigint REFERENCES dunning_policies,
    ADD COLUMN message_id text,
    ADD COLUMN cancel_reason text,
    ADD COLUMN sending_started_at timestamptz;
COMMENT ON COLUMN notifications.step_no IS 'The dunning step (1-based) that queued it; NULL for a message queued by hand.';
COMMENT ON COLUMN notifications.status IS
    'queued; sending; sent; failed (an attempt failed, retried at send_after); dead (no more attempts); cancelled (cancel_reason says why).';
COMMENT ON COLUMN notifications.message_id IS 'Stable across resends: the email''s Message-ID and the webhook''s Idempotency-Key.';
CREATE UNIQUE INDEX notifications_case_step ON notifications (case_id, step_no) WHERE step_no IS NOT NULL;
CREATE INDEX notifications_ready ON notifications (send_after) WHERE status IN ('queued', 'failed');
CREATE INDEX notifications_sent_to ON notifications (customer_id, sent_at) WHERE status = 'sent';

CREATE FUNCTION notifications_wake_worker() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$ BEGIN NOTIFY recovery_outbox; RETURN NULL; END $$;
CREATE TRIGGER wake_worker AFTER INSERT ON notifications
    FOR EACH STATEMENT EXECUTE FUNCTION notifications_wake_worker();

CREATE TABLE reminder_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    as_of        timestamptz NOT NULL,
    last_case_id bigint NOT NULL,
    batches      integer NOT NULL,
    queued       bigint NOT NULL,
    run_by       text NOT NULL DEFAULT session_user
);
COMMENT ON TABLE reminder_runs IS 'One row per run_reminders(): how many cases in how many batches, and what it queued.';
GRANT SELECT ON reminder_runs TO recovery_viewer, recovery_auditor;

CREATE FUNCTION queue_reminders(now timestamptz, after_case_id bigint, up_to_case_id bigint)
    RETURNS bigint
    LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'recovery_queue_reminders';
COMMENT ON FUNCTION queue_reminders(timestamptz, bigint, bigint) IS
    'One batch of run_reminders: queues the due dunning step of each case with after_case_id < id <= up_to_case_id.';

CREATE PROCEDURE run_reminders(now timestamptz DEFAULT NULL, batch_size integer DEFAULT 5000)
    LANGUAGE c SECURITY DEFINER AS 'MODULE_PATHNAME', 'recovery_run_reminders';
COMMENT ON PROCEDURE run_reminders(timestamptz, integer) IS
    'The dunning run (pg_cron, every minute): queues one notification per case and due step, batch_size cases per transaction; idempotent.';

-- The automation contract's reminder tasks (POST /automation/reminders).
CREATE FUNCTION perform_reminder_tasks(now timestamptz DEFAULT now()) RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    task recovery.tasks;
    queued bigint;
    done integer := 0;
BEGIN
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

-------------------------------------------------------------------------------
-- Delivery: the checks before a message goes out, claiming, recording,
-- retries with backoff, dead letters and a circuit breaker per channel
-------------------------------------------------------------------------------
CREATE TABLE delivery_circuits (
    channel              text PRIMARY KEY CHECK (channel IN ('email', 'sms', 'letter', 'webhook')),
    state                text NOT NULL DEFAULT 'closed' CHECK (state IN ('closed', 'open', 'half_open')),
    consecutive_failures integer NOT NULL DEFAULT 0,
    opened_at            timestamptz,
    retry_at             timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
INSERT INTO delivery_circuits (channel) VALUES ('email'), ('sms'), ('letter'), ('webhook');
COMMENT ON TABLE delivery_circuits IS
    'The circuit breaker of each channel: open after recovery.circuit_failure_threshold failures in a row, one probe after recovery.circuit_cooldown, closed on success.';
GRANT SELECT ON delivery_circuits TO recovery_viewer, recovery_auditor;

-- a setting in its base unit (seconds for "1min"), or the fallback when
-- the library is not loaded in this backend
CREATE FUNCTION setting_int(name text, fallback integer) RETURNS integer
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT coalesce((SELECT s.setting::integer FROM pg_settings s WHERE s.name = setting_int.name),
                          fallback) $$;

-- Whether a queued message may go out at "at": send, defer (until), or
-- cancel (reason).  The recipient is the case's own customer, as now.
CREATE FUNCTION delivery_check(notification_id bigint, at timestamptz DEFAULT now()) RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    m recovery.notifications;
    c recovery.recovery_cases;
    cu recovery.customers;
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
    SELECT * INTO cu FROM recovery.customers x WHERE x.id = c.customer_id;
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
        SELECT h.reason INTO hold_reason FROM recovery.dunning_holds h
         WHERE h.customer_id = cu.id AND (h.case_id IS NULL OR h.case_id = c.id)
           AND h.released_at IS NULL AND at >= h.starts_at AND at < h.ends_at
         ORDER BY h.ends_at DESC LIMIT 1;
        IF FOUND THEN
            RETURN jsonb_build_object('decision', 'cancel', 'reason', 'dunning is on hold: ' || hold_reason);
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

CREATE FUNCTION delivery_next(channels text[])
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

-- What a delivered dunning step does to its case: its fee, its action.
CREATE FUNCTION dunning_step_delivered(m notifications) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    step jsonb;
    c recovery.recovery_cases;
    fee bigint;
    fee_id bigint;
BEGIN
    SELECT p.steps -> (m.step_no - 1) INTO step FROM recovery.dunning_policies p
     WHERE p.id = coalesce(m.dunning_policy_id, (SELECT d.id FROM recovery.dunning_policies d WHERE d.is_default));
    SELECT * INTO c FROM recovery.recovery_cases x WHERE x.id = m.case_id;
    IF step IS NULL OR recovery.case_state_is_terminal(c.state) THEN
        RETURN;
    END IF;
    IF jsonb_typeof(step -> 'fee') = 'object' THEN
        fee := CASE WHEN step -> 'fee' ? 'fixed' THEN (step -> 'fee' ->> 'fixed')::bigint
                    ELSE round(c.balance * (step -> 'fee' ->> 'percent')::numeric / 100)::bigint END;
        IF fee > 0 THEN
            INSERT INTO recovery.payments (customer_id, external_ref, amount, outstanding, currency,
                                           due_date, kind)
            VALUES (c.customer_id, format('FEE-%s-%s', c.id, m.step_no), fee, fee, c.currency,
                    current_date, 'fee')
            ON CONFLICT (customer_id, external_ref) DO NOTHING
            RETURNING id INTO fee_id;
            IF fee_id IS NOT NULL THEN
                PERFORM recovery.payment_fail(fee_id, format('dunning fee of step %s', m.step_no), 'overdue');
            END IF;
        END IF;
    END IF;
    IF step ->> 'action' = 'escalate' THEN
        SELECT * INTO c FROM recovery.recovery_cases x WHERE x.id = m.case_id;
        PERFORM recovery.case_transition(c.id, 'escalate', c.version,
                                         jsonb_build_object('reason', format('dunning step %s was delivered', m.step_no)));
    END IF;
END
$$;

CREATE FUNCTION delivery_record(notification_id bigint, sent boolean, permanent boolean DEFAULT false,
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
        UPDATE recovery.notifications n SET status = 'dead', last_error = left(error, 2000)
         WHERE n.id = m.id;
    ELSE
        -- base * 2^(attempts - 1), at most the longest wait, with 25% jitter either way
        wait := least(base * power(2, m.attempts - 1), longest) * (0.75 + random() * 0.5);
        UPDATE recovery.notifications n
           SET status = 'failed', last_error = left(error, 2000),
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

CREATE FUNCTION delivery_recover() RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    requeued integer;
BEGIN
    UPDATE recovery.notifications n
       SET status = 'failed', send_after = now(),
           last_error = 'the worker stopped while sending; resent with the same message id'
     WHERE n.status = 'sending';
    GET DIAGNOSTICS requeued = ROW_COUNT;
    UPDATE recovery.delivery_circuits dc SET state = 'open', retry_at = now(), updated_at = now()
     WHERE dc.state = 'half_open';
    IF requeued > 0 THEN
        RAISE LOG 'pg_recovery delivery: % interrupted deliveries queued again', requeued;
    END IF;
    RETURN requeued;
END
$$;
COMMENT ON FUNCTION delivery_recover() IS
    'Run by the delivery worker when it starts: messages left sending by a crash are queued again (at least once delivery).';

CREATE FUNCTION api_notification_retry(notification_id bigint) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    m recovery.notifications;
BEGIN
    IF NOT recovery.caller_has_role('recovery_manager') AND NOT recovery.caller_has_role('recovery_automation') THEN
        RAISE EXCEPTION 'permission denied to retry notifications' USING ERRCODE = '42501';
    END IF;
    UPDATE recovery.notifications n
       SET status = 'queued', attempts = 0, send_after = now(), last_error = NULL
     WHERE n.id = notification_id AND n.status = 'dead'
    RETURNING * INTO m;
    IF m.id IS NULL THEN
        IF EXISTS (SELECT 1 FROM recovery.notifications n WHERE n.id = notification_id) THEN
            RAISE EXCEPTION 'notification % is not a dead letter', notification_id USING ERRCODE = 'PR001',
                HINT = 'Only dead messages are retried by hand; the others are on their way.';
        END IF;
        RAISE EXCEPTION 'notification % does not exist', notification_id USING ERRCODE = 'PR003';
    END IF;
    NOTIFY recovery_outbox;
    RETURN to_jsonb(m);
END
$$;
COMMENT ON FUNCTION api_notification_retry(bigint) IS
    'POST /api/v1/notifications/{id}/retry: a dead letter queued again (the contact rules apply again).';

-- SECURITY DEFINER: pg_stat_activity hides other users' sessions
CREATE FUNCTION api_delivery_status() RETURNS jsonb
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT jsonb_build_object(
        'circuits', (SELECT jsonb_agg(to_jsonb(dc) ORDER BY dc.channel) FROM recovery.delivery_circuits dc),
        'outbox', (SELECT coalesce(jsonb_object_agg(s.status, s.n), '{}')
                     FROM (SELECT n.status, count(*) AS n FROM recovery.notifications n GROUP BY n.status) s),
        'worker', (SELECT jsonb_build_object('pid', a.pid, 'state', a.state, 'since', a.backend_start)
                     FROM pg_stat_activity a WHERE a.backend_type = 'pg_recovery delivery' LIMIT 1))
$$;
COMMENT ON FUNCTION api_delivery_status() IS
    'GET /api/v1/delivery: the circuit of each channel, the outbox by status, and whether the worker runs.';

-------------------------------------------------------------------------------
-- Broken promises and defaulted plans
-------------------------------------------------------------------------------
CREATE FUNCTION check_promises(now timestamptz DEFAULT now()) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    grace integer := recovery.setting_int('recovery.promise_grace_days', 3);
    late record;
    broken integer := 0;
    defaulted integer := 0;
    failed integer := 0;
BEGIN
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

-------------------------------------------------------------------------------
-- pg_cron jobs
-------------------------------------------------------------------------------
-- the jobs; later versions add theirs by replacing this one function
CREATE FUNCTION job_definitions(OUT name text, OUT schedule text, OUT command text)
    RETURNS SETOF record
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$ VALUES ('recovery-reminders', '* * * * *', 'CALL recovery.run_reminders()'),
                 ('recovery-promises', '*/15 * * * *', 'SELECT recovery.check_promises()'),
                 ('recovery-retention', '17 3 * * *', 'SELECT recovery.idempotency_purge()') $$;
COMMENT ON FUNCTION job_definitions() IS 'The pg_cron jobs of the extension: name, schedule, command.';

CREATE FUNCTION schedule_jobs() RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    job record;
    scheduled jsonb := '[]';
BEGIN
    IF NOT recovery.caller_has_role('recovery_admin') THEN
        RAISE EXCEPTION 'permission denied to schedule jobs' USING ERRCODE = '42501';
    END IF;
    IF to_regclass('cron.job') IS NULL THEN
        RAISE EXCEPTION 'pg_cron is not installed in this database' USING ERRCODE = '55000',
            HINT = 'Add pg_cron to shared_preload_libraries, set cron.database_name to this database, and CREATE EXTENSION pg_cron.';
    END IF;
    FOR job IN SELECT * FROM recovery.job_definitions() LOOP
        EXECUTE 'SELECT cron.schedule($1, $2, $3)' USING job.name, job.schedule, job.command;
        scheduled := scheduled || jsonb_build_object('name', job.name, 'schedule', job.schedule,
                                                     'command', job.command);
    END LOOP;
    RETURN jsonb_build_object('jobs', scheduled);
END
$$;
COMMENT ON FUNCTION schedule_jobs() IS
    'Registers (or updates) the pg_cron jobs of job_definitions(): reminders every minute, promise checks every 15 minutes, retention nightly.';

CREATE FUNCTION unschedule_jobs() RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    removed integer := 0;
    name text;
BEGIN
    IF NOT recovery.caller_has_role('recovery_admin') THEN
        RAISE EXCEPTION 'permission denied to unschedule jobs' USING ERRCODE = '42501';
    END IF;
    IF to_regclass('cron.job') IS NULL THEN
        RETURN 0;
    END IF;
    FOR name IN EXECUTE 'SELECT jobname FROM cron.job WHERE jobname LIKE ''recovery-%''' LOOP
        EXECUTE 'SELECT cron.unschedule($1)' USING name;
        removed := removed + 1;
    END LOOP;
    RETURN removed;
END
$$;
COMMENT ON FUNCTION unschedule_jobs() IS 'Removes the pg_cron jobs of the extension.';

CREATE FUNCTION api_jobs("limit" integer DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    jobs jsonb := '[]';
    runs jsonb := '[]';
BEGIN
    IF NOT recovery.caller_has_role('recovery_manager') AND NOT recovery.caller_has_role('recovery_auditor') THEN
        RAISE EXCEPTION 'permission denied to read job history' USING ERRCODE = '42501';
    END IF;
    IF to_regclass('cron.job_run_details') IS NOT NULL THEN
        EXECUTE $q$SELECT coalesce(jsonb_agg(jsonb_build_object('name', j.jobname, 'schedule', j.schedule,
                                                          'command', j.command, 'active', j.active)
                                       ORDER BY j.jobname), '[]')
                     FROM cron.job j WHERE j.jobname LIKE 'recovery-%'$q$ INTO jobs;
        EXECUTE $q$SELECT coalesce(jsonb_agg(r ORDER BY r.start_time DESC), '[]')
                     FROM (SELECT j.jobname AS name, d.runid AS run_id, d.status, d.return_message,
                                  d.start_time, d.end_time
                             FROM cron.job_run_details d JOIN cron.job j ON j.jobid = d.jobid
                            WHERE j.jobname LIKE 'recovery-%'
                            ORDER BY d.start_time DESC NULLS LAST LIMIT $1) r$q$
           INTO runs USING recovery.page_size("limit");
    END IF;
    RETURN jsonb_build_object('jobs', jobs, 'runs', runs,
        'reminder_runs', (SELECT coalesce(jsonb_agg(to_jsonb(r) ORDER BY r.id DESC), '[]')
                            FROM (SELECT * FROM recovery.reminder_runs ORDER BY id DESC
                                   LIMIT recovery.page_size("limit")) r));
END
$$;
COMMENT ON FUNCTION api_jobs(integer) IS
    'GET /api/v1/jobs: the pg_cron jobs of the extension, their latest runs, and what the latest reminder runs queued.';

-------------------------------------------------------------------------------
-- Erasure (customer_erase) also covers the holds' reasons and cancels what
-- is queued: a trigger on the customer's erasure, so that the erasure of
-- the audit rows that follows in customer_erase covers these changes too
-------------------------------------------------------------------------------
CREATE FUNCTION customer_erased() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    UPDATE recovery.dunning_holds h SET reason = '[erased]'
     WHERE h.customer_id = NEW.id AND h.reason <> '[erased]';
    -- nothing queued reaches an erased customer
    UPDATE recovery.notifications n SET status = 'cancelled', cancel_reason = 'the customer was erased'
     WHERE n.customer_id = NEW.id AND n.status IN ('queued', 'failed');
    RETURN NULL;
END
$$;
CREATE TRIGGER erased AFTER UPDATE OF erased_at ON customers
    FOR EACH ROW WHEN (OLD.erased_at IS NULL AND NEW.erased_at IS NOT NULL)
    EXECUTE FUNCTION customer_erased();

-- the case timeline shows holds, and why a message failed or was cancelled
CREATE OR REPLACE FUNCTION api_case_timeline(case_id bigint) RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT coalesce(jsonb_agg(t.entry ORDER BY t.at, t.kind, t.id), '[]')
    FROM (
        SELECT 'event' AS kind, e.id, e.occurred_at AS at,
               jsonb_build_object('kind', 'event', 'id', e.id, 'at', e.occurred_at, 'event', e.event,
                                  'from_state', e.from_state, 'to_state', e.to_state,
                                  'actor', e.actor, 'reason', e.reason, 'details', e.details) AS entry
          FROM recovery.case_events AS e WHERE e.case_id = api_case_timeline.case_id
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
          FROM recovery.documents AS d WHERE d.case_id = api_case_timeline.case_id
        UNION ALL
        SELECT 'hold', h.id, h.created_at,
               jsonb_build_object('kind', 'hold', 'id', h.id, 'at', h.created_at, 'reason', h.reason,
                                  'ends_at', h.ends_at, 'released_at', h.released_at,
                                  'created_by', h.created_by, 'whole_customer', h.case_id IS NULL)
          FROM recovery.dunning_holds AS h
         WHERE h.case_id = api_case_timeline.case_id
            OR (h.case_id IS NULL AND h.customer_id = (SELECT c.customer_id FROM recovery.recovery_cases c
                                                       WHERE c.id = api_case_timeline.case_id))
        UNION ALL
        SELECT 'note', n.id, n.created_at,
               jsonb_build_object('kind', 'note', 'id', n.id, 'at', n.created_at, 'body', n.body,
                                  'author', n.author)
          FROM recovery.case_notes AS n WHERE n.case_id = api_case_timeline.case_id
    ) AS t
$$;
COMMENT ON FUNCTION api_case_timeline(bigint) IS
    'What happened to a case, oldest first: events, promises, money received, notifications (with why they failed or were cancelled), holds, documents, notes.';

-------------------------------------------------------------------------------
-- Privileges of what 0.3 added
-------------------------------------------------------------------------------
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA recovery FROM PUBLIC;
REVOKE ALL ON PROCEDURE run_reminders(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION case_reference(bigint), format_amount(bigint, text, text),
                          local_date(text, timestamptz), contact_window_opens(text, timestamptz),
                          render_template(bigint, bigint), api_template_preview(bigint, bigint),
                          api_dunning_holds_list(bigint, bigint), api_delivery_status(),
                          delivery_check(bigint, timestamptz), setting_int(text, integer)
    TO recovery_viewer, recovery_auditor;
GRANT EXECUTE ON FUNCTION api_dunning_hold(text, timestamptz, bigint, bigint),
                          api_dunning_hold_release(bigint)
    TO recovery_agent;
GRANT EXECUTE ON FUNCTION template_save(text, text, text, text, text, integer, text),
                          api_template_save(text, text, text, text, text, integer, text),
                          dunning_policy_assign(text, bigint, bigint),
                          api_notification_retry(bigint)
    TO recovery_manager;
GRANT EXECUTE ON FUNCTION api_jobs(integer) TO recovery_manager, recovery_auditor;
GRANT EXECUTE ON FUNCTION api_notification_retry(bigint), queue_reminders(timestamptz, bigint, bigint),
                          perform_reminder_tasks(timestamptz), check_promises(timestamptz)
    TO recovery_automation, recovery_admin;
GRANT EXECUTE ON PROCEDURE run_reminders(timestamptz, integer) TO recovery_automation, recovery_admin;
GRANT EXECUTE ON FUNCTION schedule_jobs(), unschedule_jobs(), job_definitions() TO recovery_admin;
