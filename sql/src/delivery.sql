-- Delivery of the outbox by the background worker: checks, claims, outcomes and circuits.

-- Delivery: the checks before a message goes out, claiming, recording,
-- retries with backoff, dead letters and a circuit breaker per channel
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
-- not in dumps: a copy starts with its circuits closed, as an install does

-- A provider's error as the outbox keeps it (delivery.c): an SMTP server or
-- an SMS gateway may quote the recipient, and last_error is in clear.
CREATE FUNCTION delivery_error_redacted(error text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'recovery_delivery_error_redacted';
COMMENT ON FUNCTION delivery_error_redacted(text) IS
    'An error of a delivery attempt with email addresses and E.164 phone numbers replaced, at most 2000 characters: what notifications.last_error keeps.';

-- Whether a queued message may go out at "at": send, defer (until), or
-- cancel (reason).  The recipient is the case's own customer, as now.
CREATE FUNCTION delivery_check(notification_id bigint, at timestamptz DEFAULT now()) RETURNS jsonb
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
    cu recovery.customers_decrypted;
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
        SELECT x.* INTO cu FROM recovery.customers_decrypted x WHERE x.id = (
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

CREATE FUNCTION delivery_worker_preloaded() RETURNS boolean
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'recovery_delivery_worker_preloaded';
COMMENT ON FUNCTION delivery_worker_preloaded() IS
    'Whether the server started with pg_recovery in shared_preload_libraries, which runs the delivery worker; without it, reminders wait in the outbox.';

CREATE FUNCTION delivery_problem() RETURNS jsonb
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

DO $$
DECLARE
    problem jsonb := recovery.delivery_problem();
BEGIN
    IF problem IS NOT NULL THEN
        RAISE WARNING '%', problem ->> 'message'
            USING DETAIL = problem ->> 'detail', HINT = problem ->> 'hint';
    END IF;
END
$$;
