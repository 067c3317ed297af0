-- pg_recovery 0.1 -> 0.2: what the REST gateway (ngx_recovery) calls.
-- Each function returns the JSON that the gateway sends as the response
-- body, so that a DBA calling it in psql sees what a client sees.  They
-- are SECURITY INVOKER: the role the gateway switched to is the one whose
-- grants apply.
\echo Use "ALTER EXTENSION pg_recovery UPDATE TO '0.2'" to load this file. \quit

-------------------------------------------------------------------------------
-- Authentication, called by the gateway as recovery_authenticator
-------------------------------------------------------------------------------
CREATE FUNCTION api_key_context(key text, request_id text) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    api_key record;
BEGIN
    SELECT * INTO api_key FROM recovery.api_key_authenticate(key);
    IF api_key.role IS NULL THEN
        RAISE EXCEPTION 'authentication failed'
            USING ERRCODE = 'PR007',
                  HINT = 'Send a valid API key.';
    END IF;
    PERFORM set_config('recovery.user_id', '', true);
    PERFORM set_config('recovery.actor', 'api-key:' || api_key.name, true);
    PERFORM set_config('recovery.request_id', coalesce(request_id, ''), true);
    PERFORM set_config('recovery.claims', '', true);
    RETURN api_key.role;
END
$$;
COMMENT ON FUNCTION api_key_context(text, text) IS
    'Checks an API key and sets the request context for it; returns the role to switch to, or fails with PR007. The gateway calls it in SELECT set_config(''role'', api_key_context(...), true).';

CREATE FUNCTION api_login(email text, password text) RETURNS jsonb
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT jsonb_build_object('user_id', l.user_id, 'email', l.user_email,
                              'display_name', l.display_name, 'role', l.role)
    FROM recovery.login(email, password) AS l
$$;
COMMENT ON FUNCTION api_login(text, text) IS
    'recovery.login as JSON, for POST /api/v1/auth/login (the gateway mints the token).';

CREATE FUNCTION api_me() RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT jsonb_build_object(
        'user_id', u.id,
        'email', u.email,
        'display_name', u.display_name,
        'role', current_user,
        'actor', nullif(current_setting('recovery.actor'), ''),
        'authenticated_by', CASE WHEN current_setting('recovery.user_id') = ''
                                 THEN 'api_key' ELSE 'token' END,
        'request_id', nullif(current_setting('recovery.request_id'), ''),
        'read_only', current_setting('transaction_read_only')::boolean)
    FROM (SELECT 1) AS one
    LEFT JOIN recovery.users AS u
           ON u.id = nullif(current_setting('recovery.user_id'), '')::bigint
$$;
COMMENT ON FUNCTION api_me() IS
    'Who the current request is: user, role, how it authenticated, and whether its transaction is read-only (GET /api/v1/auth/me).';

-------------------------------------------------------------------------------
-- Recovery cases
-------------------------------------------------------------------------------
CREATE FUNCTION api_case_get(case_id bigint) RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    result jsonb;
BEGIN
    SELECT to_jsonb(c)
           || jsonb_build_object(
                'customer', jsonb_build_object('id', cu.id, 'name', cu.name,
                                               'external_ref', cu.external_ref),
                'transitions', coalesce((
                    SELECT jsonb_agg(jsonb_build_object(
                               'event', t.event, 'to_state', t.to_state,
                               'required_details', to_jsonb(t.required_details))
                               ORDER BY t.event)
                    FROM recovery.case_transitions(c.id) AS t), '[]'))
      INTO result
      FROM recovery.recovery_cases AS c
      JOIN recovery.customers AS cu ON cu.id = c.customer_id
     WHERE c.id = api_case_get.case_id;

    IF result IS NULL THEN
        RAISE EXCEPTION 'recovery case % does not exist', case_id
            USING ERRCODE = 'PR003',
                  HINT = 'List the cases with GET /api/v1/recovery-cases.';
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION api_case_get(bigint) IS
    'A recovery case with its customer and the events the caller may fire now (GET /api/v1/recovery-cases/{id}).';

