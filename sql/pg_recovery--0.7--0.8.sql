-- pg_recovery 0.7 -> 0.8: backups with pgBackRest, and an erasure ledger
-- outside the cluster so that no restore brings an erased customer back.
-- recovery.backups lists what the repository holds (scripts/backup.sh copies
-- `pgbackrest info` into it), recovery.backup_health says how old the newest
-- backup and archived WAL are, GET /api/v1/jobs shows both; customer_erase()
-- records the customer in the ledger (recovery.erasure_ledger) as it commits,
-- and erasure_ledger_replay() erases them again after a restore.  replayed()
-- lets the gateway read from a standby only once it has the caller's writes.
\echo Use "ALTER EXTENSION pg_recovery UPDATE TO '0.8'" to load this file. \quit

-------------------------------------------------------------------------------
-- The backups in the repository, and their health
-------------------------------------------------------------------------------
-- Backups with pgBackRest (scripts/backup.sh).  The repository is outside
-- the database; after every backup and every restore the script copies
-- what `pgbackrest info` says into recovery.backups, so that managers see
-- backups beside the jobs (GET /api/v1/jobs) and an alert can fire from
-- recovery.backup_health when backups or WAL archiving stop.

CREATE TABLE backups (
    label            text PRIMARY KEY,
    type             text NOT NULL CHECK (type IN ('full', 'diff', 'incr')),
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz NOT NULL,
    database_bytes   bigint NOT NULL,
    repository_bytes bigint NOT NULL,
    wal_start        text,
    wal_stop         text,
    lsn_start        pg_lsn,
    lsn_stop         pg_lsn,
    synced_at        timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE backups IS
    'The backups in the pgBackRest repository, as `pgbackrest info` last listed them (scripts/backup.sh). The repository''s own history, so never in a dump.';
GRANT SELECT ON backups TO recovery_manager, recovery_auditor;

CREATE FUNCTION backups_sync(info jsonb) RETURNS integer
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    listed integer;
BEGIN
    IF jsonb_typeof(info) IS DISTINCT FROM 'array' OR jsonb_typeof(info -> 0 -> 'backup') IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'not the output of pgbackrest info --output=json'
            USING ERRCODE = '22023',
                  DETAIL = 'Expected an array of stanzas, each with a "backup" array.',
                  HINT = 'Run scripts/backup.sh sync DIR.';
    END IF;
    DELETE FROM recovery.backups;
    INSERT INTO recovery.backups (label, type, started_at, finished_at, database_bytes,
                                  repository_bytes, wal_start, wal_stop, lsn_start, lsn_stop)
    SELECT b ->> 'label', b ->> 'type',
           to_timestamp((b -> 'timestamp' ->> 'start')::bigint),
           to_timestamp((b -> 'timestamp' ->> 'stop')::bigint),
           (b -> 'info' ->> 'size')::bigint, (b -> 'info' -> 'repository' ->> 'size')::bigint,
           b -> 'archive' ->> 'start', b -> 'archive' ->> 'stop',
           (b -> 'lsn' ->> 'start')::pg_lsn, (b -> 'lsn' ->> 'stop')::pg_lsn
      FROM jsonb_array_elements(info -> 0 -> 'backup') b;
    GET DIAGNOSTICS listed = ROW_COUNT;
    RETURN listed;
END
$$;
COMMENT ON FUNCTION backups_sync(jsonb) IS
    'Replaces recovery.backups with the backups `pgbackrest info --output=json` lists (superusers: scripts/backup.sh).';

CREATE VIEW backup_health AS
SELECT b.newest_backup_at,
       extract(epoch FROM now() - b.newest_backup_at)::bigint AS newest_backup_age_seconds,
       b.newest_full_backup_at,
       b.backups,
       a.last_archived_wal,
       a.last_archived_time AS newest_archived_wal_at,
       extract(epoch FROM now() - a.last_archived_time)::bigint AS newest_archived_wal_age_seconds,
       a.archived_count AS archived_wal_segments,
       a.failed_count AS failed_archive_attempts,
       a.last_failed_wal,
       a.last_failed_time AS last_archive_failure_at,
       coalesce(a.last_failed_time > a.last_archived_time, a.last_failed_time IS NOT NULL) AS archiving_failing,
       current_setting('archive_mode') AS archive_mode
  FROM (SELECT max(finished_at) AS newest_backup_at,
               max(finished_at) FILTER (WHERE type = 'full') AS newest_full_backup_at,
               count(*) AS backups
          FROM recovery.backups) b,
       pg_stat_archiver a;
COMMENT ON VIEW backup_health IS
    'For alerts: the age of the newest backup and of the newest archived WAL segment, and whether archiving is failing (its last attempt failed). WAL is archived when a segment fills or archive_timeout passes with writes: an idle database archives nothing, so alert on archiving_failing and on the backup''s age.';
GRANT SELECT ON backup_health TO recovery_manager, recovery_auditor, pg_monitor;

REVOKE ALL ON FUNCTION backups_sync(jsonb) FROM PUBLIC;

-------------------------------------------------------------------------------
-- Reads on standbys, and the caller's own writes
-------------------------------------------------------------------------------
-- Read-your-writes on a standby: the gateway sends a read that carries the
-- commit position of the caller's last write to a standby with this first;
-- a standby that has not replayed that far refuses (PR011) and the gateway
-- sends the read to the primary.  On the primary it always passes.
CREATE FUNCTION replayed(lsn pg_lsn) RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF pg_is_in_recovery() AND coalesce(pg_last_wal_replay_lsn() < lsn, true) THEN
        RAISE EXCEPTION 'this standby has replayed the WAL to %, not yet to %',
                        pg_last_wal_replay_lsn(), lsn
            USING ERRCODE = 'PR011',
                  HINT = 'Read from the primary, or wait: the standby is catching up.';
    END IF;
END
$$;
COMMENT ON FUNCTION replayed(pg_lsn) IS
    'Fails with PR011 on a standby that has not replayed the WAL up to lsn (the commit position of a write the caller made); passes on the primary.';
GRANT EXECUTE ON FUNCTION replayed(pg_lsn) TO recovery_viewer, recovery_auditor, recovery_authenticator;
REVOKE ALL ON FUNCTION replayed(pg_lsn) FROM PUBLIC;

-------------------------------------------------------------------------------
-- The erasure ledger
-------------------------------------------------------------------------------
-- The erasure ledger (erasure_ledger.c): a file outside the cluster naming
-- every erased customer, written as the erasure commits; a restore erases
-- them all again before the cluster takes traffic (scripts/backup.sh).
CREATE FUNCTION erasure_ledger_record(customer_id bigint) RETURNS void
    LANGUAGE c VOLATILE STRICT
    AS 'MODULE_PATHNAME', 'recovery_erasure_ledger_record';
COMMENT ON FUNCTION erasure_ledger_record(bigint) IS
    'Records the customer in the erasure ledger (recovery.erasure_ledger) when the transaction commits; customer_erase() calls it.';

CREATE FUNCTION erasure_ledger_replay() RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    ledger CONSTANT text := current_setting('recovery.erasure_ledger', true);
    line text;
    ids bigint[] := '{}';
    customer bigint;
    malformed bigint := 0;
    erased bigint := 0;
    already bigint := 0;
    absent bigint := 0;
BEGIN
    IF coalesce(ledger, '') = '' THEN
        RAISE EXCEPTION 'no erasure ledger is configured' USING ERRCODE = '55000',
            DETAIL = 'recovery.erasure_ledger is empty.',
            HINT = 'Set recovery.erasure_ledger to the file where this cluster records erasures.';
    END IF;
    FOR line IN SELECT regexp_split_to_table(coalesce(pg_read_file(ledger, 0, (pg_stat_file(ledger, true)).size, true), ''), E'\n') LOOP
        CONTINUE WHEN line = '';
        IF line !~ '^[1-9][0-9]{0,17}\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$' THEN
            malformed := malformed + 1;
            RAISE WARNING 'erasure ledger %: skipping a malformed line: %', ledger, left(line, 80);
            CONTINUE;
        END IF;
        ids := ids || split_part(line, E'\t', 1)::bigint;
    END LOOP;
    -- these are in the ledger already
    PERFORM set_config('recovery.erasure_ledger', '', true);
    FOR customer IN SELECT DISTINCT u FROM unnest(ids) u ORDER BY 1 LOOP
        IF NOT EXISTS (SELECT 1 FROM recovery.customers c WHERE c.id = customer) THEN
            absent := absent + 1;
        ELSIF EXISTS (SELECT 1 FROM recovery.customers c WHERE c.id = customer AND c.erased_at IS NOT NULL) THEN
            already := already + 1;
        ELSE
            PERFORM recovery.customer_erase(customer);
            erased := erased + 1;
        END IF;
    END LOOP;
    -- an erased customer's id is never given to another: a later replay
    -- would erase them
    IF cardinality(ids) > 0 THEN
        PERFORM setval('recovery.customers_id_seq',
                       greatest((SELECT max(u) FROM unnest(ids) u),
                                (SELECT last_value FROM recovery.customers_id_seq)));
    END IF;
    RETURN jsonb_build_object('ledger', ledger, 'customers', cardinality(ARRAY(SELECT DISTINCT unnest(ids))),
                              'erased', erased, 'already_erased', already,
                              'not_in_database', absent, 'malformed_lines', malformed);
END
$$;
COMMENT ON FUNCTION erasure_ledger_replay() IS
    'After a restore (superusers; scripts/backup.sh): erases again every customer the erasure ledger names that the restored database still holds, and moves the customer ids past them.';
REVOKE ALL ON FUNCTION erasure_ledger_record(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION erasure_ledger_replay() FROM PUBLIC;

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

    -- the business rows, audited as any change
    UPDATE recovery.customers c
       SET name = 'erased customer ' || c.id, email = NULL, phone = NULL,
           contact_preferences = '{"email": false, "sms": false, "letter": false}',
           erased_at = coalesce(c.erased_at, now()), updated_at = now(), version = c.version + 1
     WHERE c.id = customer_erase.customer_id;
    UPDATE recovery.case_notes n SET body = '[erased]'
     WHERE n.customer_id = customer_erase.customer_id AND n.body <> '[erased]';
    GET DIAGNOSTICS notes = ROW_COUNT;
    UPDATE recovery.case_events e
       SET reason = CASE WHEN e.reason IS NOT NULL THEN '[erased]' END,
           details = recovery.erase_personal(e.details)
     WHERE e.customer_id = customer_erase.customer_id
       AND (e.reason IS DISTINCT FROM CASE WHEN e.reason IS NOT NULL THEN '[erased]' END
            OR e.details IS DISTINCT FROM recovery.erase_personal(e.details));
    GET DIAGNOSTICS events = ROW_COUNT;
    UPDATE recovery.documents d
       SET content = NULL, filename = 'erased', erased_at = now()
     WHERE d.customer_id = customer_erase.customer_id AND d.erased_at IS NULL;
    GET DIAGNOSTICS documents = ROW_COUNT;

    -- then the trail, including the rows the updates above just wrote
    PERFORM set_config('session_replication_role', 'replica', true);
    UPDATE recovery.audit_log a
       SET old_digest = sha256(convert_to(a.old_row::text, 'UTF8')),
           new_digest = sha256(convert_to(a.new_row::text, 'UTF8')),
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
    'GDPR erasure of a customer (admins): personal data removed from customers, notes, event reasons and the audit trail; amounts and history kept; the audit chains still verify.';
GRANT EXECUTE ON FUNCTION customer_erase(bigint) TO recovery_admin;

-------------------------------------------------------------------------------
-- GET /api/v1/jobs: the backups beside the jobs
-------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION api_jobs("limit" integer DEFAULT NULL) RETURNS jsonb
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
