-- pg_recovery 0.6: the extension installs on a server that does not preload
-- it.  Everything works there but delivery: reminders are queued in the
-- outbox and wait until pg_recovery is added to shared_preload_libraries,
-- which starts the delivery worker.  CREATE EXTENSION (and this update)
-- says so in a WARNING, and GET /api/v1/delivery says so too.
-- And two holes that tokens and keys opened: a token's sub must name an
-- enabled user (token_user), and a stored Idempotency-Key response never
-- keeps the secret it showed (an API key).
\echo Use "ALTER EXTENSION pg_recovery UPDATE TO '0.6'" to load this file. \quit

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
    END
$$;
COMMENT ON FUNCTION delivery_problem() IS
    'Why messages are not delivered, as message, detail and hint, when the server cannot run the delivery worker; NULL when it can.';

-- SECURITY DEFINER: pg_stat_activity hides other users' sessions
CREATE OR REPLACE FUNCTION api_delivery_status() RETURNS jsonb
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

-------------------------------------------------------------------------------
-- A token's user: the gateway sets recovery.user_id through this in every
-- request's context, so a token whose user was deleted or disabled, or that
-- names a user who never was, stops working at once.
-------------------------------------------------------------------------------
CREATE FUNCTION token_user(user_id text) RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF user_id !~ '^[0-9]{1,18}$' OR NOT EXISTS (
           SELECT 1 FROM recovery.users u WHERE u.id = user_id::bigint AND NOT u.disabled) THEN
        RAISE EXCEPTION 'the token names no enabled user'
            USING ERRCODE = 'PR007',
                  DETAIL = format('User %s does not exist or is disabled.', user_id),
                  HINT = 'Sign in again; an administrator can enable the user.';
    END IF;
    RETURN user_id;
END
$$;
COMMENT ON FUNCTION token_user(text) IS
    'The user id a token names (its sub), once it is known to be an enabled user; PR007 (401) otherwise.';
REVOKE ALL ON FUNCTION token_user(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION token_user(text) TO recovery_authenticator;

-------------------------------------------------------------------------------
-- A retry with the same Idempotency-Key replays the first response, which is
-- kept for a day where auditors can read it: a secret it showed once (the
-- key of POST /api-keys) is not kept, and the replay says so.
-------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION idempotency_store(key text, status integer, response jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    kept jsonb := response;
BEGIN
    IF jsonb_typeof(response) = 'object' AND response ? 'key' THEN
        kept := (response - 'key') || jsonb_build_object('key_withheld', true,
            'note', 'This is a replay: the key was issued by the first request and is shown only once.');
    END IF;
    UPDATE recovery.idempotency_keys k
       SET status = idempotency_store.status, response = kept
     WHERE k.owner = coalesce(nullif(current_setting('recovery.actor'), ''), session_user)
       AND k.key = idempotency_store.key;
    RETURN response;
END
$$;
COMMENT ON FUNCTION idempotency_store(text, integer, jsonb) IS
    'Keeps the response of the request that claimed the key, without a secret it showed (an API key), and returns it whole.';