CREATE FUNCTION api_cases_list(state text DEFAULT NULL, after bigint DEFAULT NULL,
                               "limit" integer DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    page_size integer := coalesce("limit", 50);
    items jsonb;
BEGIN
    IF page_size NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'limit % is out of range', page_size
            USING ERRCODE = 'PR004',
                  DETAIL = 'A page holds between 1 and 200 cases.',
                  HINT = 'Ask for fewer cases and follow next_after.';
    END IF;
    IF state IS NOT NULL AND NOT recovery.case_state_is_valid(state) THEN
        RAISE EXCEPTION 'unknown case state "%"', state
            USING ERRCODE = 'PR004',
                  HINT = 'recovery.case_states() lists the states.';
    END IF;

    SELECT coalesce(jsonb_agg(to_jsonb(page) ORDER BY page.id), '[]')
      INTO items
      FROM (SELECT c.id, c.customer_id, c.currency, c.balance, c.state,
                   c.assigned_user_id, c.priority, c.next_action_at,
                   c.opened_at, c.updated_at, c.version
              FROM recovery.recovery_cases AS c
             WHERE (api_cases_list.state IS NULL OR c.state = api_cases_list.state)
               AND (after IS NULL OR c.id > after)
             ORDER BY c.id
             LIMIT page_size) AS page;

    RETURN jsonb_build_object(
        'items', items,
        'next_after', CASE WHEN jsonb_array_length(items) = page_size
                           THEN items -> -1 -> 'id' END);
END
$$;
COMMENT ON FUNCTION api_cases_list(text, bigint, integer) IS
    'A page of recovery cases by id, optionally in one state; pass next_after as after for the next page (GET /api/v1/recovery-cases).';

CREATE FUNCTION api_case_transition(case_id bigint, event text, expected_version integer,
                                    details jsonb DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM recovery.case_transition(case_id, event, expected_version,
                                     coalesce(details, '{}'));
    RETURN recovery.api_case_get(case_id);
END
$$;
COMMENT ON FUNCTION api_case_transition(bigint, text, integer, jsonb) IS
    'Fires an event on a case (POST /api/v1/recovery-cases/{id}/transitions); returns the case as api_case_get does.';

CREATE FUNCTION api_case_record_payment(case_id bigint, amount bigint, currency text,
                                        reference text DEFAULT NULL,
                                        allow_overpayment boolean DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    receipt jsonb;
BEGIN
    SELECT to_jsonb(r) INTO receipt
      FROM recovery.case_record_payment(case_id, amount, currency, reference, NULL,
                                        coalesce(allow_overpayment, false)) AS r;
    RETURN jsonb_build_object('receipt', receipt,
                              'case', recovery.api_case_get(case_id));
END
$$;
COMMENT ON FUNCTION api_case_record_payment(bigint, bigint, text, text, boolean) IS
    'Records money received against a case (POST /api/v1/recovery-cases/{id}/payments); returns the receipt and the case.';

-------------------------------------------------------------------------------
-- Grants
-------------------------------------------------------------------------------
REVOKE ALL ON FUNCTION api_key_context(text, text), api_login(text, text), api_me(),
                       api_case_get(bigint), api_cases_list(text, bigint, integer),
                       api_case_transition(bigint, text, integer, jsonb),
                       api_case_record_payment(bigint, bigint, text, text, boolean)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_key_context(text, text), api_login(text, text)
    TO recovery_authenticator;
GRANT EXECUTE ON FUNCTION api_me(), api_case_get(bigint), api_cases_list(text, bigint, integer)
    TO recovery_viewer, recovery_auditor;
GRANT EXECUTE ON FUNCTION api_case_transition(bigint, text, integer, jsonb),
                          api_case_record_payment(bigint, bigint, text, text, boolean)
    TO recovery_agent, recovery_automation;

-------------------------------------------------------------------------------
-- Customers
-------------------------------------------------------------------------------
CREATE FUNCTION api_customer_create(external_ref text, name text, email text DEFAULT NULL,
                                    phone text DEFAULT NULL, locale text DEFAULT NULL,
                                    time_zone text DEFAULT NULL) RETURNS jsonb
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT to_jsonb(c)
    FROM recovery.customer_create(external_ref, name, email, phone,
                                  coalesce(locale, 'en-US'), coalesce(time_zone, 'UTC')) AS c
$$;
COMMENT ON FUNCTION api_customer_create(text, text, text, text, text, text) IS
    'Creates a customer (POST /api/v1/customers); an external_ref already in use is 23505, HTTP 409.';

REVOKE ALL ON FUNCTION api_customer_create(text, text, text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_customer_create(text, text, text, text, text, text)
    TO recovery_agent, recovery_automation;

-------------------------------------------------------------------------------
-- Idempotency: a POST retried with the same Idempotency-Key and body gets the
-- first response and writes nothing.  The gateway calls idempotency_begin
-- before the routed function and idempotency_store around it, in the same
-- transaction: a failed call leaves no key behind, and a concurrent request
-- with the same key waits on the key's row, then replays.
-------------------------------------------------------------------------------
CREATE TABLE idempotency_keys (
    owner        text NOT NULL,
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    route        text NOT NULL,
    request_hash text NOT NULL,
    status       integer,
    response     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (owner, key)
);
COMMENT ON TABLE idempotency_keys IS
    'Responses of POST requests by (owner, Idempotency-Key), replayed to retries until they expire.';
COMMENT ON COLUMN idempotency_keys.owner IS 'Who sent the request: recovery.actor (a user''s email or api-key:<name>).';
COMMENT ON COLUMN idempotency_keys.request_hash IS 'SHA-256 of the request body, hex: the same key with another body is refused.';
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

CREATE FUNCTION idempotency_begin(key text, route text, request_hash text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    who text := coalesce(nullif(current_setting('recovery.actor'), ''), session_user);
    -- missing_ok: the GUC exists once pg_recovery's library is loaded
    ttl interval := coalesce(nullif(current_setting('recovery.idempotency_ttl', true), ''),
                             '1 day')::interval;
    seen recovery.idempotency_keys;
BEGIN
    DELETE FROM recovery.idempotency_keys k
     WHERE k.owner = who AND k.key = idempotency_begin.key AND k.expires_at <= now();
    INSERT INTO recovery.idempotency_keys (owner, key, route, request_hash, expires_at)
    VALUES (who, key, route, request_hash, now() + ttl)
    ON CONFLICT ON CONSTRAINT idempotency_keys_pkey DO NOTHING;
    IF FOUND THEN
        RETURN;
    END IF;

    SELECT * INTO seen FROM recovery.idempotency_keys k
     WHERE k.owner = who AND k.key = idempotency_begin.key;
    IF seen.route <> route OR seen.request_hash <> request_hash THEN
        RAISE EXCEPTION 'idempotency key "%" was used for another request', key
            USING ERRCODE = 'PR010',
                  DETAIL = format('It was first used for %s with another body, at %s.',
                                  seen.route, seen.created_at),
                  HINT = 'Use a new key for a new request; retry a request only with its own key and the same body.';
    END IF;
    RAISE EXCEPTION 'replay of the response to idempotency key "%"', key
        USING ERRCODE = 'PR011',
              DETAIL = jsonb_build_object('status', seen.status, 'body', seen.response)::text;
END
$$;
COMMENT ON FUNCTION idempotency_begin(text, text, text) IS
    'Claims an Idempotency-Key for this request, or raises PR011 with the first response (in DETAIL, as JSON) for a retry, or PR010 when the key was used for another request.';

CREATE FUNCTION idempotency_store(key text, status integer, response jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    UPDATE recovery.idempotency_keys k
       SET status = idempotency_store.status, response = idempotency_store.response
     WHERE k.owner = coalesce(nullif(current_setting('recovery.actor'), ''), session_user)
       AND k.key = idempotency_store.key;
    RETURN response;
END
$$;
COMMENT ON FUNCTION idempotency_store(text, integer, jsonb) IS
    'Keeps the response of the request that claimed the key, and returns it.';

CREATE FUNCTION idempotency_purge() RETURNS bigint
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    WITH gone AS (DELETE FROM recovery.idempotency_keys WHERE expires_at <= now() RETURNING 1)
    SELECT count(*) FROM gone
$$;
COMMENT ON FUNCTION idempotency_purge() IS 'Deletes expired idempotency keys; returns how many (for a pg_cron job).';

REVOKE ALL ON idempotency_keys FROM PUBLIC;
GRANT SELECT ON idempotency_keys TO recovery_auditor;
REVOKE ALL ON FUNCTION idempotency_begin(text, text, text), idempotency_store(text, integer, jsonb),
                       idempotency_purge() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION idempotency_begin(text, text, text), idempotency_store(text, integer, jsonb)
    TO recovery_viewer, recovery_auditor;
