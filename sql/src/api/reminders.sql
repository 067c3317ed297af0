-- REST: templates, dunning policies and holds, notifications, delivery and jobs.

CREATE FUNCTION api_templates_list(channel text DEFAULT NULL) RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT jsonb_build_object('items', coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.name, t.channel, t.locale), '[]'),
                              'placeholders', to_jsonb(recovery.template_placeholders()))
    FROM recovery.templates AS t WHERE api_templates_list.channel IS NULL OR t.channel = api_templates_list.channel
$$;
COMMENT ON FUNCTION api_templates_list(text) IS 'GET /api/v1/templates.';
GRANT EXECUTE ON FUNCTION api_templates_list(text) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION api_template_save(name text, channel text, locale text, body text,
                                  subject text DEFAULT NULL, expected_version integer DEFAULT NULL,
                                  html_body text DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT to_jsonb(t) FROM recovery.template_save(name, channel, locale, body, subject,
                                                       expected_version, html_body) AS t $$;
COMMENT ON FUNCTION api_template_save(text, text, text, text, text, integer, text) IS 'POST /api/v1/templates.';
GRANT EXECUTE ON FUNCTION api_template_save(text, text, text, text, text, integer, text) TO recovery_manager;

CREATE FUNCTION api_template_preview(template_id bigint, case_id bigint) RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT to_jsonb(r) FROM recovery.render_template(template_id, case_id) AS r $$;
COMMENT ON FUNCTION api_template_preview(bigint, bigint) IS
    'GET /api/v1/templates/{id}/preview?case_id=: the message as the case''s customer would get it.';
GRANT EXECUTE ON FUNCTION api_template_preview(bigint, bigint) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION api_dunning_policies_list() RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT jsonb_build_object('items', coalesce(jsonb_agg(to_jsonb(p) ORDER BY p.is_default DESC, p.name), '[]'))
    FROM recovery.dunning_policies AS p
$$;
COMMENT ON FUNCTION api_dunning_policies_list() IS 'GET /api/v1/dunning-policies.';
GRANT EXECUTE ON FUNCTION api_dunning_policies_list() TO recovery_viewer, recovery_auditor;

CREATE FUNCTION api_dunning_policy_save(name text, steps jsonb, description text DEFAULT NULL,
                                        is_default boolean DEFAULT NULL,
                                        expected_version integer DEFAULT NULL) RETURNS jsonb
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT to_jsonb(p) FROM recovery.dunning_policy_save(name, steps, description, is_default,
                                                             expected_version) AS p $$;
COMMENT ON FUNCTION api_dunning_policy_save(text, jsonb, text, boolean, integer) IS 'POST /api/v1/dunning-policies.';
GRANT EXECUTE ON FUNCTION api_dunning_policy_save(text, jsonb, text, boolean, integer) TO recovery_manager;

CREATE FUNCTION api_dunning_hold(reason text, ends_at timestamptz, case_id bigint DEFAULT NULL,
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

CREATE FUNCTION api_dunning_hold_release(hold_id bigint) RETURNS jsonb
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

CREATE FUNCTION api_dunning_holds_list(case_id bigint DEFAULT NULL, customer_id bigint DEFAULT NULL)
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

CREATE FUNCTION api_notification_queue(case_id bigint, channel text, template text,
                                       send_after timestamptz DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    target recovery.recovery_cases;
    chosen recovery.templates;
    queued recovery.notifications;
BEGIN
    IF NOT recovery.caller_has_role('recovery_automation') AND NOT recovery.caller_has_role('recovery_agent') THEN
        RAISE EXCEPTION 'permission denied to send notifications' USING ERRCODE = '42501';
    END IF;
    SELECT * INTO target FROM recovery.recovery_cases c WHERE c.id = api_notification_queue.case_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'recovery case % does not exist', case_id USING ERRCODE = 'PR003';
    END IF;
    IF recovery.case_state_is_terminal(target.state) THEN
        RAISE EXCEPTION 'recovery case % is %: nobody is reminded of it', case_id, target.state
            USING ERRCODE = 'PR001';
    END IF;
    -- the template in the customer's locale, else any locale
    SELECT t.* INTO chosen FROM recovery.templates t
      JOIN recovery.customers cu ON cu.id = target.customer_id
     WHERE t.name = template AND t.channel = api_notification_queue.channel
     ORDER BY (t.locale = cu.locale) DESC, t.locale LIMIT 1;
    IF chosen.id IS NULL THEN
        RAISE EXCEPTION 'there is no % template named "%"', channel, template USING ERRCODE = 'PR004',
            HINT = 'GET /api/v1/templates lists them.';
    END IF;
    INSERT INTO recovery.notifications (case_id, customer_id, channel, template_id, send_after, created_by)
    VALUES (target.id, target.customer_id, chosen.channel, chosen.id, coalesce(send_after, now()),
            coalesce(nullif(current_setting('recovery.actor'), ''), session_user))
    RETURNING * INTO queued;
    RETURN to_jsonb(queued);
END
$$;
COMMENT ON FUNCTION api_notification_queue(bigint, text, text, timestamptz) IS
    'POST /api/v1/automation/notifications: a message to a case''s customer, queued in the outbox.';
GRANT EXECUTE ON FUNCTION api_notification_queue(bigint, text, text, timestamptz) TO recovery_agent, recovery_automation;

CREATE FUNCTION api_notifications_list(case_id bigint DEFAULT NULL, customer_id bigint DEFAULT NULL,
                                       status text DEFAULT NULL, cursor text DEFAULT NULL,
                                       "limit" integer DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    page_size integer := recovery.page_size("limit");
    before bigint := (recovery.cursor_decode(cursor) ->> 'id')::bigint;
    items jsonb;
BEGIN
    SELECT coalesce(jsonb_agg(to_jsonb(n) ORDER BY n.id DESC), '[]') INTO items
      FROM (SELECT x.*, t.name AS template FROM recovery.notifications x
              LEFT JOIN recovery.templates t ON t.id = x.template_id
             WHERE (api_notifications_list.case_id IS NULL OR x.case_id = api_notifications_list.case_id)
               AND (api_notifications_list.customer_id IS NULL OR x.customer_id = api_notifications_list.customer_id)
               AND (api_notifications_list.status IS NULL OR x.status = api_notifications_list.status)
               AND (before IS NULL OR x.id < before)
             ORDER BY x.id DESC LIMIT page_size) AS n;
    RETURN recovery.page_of(items, page_size,
                            jsonb_build_object('id', items -> -1 -> 'id'));
END
$$;
COMMENT ON FUNCTION api_notifications_list(bigint, bigint, text, text, integer) IS
    'GET /api/v1/notifications: the history of messages, newest first, by case, customer and status.';
GRANT EXECUTE ON FUNCTION api_notifications_list(bigint, bigint, text, text, integer) TO recovery_viewer, recovery_auditor;

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
GRANT EXECUTE ON FUNCTION api_notification_retry(bigint) TO recovery_manager, recovery_automation, recovery_admin;

-- SECURITY DEFINER: pg_stat_activity hides other users' sessions
CREATE FUNCTION api_delivery_status() RETURNS jsonb
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT jsonb_build_object(
        'circuits', (SELECT jsonb_agg(to_jsonb(dc) ORDER BY dc.channel) FROM recovery.delivery_circuits dc),
        'outbox', (SELECT coalesce(jsonb_object_agg(s.status, s.n), '{}')
                     FROM (SELECT n.status, count(*) AS n FROM recovery.notifications n GROUP BY n.status) s),
        'worker', (SELECT jsonb_build_object('pid', a.pid, 'state', a.state, 'since', a.backend_start)
                     FROM pg_stat_activity a WHERE a.backend_type = 'pg_recovery delivery' LIMIT 1),
        'preloaded', recovery.delivery_worker_preloaded(),
        'problem', recovery.delivery_problem())
$$;
COMMENT ON FUNCTION api_delivery_status() IS
    'GET /api/v1/delivery: the circuit of each channel, the outbox by status, whether the worker runs, and, when the server cannot run it (no preload), why and what to do.';
GRANT EXECUTE ON FUNCTION api_delivery_status() TO recovery_viewer, recovery_auditor;

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
        'backups', (SELECT coalesce(jsonb_agg(to_jsonb(b) - 'synced_at' ORDER BY b.finished_at DESC), '[]')
                      FROM (SELECT * FROM recovery.backups ORDER BY finished_at DESC
                             LIMIT recovery.page_size("limit")) b),
        'backup_health', (SELECT to_jsonb(h) FROM recovery.backup_health h),
        'reminder_runs', (SELECT coalesce(jsonb_agg(to_jsonb(r) ORDER BY r.id DESC), '[]')
                            FROM (SELECT * FROM recovery.reminder_runs ORDER BY id DESC
                                   LIMIT recovery.page_size("limit")) r));
END
$$;
COMMENT ON FUNCTION api_jobs(integer) IS
    'GET /api/v1/jobs: the pg_cron jobs of the extension, their latest runs, the backups in the pgBackRest repository with the age of the newest backup and archived WAL, and what the latest reminder runs queued.';
GRANT EXECUTE ON FUNCTION api_jobs(integer) TO recovery_manager, recovery_auditor;
