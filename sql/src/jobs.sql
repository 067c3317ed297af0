-- The scheduled jobs pg_cron runs.

-- every job of the extension: a concern that needs one adds it here
CREATE FUNCTION job_definitions(OUT name text, OUT schedule text, OUT command text)
    RETURNS SETOF record
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$ VALUES ('recovery-reminders', '* * * * *', 'CALL recovery.run_reminders()'),
                 ('recovery-promises', '*/15 * * * *', 'SELECT recovery.check_promises()'),
                 ('recovery-extractions', '* * * * *', 'SELECT recovery.perform_extraction_tasks()'),
                 ('recovery-retention', '17 3 * * *', 'SELECT recovery.idempotency_purge(), recovery.live_events_purge()') $$;
COMMENT ON FUNCTION job_definitions() IS 'The pg_cron jobs of the extension: name, schedule, command.';
GRANT EXECUTE ON FUNCTION job_definitions() TO recovery_admin;

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
GRANT EXECUTE ON FUNCTION schedule_jobs() TO recovery_admin;

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
GRANT EXECUTE ON FUNCTION unschedule_jobs() TO recovery_admin;
