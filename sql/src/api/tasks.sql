-- REST: the automation task queue.

CREATE FUNCTION api_task_schedule(kind text, run_at timestamptz DEFAULT NULL,
                                  payload jsonb DEFAULT NULL, unique_key text DEFAULT NULL,
                                  max_attempts integer DEFAULT NULL,
                                  retry_base_seconds integer DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    task recovery.tasks;
BEGIN
    PERFORM recovery.task_require_automation();
    IF payload IS NOT NULL AND jsonb_typeof(payload) <> 'object' THEN
        RAISE EXCEPTION 'payload must be a JSON object' USING ERRCODE = 'PR004';
    END IF;
    INSERT INTO recovery.tasks (kind, run_at, payload, unique_key, max_attempts, retry_base_seconds)
    VALUES (kind, coalesce(run_at, now()), coalesce(payload, '{}'), unique_key,
            coalesce(max_attempts, 5), coalesce(retry_base_seconds, 30))
    ON CONFLICT ON CONSTRAINT tasks_unique_key_key DO NOTHING
    RETURNING * INTO task;
    IF task.id IS NULL THEN
        -- scheduled before under this unique key: that task, unchanged
        SELECT * INTO task FROM recovery.tasks t WHERE t.unique_key = api_task_schedule.unique_key;
        RETURN to_jsonb(task) || jsonb_build_object('scheduled_before', true);
    END IF;
    RETURN to_jsonb(task) || jsonb_build_object('scheduled_before', false);
EXCEPTION
    WHEN check_violation OR not_null_violation THEN
        RAISE EXCEPTION 'invalid task: %', SQLERRM USING ERRCODE = 'PR004',
            HINT = 'kind is lower case (a-z, 0-9, . _ -); max_attempts 1 to 100; retry_base_seconds 1 to 86400.';
END
$$;
COMMENT ON FUNCTION api_task_schedule(text, timestamptz, jsonb, text, integer, integer) IS
    'POST /api/v1/automation/tasks/schedule: a task of a kind, to run at run_at (now by default); with unique_key it is scheduled once.';
GRANT EXECUTE ON FUNCTION api_task_schedule(text, timestamptz, jsonb, text, integer, integer) TO recovery_automation, recovery_admin;

CREATE FUNCTION api_task_get(task_id bigint) RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    result jsonb;
BEGIN
    SELECT to_jsonb(t) INTO result FROM recovery.tasks AS t WHERE t.id = task_id;
    IF result IS NULL THEN
        RAISE EXCEPTION 'task % does not exist', task_id USING ERRCODE = 'PR003';
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION api_task_get(bigint) IS 'GET /api/v1/automation/tasks/{taskId}.';
GRANT EXECUTE ON FUNCTION api_task_get(bigint) TO recovery_automation, recovery_admin;

CREATE FUNCTION api_tasks_claim(kinds jsonb DEFAULT NULL, "limit" integer DEFAULT NULL,
                                lease_seconds integer DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    claimed jsonb;
    lease integer := coalesce(lease_seconds, 60);
    wanted text[];
BEGIN
    PERFORM recovery.task_require_automation();
    IF kinds IS NOT NULL THEN
        IF jsonb_typeof(kinds) <> 'array' THEN
            RAISE EXCEPTION 'kinds must be a JSON array of task kinds' USING ERRCODE = 'PR004';
        END IF;
        wanted := ARRAY(SELECT jsonb_array_elements_text(kinds));
    END IF;
    IF lease NOT BETWEEN 1 AND 3600 THEN
        RAISE EXCEPTION 'lease_seconds % is out of range', lease USING ERRCODE = 'PR004',
            HINT = 'A lease lasts 1 to 3600 seconds.';
    END IF;
    -- due tasks, and tasks whose worker let the lease expire; SKIP LOCKED
    -- lets workers claim side by side without waiting on each other
    WITH picked AS (
        SELECT t.id FROM recovery.tasks AS t
         WHERE ((t.state = 'scheduled' AND t.run_at <= now())
                OR (t.state = 'running' AND t.lease_expires_at <= now()))
           AND (wanted IS NULL OR t.kind = ANY (wanted))
         ORDER BY t.run_at, t.id
         LIMIT recovery.page_size("limit")
         FOR UPDATE SKIP LOCKED
    ), updated AS (
        UPDATE recovery.tasks AS t
           SET state = 'running', attempts = t.attempts + 1,
               lease_owner = recovery.task_worker(),
               lease_expires_at = now() + make_interval(secs => lease), updated_at = now()
          FROM picked WHERE t.id = picked.id
        RETURNING t.*
    )
    SELECT coalesce(jsonb_agg(to_jsonb(u) ORDER BY u.run_at, u.id), '[]') INTO claimed FROM updated AS u;
    RETURN jsonb_build_object('items', claimed);
END
$$;
COMMENT ON FUNCTION api_tasks_claim(jsonb, integer, integer) IS
    'POST /api/v1/automation/tasks/claim: due tasks (of some kinds), leased to the caller for lease_seconds.';
GRANT EXECUTE ON FUNCTION api_tasks_claim(jsonb, integer, integer) TO recovery_automation, recovery_admin;

CREATE FUNCTION api_task_complete(task_id bigint, result jsonb DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    task recovery.tasks;
BEGIN
    PERFORM recovery.task_require_automation();
    PERFORM recovery.task_leased(task_id);
    UPDATE recovery.tasks t
       SET state = 'done', result = api_task_complete.result, completed_at = now(),
           lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
     WHERE t.id = task_id RETURNING * INTO task;
    RETURN to_jsonb(task);
END
$$;
COMMENT ON FUNCTION api_task_complete(bigint, jsonb) IS
    'PUT /api/v1/automation/tasks/{taskId}/complete: the caller, holding the lease, finished it.';
GRANT EXECUTE ON FUNCTION api_task_complete(bigint, jsonb) TO recovery_automation, recovery_admin;

CREATE FUNCTION api_task_fail(task_id bigint, error text) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    task recovery.tasks;
    delay double precision;
BEGIN
    PERFORM recovery.task_require_automation();
    task := recovery.task_leased(task_id);
    IF error IS NULL OR length(error) = 0 THEN
        RAISE EXCEPTION 'say what went wrong' USING ERRCODE = 'PR004', HINT = 'Send {"error": "..."}.';
    END IF;
    IF task.attempts >= task.max_attempts THEN
        UPDATE recovery.tasks t
           SET state = 'dead', last_error = left(error, 10000), lease_owner = NULL,
               lease_expires_at = NULL, updated_at = now()
         WHERE t.id = task_id RETURNING * INTO task;
    ELSE
        -- base * 2^(attempts - 1), with +/- 25% jitter so retries spread out
        delay := task.retry_base_seconds * power(2, task.attempts - 1) * (0.75 + random() * 0.5);
        UPDATE recovery.tasks t
           SET state = 'scheduled', last_error = left(error, 10000),
               run_at = now() + make_interval(secs => delay),
               lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
         WHERE t.id = task_id RETURNING * INTO task;
    END IF;
    RETURN to_jsonb(task);
END
$$;
COMMENT ON FUNCTION api_task_fail(bigint, text) IS
    'POST /api/v1/automation/tasks/{taskId}/fail: retried after retry_base_seconds * 2^(attempts-1) +/- 25%, dead-lettered after max_attempts.';
GRANT EXECUTE ON FUNCTION api_task_fail(bigint, text) TO recovery_automation, recovery_admin;

CREATE FUNCTION api_tasks_dead(cursor text DEFAULT NULL, "limit" integer DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    page_size integer := recovery.page_size("limit");
    after bigint := (recovery.cursor_decode(cursor) ->> 'id')::bigint;
    items jsonb;
BEGIN
    SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.id), '[]') INTO items
      FROM (SELECT * FROM recovery.tasks WHERE state = 'dead' AND (after IS NULL OR id > after)
             ORDER BY id LIMIT page_size) AS t;
    RETURN recovery.page_of(items, page_size,
                            jsonb_build_object('id', items -> -1 -> 'id'));
END
$$;
COMMENT ON FUNCTION api_tasks_dead(text, integer) IS 'GET /api/v1/automation/tasks/dead-letters.';
GRANT EXECUTE ON FUNCTION api_tasks_dead(text, integer) TO recovery_automation, recovery_admin;

CREATE FUNCTION api_task_requeue(task_id bigint) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    task recovery.tasks;
BEGIN
    PERFORM recovery.task_require_automation();
    UPDATE recovery.tasks t
       SET state = 'scheduled', attempts = 0, run_at = now(), updated_at = now()
     WHERE t.id = task_id AND t.state = 'dead' RETURNING * INTO task;
    IF task.id IS NULL THEN
        IF NOT EXISTS (SELECT 1 FROM recovery.tasks t WHERE t.id = task_id) THEN
            RAISE EXCEPTION 'task % does not exist', task_id USING ERRCODE = 'PR003';
        END IF;
        RAISE EXCEPTION 'task % is not dead-lettered', task_id USING ERRCODE = 'PR001',
            HINT = 'Only dead letters are requeued.';
    END IF;
    RETURN to_jsonb(task);
END
$$;
COMMENT ON FUNCTION api_task_requeue(bigint) IS
    'POST /api/v1/automation/tasks/{taskId}/requeue: a dead letter is scheduled again with fresh attempts.';
GRANT EXECUTE ON FUNCTION api_task_requeue(bigint) TO recovery_automation, recovery_admin;

CREATE FUNCTION api_cases_pending("limit" integer DEFAULT NULL) RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT jsonb_build_object('items', coalesce(jsonb_agg(to_jsonb(c) ORDER BY c.priority, c.next_action_at NULLS FIRST, c.id), '[]'))
    FROM (SELECT id, customer_id, currency, balance, state, assigned_user_id, priority,
                 next_action_at, version, recovery.case_overdue_days(id) AS overdue_days
            FROM recovery.recovery_cases
           WHERE NOT recovery.case_state_is_terminal(state)
             AND state NOT IN ('disputed', 'escalated')
             AND (next_action_at IS NULL OR next_action_at <= now())
           ORDER BY priority, next_action_at NULLS FIRST, id
           LIMIT recovery.page_size("limit")) AS c
$$;
COMMENT ON FUNCTION api_cases_pending(integer) IS
    'GET /api/v1/automation/recovery-cases/pending: open cases whose next action is due (not disputed or escalated), most urgent first.';
GRANT EXECUTE ON FUNCTION api_cases_pending(integer) TO recovery_automation, recovery_admin;

-- The automation contract's reminders and extractions: each schedules a
-- task (kind reminder or extraction) that the reminders and extraction
-- workers perform.
CREATE FUNCTION api_reminder_schedule(case_id bigint, remind_at timestamptz DEFAULT NULL,
                                      channel text DEFAULT NULL, template text DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    target recovery.recovery_cases;
BEGIN
    PERFORM recovery.task_require_automation();
    SELECT * INTO target FROM recovery.recovery_cases c WHERE c.id = api_reminder_schedule.case_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'recovery case % does not exist', case_id USING ERRCODE = 'PR003';
    END IF;
    IF recovery.case_state_is_terminal(target.state) THEN
        RAISE EXCEPTION 'recovery case % is %: nobody is reminded of it', case_id, target.state
            USING ERRCODE = 'PR001';
    END IF;
    IF (channel IS NULL) <> (template IS NULL) THEN
        RAISE EXCEPTION 'give both channel and template, or neither' USING ERRCODE = 'PR004',
            HINT = 'Without them the case''s dunning policy decides.';
    END IF;
    IF template IS NOT NULL AND NOT EXISTS (
           SELECT 1 FROM recovery.templates t
            WHERE t.name = api_reminder_schedule.template AND t.channel = api_reminder_schedule.channel) THEN
        RAISE EXCEPTION 'there is no % template named "%"', channel, template USING ERRCODE = 'PR004';
    END IF;
    RETURN recovery.api_task_schedule('reminder', coalesce(remind_at, now()),
                                      jsonb_strip_nulls(jsonb_build_object(
                                          'case_id', case_id, 'channel', channel,
                                          'template', template)));
END
$$;
COMMENT ON FUNCTION api_reminder_schedule(bigint, timestamptz, text, text) IS
    'POST /api/v1/automation/reminders: schedules a task of kind reminder for a case (its policy decides the message unless channel and template are given).';
GRANT EXECUTE ON FUNCTION api_reminder_schedule(bigint, timestamptz, text, text) TO recovery_automation, recovery_admin;

-- whose key seals an extraction task's message: its case's customer, else
-- the shared key of customer 0
CREATE FUNCTION extraction_task_customer(payload jsonb) RETURNS bigint
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT coalesce((SELECT c.customer_id FROM recovery.recovery_cases c
                      WHERE c.id = (payload ->> 'case_id')::bigint), 0)
$$;

CREATE FUNCTION api_extraction_schedule(source text, document_id bigint DEFAULT NULL,
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
