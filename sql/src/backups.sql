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
