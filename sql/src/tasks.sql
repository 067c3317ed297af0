-- The automation task queue: scheduled work leased by workers.

-- Automation: tasks that workers claim with a lease, complete, or fail; a
-- failed task is retried with exponential backoff and jitter, then
-- dead-lettered with its last error.
CREATE TABLE tasks (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind               text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.-]{0,63}$'),
    run_at             timestamptz NOT NULL,
    payload            jsonb NOT NULL DEFAULT '{}',
    unique_key         text UNIQUE CHECK (length(unique_key) BETWEEN 1 AND 200),
    state              text NOT NULL DEFAULT 'scheduled'
                       CHECK (state IN ('scheduled', 'running', 'done', 'dead')),
    attempts           integer NOT NULL DEFAULT 0,
    max_attempts       integer NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 100),
    retry_base_seconds integer NOT NULL DEFAULT 30 CHECK (retry_base_seconds BETWEEN 1 AND 86400),
    lease_owner        text,
    lease_expires_at   timestamptz,
    last_error         text,
    result             jsonb,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    completed_at       timestamptz
);
CREATE INDEX tasks_due ON tasks (run_at) WHERE state = 'scheduled';
CREATE INDEX tasks_leases ON tasks (lease_expires_at) WHERE state = 'running';
CREATE INDEX tasks_dead ON tasks (id) WHERE state = 'dead';
COMMENT ON TABLE tasks IS
    'Work for automation clients: scheduled, claimed with a lease (running), done, or dead-lettered after its last attempt.';
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
GRANT SELECT ON tasks TO recovery_viewer, recovery_auditor;
SELECT pg_catalog.pg_extension_config_dump('tasks', '');
SELECT pg_catalog.pg_extension_config_dump('tasks_id_seq', '');

CREATE FUNCTION task_worker() RETURNS text
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT coalesce(nullif(current_setting('recovery.actor'), ''), session_user) $$;
COMMENT ON FUNCTION task_worker() IS 'Who holds a lease: the request''s actor (api-key:<name> for workers).';

CREATE FUNCTION task_require_automation() RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF NOT recovery.caller_has_role('recovery_automation')
       AND NOT recovery.caller_has_role('recovery_admin') THEN
        RAISE EXCEPTION 'permission denied to work on tasks' USING ERRCODE = '42501',
            HINT = 'Tasks are for automation clients (an API key with recovery_automation) and admins.';
    END IF;
END
$$;

-- the task the caller holds the lease of, locked; or the reason it cannot
CREATE FUNCTION task_leased(task_id bigint) RETURNS tasks
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    task recovery.tasks;
BEGIN
    SELECT * INTO task FROM recovery.tasks t WHERE t.id = task_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'task % does not exist', task_id USING ERRCODE = 'PR003';
    END IF;
    IF task.state <> 'running' THEN
        RAISE EXCEPTION 'task % is %, not running', task_id, task.state USING ERRCODE = 'PR001',
            HINT = 'Claim a task before completing or failing it.';
    END IF;
    IF task.lease_owner <> recovery.task_worker() OR task.lease_expires_at <= now() THEN
        RAISE EXCEPTION 'the lease on task % is not yours', task_id USING ERRCODE = 'PR009',
            DETAIL = format('It is held by %s until %s.', task.lease_owner, task.lease_expires_at),
            HINT = 'A lease that expired may have gone to another worker: drop this result.';
    END IF;
    RETURN task;
END
$$;
