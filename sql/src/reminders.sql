-- Dunning runs: holds, reminder runs and the queueing of due steps.

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
GRANT EXECUTE ON FUNCTION dunning_policy_assign(text, bigint, bigint) TO recovery_manager;

CREATE TABLE dunning_holds (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers,
    case_id     bigint REFERENCES recovery_cases,
    reason      bytea NOT NULL CHECK (octet_length(reason) > 0),
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
COMMENT ON COLUMN dunning_holds.reason IS
    'Sealed (pii_seal.c): read it decrypted in dunning_holds_decrypted; 1 to 2000 characters (api_dunning_hold).';
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON dunning_holds
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
CREATE TRIGGER seal_personal BEFORE INSERT OR UPDATE ON dunning_holds
    FOR EACH ROW EXECUTE FUNCTION pii_seal('reason');
GRANT SELECT ON dunning_holds TO recovery_viewer, recovery_auditor;
SELECT pg_catalog.pg_extension_config_dump('dunning_holds', '');
SELECT pg_catalog.pg_extension_config_dump('dunning_holds_id_seq', '');

CREATE VIEW dunning_holds_decrypted AS
    SELECT h.id, h.customer_id, h.case_id,
           recovery.pii_open(h.reason, 'dunning_holds', 'reason', h.id, h.customer_id) AS reason,
           h.starts_at, h.ends_at, h.created_by, h.created_at, h.released_at, h.released_by
      FROM recovery.dunning_holds h;
COMMENT ON VIEW dunning_holds_decrypted IS 'recovery.dunning_holds with the reason decrypted.';
GRANT SELECT ON dunning_holds_decrypted TO recovery_viewer, recovery_auditor;

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
SELECT pg_catalog.pg_extension_config_dump('reminder_runs', '');
SELECT pg_catalog.pg_extension_config_dump('reminder_runs_id_seq', '');

CREATE FUNCTION local_date(time_zone text, at timestamptz) RETURNS date
    LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'recovery_local_date';
COMMENT ON FUNCTION local_date(text, timestamptz) IS
    'The calendar date in a time zone at a moment; an unknown zone counts as UTC.';
GRANT EXECUTE ON FUNCTION local_date(text, timestamptz) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION contact_window_opens(time_zone text, at timestamptz) RETURNS timestamptz
    LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'recovery_contact_window_opens';
COMMENT ON FUNCTION contact_window_opens(text, timestamptz) IS
    'at, or when the quiet hours (recovery.quiet_hours_start to _end, local time of the zone) that contain it end.';
GRANT EXECUTE ON FUNCTION contact_window_opens(text, timestamptz) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION queue_reminders(now timestamptz, after_case_id bigint, up_to_case_id bigint)
    RETURNS bigint
    LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'recovery_queue_reminders';
COMMENT ON FUNCTION queue_reminders(timestamptz, bigint, bigint) IS
    'One batch of run_reminders: queues the due dunning step of each case with after_case_id < id <= up_to_case_id.';
GRANT EXECUTE ON FUNCTION queue_reminders(timestamptz, bigint, bigint) TO recovery_automation, recovery_admin;

CREATE PROCEDURE run_reminders(now timestamptz DEFAULT NULL, batch_size integer DEFAULT 5000)
    LANGUAGE c SECURITY DEFINER AS 'MODULE_PATHNAME', 'recovery_run_reminders';
COMMENT ON PROCEDURE run_reminders(timestamptz, integer) IS
    'The dunning run (pg_cron, every minute): queues one notification per case and due step, batch_size cases per transaction; idempotent.';
GRANT EXECUTE ON PROCEDURE run_reminders(timestamptz, integer) TO recovery_automation, recovery_admin;

-- The automation contract's reminder tasks (POST /automation/reminders).
CREATE FUNCTION perform_reminder_tasks(now timestamptz DEFAULT now()) RETURNS integer
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
