-- pg_recovery 0.1 -> 0.2: what the REST gateway (ngx_recovery) calls.
-- Each function returns the JSON that the gateway sends as the response
-- body, so that a DBA calling it in psql sees what a client sees.  They
-- are SECURITY INVOKER: the role the gateway switched to is the one whose
-- grants apply.
\echo Use "ALTER EXTENSION pg_recovery UPDATE TO '0.2'" to load this file. \quit

CREATE FUNCTION caller_has_role(role text) RETURNS boolean
    LANGUAGE c STABLE STRICT
    AS 'MODULE_PATHNAME', 'recovery_caller_has_role_sql';
COMMENT ON FUNCTION caller_has_role(text) IS
    'Whether the role the request runs as (after SET ROLE, outside SECURITY DEFINER functions) has the privileges of role.';

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
                       api_case_get(bigint),
                       api_case_transition(bigint, text, integer, jsonb),
                       api_case_record_payment(bigint, bigint, text, text, boolean)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_key_context(text, text), api_login(text, text)
    TO recovery_authenticator;
GRANT EXECUTE ON FUNCTION api_me(), api_case_get(bigint)
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
-- with the same key waits on the key's row, then replays.  A replay skips
-- the call (CASE WHEN idempotency_replaying(key) ...) and answers with what
-- idempotency_begin returned.
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

CREATE FUNCTION idempotency_begin(key text, route text, request_hash text) RETURNS jsonb
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
        RETURN NULL;
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
    -- a retry: the call of this transaction must not run (idempotency_replaying)
    PERFORM set_config('recovery.idempotency_replay', key, true);
    RETURN jsonb_build_object('status', seen.status, 'body', seen.response);
END
$$;
COMMENT ON FUNCTION idempotency_begin(text, text, text) IS
    'Claims an Idempotency-Key for this request (NULL), or returns the first response ({"status", "body"}) for a retry, or fails with PR010 when the key was used for another request.';

CREATE FUNCTION idempotency_replaying(key text) RETURNS boolean
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT coalesce(current_setting('recovery.idempotency_replay', true), '') = key $$;
COMMENT ON FUNCTION idempotency_replaying(text) IS
    'Whether idempotency_begin found this key a retry in this transaction: the routed call is then skipped.';

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
REVOKE ALL ON FUNCTION idempotency_begin(text, text, text), idempotency_replaying(text),
                       idempotency_store(text, integer, jsonb), idempotency_purge() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION idempotency_begin(text, text, text), idempotency_replaying(text),
                          idempotency_store(text, integer, jsonb)
    TO recovery_viewer, recovery_auditor;

-------------------------------------------------------------------------------
-- Pagination: keyset, with an opaque cursor (base64url of the last row's
-- sort key) and a hard maximum page size.
-------------------------------------------------------------------------------
CREATE FUNCTION cursor_encode(mark jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT rtrim(translate(encode(convert_to(mark::text, 'UTF8'), 'base64'),
                           E'+/\n', '-_'), '=')
$$;
COMMENT ON FUNCTION cursor_encode(jsonb) IS 'The opaque cursor of a page position (base64url JSON).';

CREATE FUNCTION cursor_decode(cursor text) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    padded text;
    mark jsonb;
BEGIN
    IF cursor IS NULL THEN
        RETURN NULL;
    END IF;
    padded := translate(cursor, '-_', '+/');
    padded := padded || repeat('=', (4 - length(padded) % 4) % 4);
    mark := convert_from(decode(padded, 'base64'), 'UTF8')::jsonb;
    IF jsonb_typeof(mark) <> 'object' THEN
        RAISE EXCEPTION 'not an object';
    END IF;
    RETURN mark;
EXCEPTION WHEN OTHERS THEN
    RAISE EXCEPTION 'invalid cursor "%"', left(cursor, 40)
        USING ERRCODE = 'PR004',
              HINT = 'Pass back the next_cursor of the previous page unchanged, or no cursor for the first page.';
END
$$;
COMMENT ON FUNCTION cursor_decode(text) IS 'The page position of a cursor made by cursor_encode, or PR004.';

CREATE FUNCTION page_size("limit" integer) RETURNS integer
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF "limit" IS NULL THEN
        RETURN 50;
    END IF;
    IF "limit" NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'limit % is out of range', "limit"
            USING ERRCODE = 'PR004',
                  DETAIL = 'A page holds between 1 and 200 items.',
                  HINT = 'Ask for fewer and follow next_cursor.';
    END IF;
    RETURN "limit";
END
$$;
COMMENT ON FUNCTION page_size(integer) IS 'The page size asked for, 50 by default, at most 200.';

CREATE FUNCTION page_of(items jsonb, page_size integer, mark jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT jsonb_build_object(
        'items', items,
        'next_cursor', CASE WHEN jsonb_array_length(items) = page_size
                            THEN recovery.cursor_encode(mark) END)
$$;
COMMENT ON FUNCTION page_of(jsonb, integer, jsonb) IS
    'A page: its items, and the cursor of mark (the last item''s sort key) when the page is full.';

CREATE FUNCTION like_pattern(term text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT '%' || replace(replace(replace(term, '\', '\\'), '%', '\%'), '_', '\_') || '%'
$$;
COMMENT ON FUNCTION like_pattern(text) IS 'An ILIKE pattern that finds term anywhere, with its wildcards escaped.';

-------------------------------------------------------------------------------
-- Customers
-------------------------------------------------------------------------------
CREATE FUNCTION api_customers_list(q text DEFAULT NULL, cursor text DEFAULT NULL,
                                   "limit" integer DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    page_size integer := recovery.page_size("limit");
    after bigint := (recovery.cursor_decode(cursor) ->> 'id')::bigint;
    pattern text := recovery.like_pattern(nullif(btrim(q), ''));
    items jsonb;
BEGIN
    SELECT coalesce(jsonb_agg(to_jsonb(c) ORDER BY c.id), '[]')
      INTO items
      FROM (SELECT cu.id, cu.external_ref, cu.name, cu.email, cu.phone, cu.locale,
                   cu.time_zone, cu.created_at, cu.updated_at, cu.version
              FROM recovery.customers AS cu
             WHERE (after IS NULL OR cu.id > after)
               AND (pattern IS NULL OR cu.name ILIKE pattern OR cu.email ILIKE pattern
                    OR cu.external_ref ILIKE pattern)
             ORDER BY cu.id
             LIMIT page_size) AS c;
    RETURN recovery.page_of(items, page_size,
                            jsonb_build_object('id', items -> -1 -> 'id'));
END
$$;
COMMENT ON FUNCTION api_customers_list(text, text, integer) IS
    'A page of customers by id, optionally those whose name, email or reference contains q (GET /api/v1/customers).';

CREATE FUNCTION api_customer_get(customer_id bigint) RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    result jsonb;
BEGIN
    SELECT to_jsonb(cu) || jsonb_build_object(
               'cases', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                      'id', c.id, 'state', c.state, 'currency', c.currency,
                                      'balance', c.balance, 'opened_at', c.opened_at) ORDER BY c.id)
                                  FROM recovery.recovery_cases AS c WHERE c.customer_id = cu.id), '[]'))
      INTO result
      FROM recovery.customers AS cu
     WHERE cu.id = api_customer_get.customer_id;
    IF result IS NULL THEN
        RAISE EXCEPTION 'customer % does not exist', customer_id
            USING ERRCODE = 'PR003', HINT = 'Search with GET /api/v1/customers?q=...';
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION api_customer_get(bigint) IS 'A customer with their cases (GET /api/v1/customers/{id}).';

CREATE FUNCTION customer_update(customer_id bigint, expected_version integer,
                                name text DEFAULT NULL, email text DEFAULT NULL,
                                phone text DEFAULT NULL, locale text DEFAULT NULL,
                                time_zone text DEFAULT NULL,
                                contact_preferences jsonb DEFAULT NULL)
    RETURNS customers
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    current recovery.customers;
    updated recovery.customers;
BEGIN
    IF NOT recovery.caller_has_role('recovery_agent')
       AND NOT recovery.caller_has_role('recovery_automation') THEN
        RAISE EXCEPTION 'permission denied to update customers'
            USING ERRCODE = '42501', HINT = 'Ask an agent to do it.';
    END IF;
    IF expected_version IS NULL THEN
        RAISE EXCEPTION 'expected_version is required' USING ERRCODE = 'PR004',
            HINT = 'Send the version of the customer you read.';
    END IF;
    SELECT * INTO current FROM recovery.customers c WHERE c.id = customer_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'customer % does not exist', customer_id USING ERRCODE = 'PR003';
    END IF;
    IF current.version <> expected_version THEN
        RAISE EXCEPTION 'customer % was changed by someone else', customer_id
            USING ERRCODE = 'PR002',
                  DETAIL = format('You expected version %s; the customer is now at version %s.',
                                  expected_version, current.version),
                  HINT = 'Reload the customer and apply your change again.';
    END IF;
    IF time_zone IS NOT NULL THEN
        BEGIN
            PERFORM now() AT TIME ZONE time_zone;
        EXCEPTION WHEN invalid_parameter_value THEN
            RAISE EXCEPTION 'unknown time zone "%"', time_zone USING ERRCODE = 'PR004',
                HINT = 'Use an IANA time zone name such as Europe/Berlin or America/New_York.';
        END;
    END IF;
    UPDATE recovery.customers c
       SET name = coalesce(customer_update.name, c.name),
           email = coalesce(customer_update.email, c.email),
           phone = coalesce(customer_update.phone, c.phone),
           locale = coalesce(customer_update.locale, c.locale),
           time_zone = coalesce(customer_update.time_zone, c.time_zone),
           contact_preferences = coalesce(customer_update.contact_preferences, c.contact_preferences),
           updated_at = now(),
           version = c.version + 1
     WHERE c.id = customer_id
    RETURNING * INTO updated;
    RETURN updated;
EXCEPTION
    WHEN check_violation OR not_null_violation THEN
        RAISE EXCEPTION 'invalid customer: %', SQLERRM USING ERRCODE = 'PR004',
            HINT = 'Email needs an @; phone is E.164 such as +441632960961; locale looks like en-US; contact_preferences is an object.';
END
$$;
COMMENT ON FUNCTION customer_update(bigint, integer, text, text, text, text, text, jsonb) IS
    'Changes the given fields of a customer if its version is still expected_version; NULL keeps a field.';

CREATE FUNCTION api_customer_update(customer_id bigint, expected_version integer,
                                    name text DEFAULT NULL, email text DEFAULT NULL,
                                    phone text DEFAULT NULL, locale text DEFAULT NULL,
                                    time_zone text DEFAULT NULL,
                                    contact_preferences jsonb DEFAULT NULL) RETURNS jsonb
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT to_jsonb(c)
    FROM recovery.customer_update(customer_id, expected_version, name, email, phone,
                                  locale, time_zone, contact_preferences) AS c
$$;
COMMENT ON FUNCTION api_customer_update(bigint, integer, text, text, text, text, text, jsonb) IS
    'PATCH /api/v1/customers/{id}: customer_update as JSON.';

-------------------------------------------------------------------------------
-- Payments
-------------------------------------------------------------------------------
CREATE FUNCTION api_payments_list(customer_id bigint DEFAULT NULL, status text DEFAULT NULL,
                                  due_from date DEFAULT NULL, due_to date DEFAULT NULL,
                                  cursor text DEFAULT NULL, "limit" integer DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    page_size integer := recovery.page_size("limit");
    mark jsonb := recovery.cursor_decode(cursor);
    after_due date := (mark ->> 'due_date')::date;
    after_id bigint := (mark ->> 'id')::bigint;
    items jsonb;
BEGIN
    IF status IS NOT NULL AND status NOT IN ('pending', 'failed', 'overdue', 'paid') THEN
        RAISE EXCEPTION 'unknown payment status "%"', status USING ERRCODE = 'PR004',
            HINT = 'The statuses are pending, failed, overdue and paid.';
    END IF;
    SELECT coalesce(jsonb_agg(to_jsonb(p) ORDER BY p.due_date, p.id), '[]')
      INTO items
      FROM (SELECT pa.*
              FROM recovery.payments AS pa
             WHERE (api_payments_list.customer_id IS NULL OR pa.customer_id = api_payments_list.customer_id)
               AND (api_payments_list.status IS NULL OR pa.status = api_payments_list.status)
               AND (due_from IS NULL OR pa.due_date >= due_from)
               AND (due_to IS NULL OR pa.due_date <= due_to)
               AND (after_id IS NULL OR (pa.due_date, pa.id) > (after_due, after_id))
             ORDER BY pa.due_date, pa.id
             LIMIT page_size) AS p;
    RETURN recovery.page_of(items, page_size,
                            jsonb_build_object('due_date', items -> -1 -> 'due_date',
                                               'id', items -> -1 -> 'id'));
END
$$;
COMMENT ON FUNCTION api_payments_list(bigint, text, date, date, text, integer) IS
    'A page of payments by due date, by customer, status and due date range (GET /api/v1/payments).';

CREATE FUNCTION api_payment_get(payment_id bigint) RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    result jsonb;
BEGIN
    SELECT to_jsonb(p) INTO result FROM recovery.payments AS p WHERE p.id = payment_id;
    IF result IS NULL THEN
        RAISE EXCEPTION 'payment % does not exist', payment_id USING ERRCODE = 'PR003';
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION api_payment_get(bigint) IS 'A payment (GET /api/v1/payments/{id}).';

CREATE FUNCTION api_payment_create(customer_id bigint, external_ref text, amount bigint,
                                   currency text, due_date date) RETURNS jsonb
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT to_jsonb(p) FROM recovery.payment_create(customer_id, external_ref, amount,
                                                   currency, due_date) AS p
$$;
COMMENT ON FUNCTION api_payment_create(bigint, text, bigint, text, date) IS
    'Records a payment a customer owes (POST /api/v1/payments).';

CREATE FUNCTION api_payment_fail(payment_id bigint, reason text DEFAULT NULL,
                                 status text DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    opened recovery.recovery_cases;
BEGIN
    opened := recovery.payment_fail(payment_id, reason, coalesce(status, 'failed'));
    RETURN jsonb_build_object('payment', recovery.api_payment_get(payment_id),
                              'case', recovery.api_case_get(opened.id));
END
$$;
COMMENT ON FUNCTION api_payment_fail(bigint, text, text) IS
    'Marks a payment failed or overdue and opens or extends its case (POST /api/v1/payments/{id}/fail).';

REVOKE ALL ON FUNCTION cursor_encode(jsonb), cursor_decode(text), page_size(integer),
                       like_pattern(text),
                       api_customers_list(text, text, integer), api_customer_get(bigint),
                       customer_update(bigint, integer, text, text, text, text, text, jsonb),
                       api_customer_update(bigint, integer, text, text, text, text, text, jsonb),
                       api_payments_list(bigint, text, date, date, text, integer),
                       api_payment_get(bigint),
                       api_payment_create(bigint, text, bigint, text, date),
                       api_payment_fail(bigint, text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cursor_encode(jsonb), cursor_decode(text), page_size(integer),
                          page_of(jsonb, integer, jsonb), like_pattern(text),
                          api_customers_list(text, text, integer), api_customer_get(bigint),
                          api_payments_list(bigint, text, date, date, text, integer),
                          api_payment_get(bigint)
    TO recovery_viewer, recovery_auditor;
GRANT EXECUTE ON FUNCTION customer_update(bigint, integer, text, text, text, text, text, jsonb),
                          api_customer_update(bigint, integer, text, text, text, text, text, jsonb),
                          api_payment_create(bigint, text, bigint, text, date),
                          api_payment_fail(bigint, text, text)
    TO recovery_agent, recovery_automation;

-------------------------------------------------------------------------------
-- Recovery cases: the list, notes, assignment, the timeline
-------------------------------------------------------------------------------
CREATE TABLE case_notes (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id        bigint NOT NULL REFERENCES recovery_cases,
    customer_id    bigint NOT NULL REFERENCES customers,
    body           text NOT NULL CHECK (length(body) BETWEEN 1 AND 10000),
    author         text NOT NULL,
    author_user_id bigint REFERENCES users,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_notes_case ON case_notes (case_id, id);
COMMENT ON TABLE case_notes IS 'Free-text notes of the people who work a case (personal data: erased with the customer).';
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON case_notes
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
GRANT SELECT ON case_notes TO recovery_viewer, recovery_auditor;

-- days since the oldest payment of the case that is still owed fell due
CREATE FUNCTION case_overdue_days(case_id bigint) RETURNS integer
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT greatest(current_date - min(p.due_date), 0)
    FROM recovery.payments AS p
    WHERE p.case_id = case_overdue_days.case_id AND p.outstanding > 0
$$;
COMMENT ON FUNCTION case_overdue_days(bigint) IS
    'Days since the oldest payment of the case that is still owed fell due (NULL when nothing is owed).';

CREATE FUNCTION api_cases_list(state text DEFAULT NULL, assigned_user_id bigint DEFAULT NULL,
                               customer_id bigint DEFAULT NULL,
                               min_overdue_days integer DEFAULT NULL,
                               min_balance bigint DEFAULT NULL, max_balance bigint DEFAULT NULL,
                               sort text DEFAULT NULL, cursor text DEFAULT NULL,
                               "limit" integer DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    page_size integer := recovery.page_size("limit");
    mark jsonb := recovery.cursor_decode(cursor);
    order_by text := coalesce(sort, 'id');
    column_name text;
    descending boolean;
    items jsonb;
BEGIN
    IF order_by NOT IN ('id', '-id', 'balance', '-balance', 'opened_at', '-opened_at',
                        'updated_at', '-updated_at') THEN
        RAISE EXCEPTION 'cannot sort by "%"', order_by USING ERRCODE = 'PR004',
            HINT = 'Sort by id, balance, opened_at or updated_at; a leading "-" sorts descending.';
    END IF;
    IF state IS NOT NULL AND NOT recovery.case_state_is_valid(state) THEN
        RAISE EXCEPTION 'unknown case state "%"', state USING ERRCODE = 'PR004',
            HINT = 'recovery.case_states() lists the states.';
    END IF;
    IF mark IS NOT NULL AND mark ->> 'sort' IS DISTINCT FROM order_by THEN
        RAISE EXCEPTION 'the cursor belongs to another sort order' USING ERRCODE = 'PR004',
            HINT = 'Keep the sort of the page the cursor came from, or start again without a cursor.';
    END IF;
    descending := left(order_by, 1) = '-';
    column_name := ltrim(order_by, '-');

    -- the column name comes from the list above; every value is a parameter
    EXECUTE format($q$
        SELECT coalesce(jsonb_agg(to_jsonb(page) ORDER BY page.%1$I %2$s, page.id %2$s), '[]')
        FROM (SELECT c.id, c.customer_id, cu.name AS customer_name, c.currency, c.balance,
                     c.state, c.assigned_user_id, c.priority, c.next_action_at, c.opened_at,
                     c.updated_at, c.version, recovery.case_overdue_days(c.id) AS overdue_days
                FROM recovery.recovery_cases AS c
                JOIN recovery.customers AS cu ON cu.id = c.customer_id
               WHERE ($1 IS NULL OR c.state = $1)
                 AND ($2 IS NULL OR c.assigned_user_id = $2)
                 AND ($3 IS NULL OR c.customer_id = $3)
                 AND ($4 IS NULL OR recovery.case_overdue_days(c.id) >= $4)
                 AND ($5 IS NULL OR c.balance >= $5)
                 AND ($6 IS NULL OR c.balance <= $6)
                 AND ($7 IS NULL OR (c.%1$I, c.id) %3$s (($7 ->> 'value')::%4$s, ($7 ->> 'id')::bigint))
               ORDER BY c.%1$I %2$s, c.id %2$s
               LIMIT $8) AS page
        $q$, column_name, CASE WHEN descending THEN 'DESC' ELSE 'ASC' END,
             CASE WHEN descending THEN '<' ELSE '>' END,
             CASE column_name WHEN 'id' THEN 'bigint' WHEN 'balance' THEN 'bigint'
                              ELSE 'timestamptz' END)
      INTO items
      USING state, assigned_user_id, customer_id, min_overdue_days, min_balance, max_balance,
            mark, page_size;

    RETURN recovery.page_of(items, page_size,
                            jsonb_build_object('sort', order_by,
                                               'value', items -> -1 -> column_name,
                                               'id', items -> -1 -> 'id'));
END
$$;
COMMENT ON FUNCTION api_cases_list(text, bigint, bigint, integer, bigint, bigint, text, text, integer) IS
    'A page of recovery cases with filters, in a stable order (GET /api/v1/recovery-cases).';

CREATE FUNCTION case_note_add(case_id bigint, body text) RETURNS case_notes
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    target recovery.recovery_cases;
    note recovery.case_notes;
    author_id bigint := nullif(current_setting('recovery.user_id'), '')::bigint;
BEGIN
    IF NOT recovery.caller_has_role('recovery_agent')
       AND NOT recovery.caller_has_role('recovery_automation') THEN
        RAISE EXCEPTION 'permission denied to add notes' USING ERRCODE = '42501',
            HINT = 'Ask an agent to do it.';
    END IF;
    SELECT * INTO target FROM recovery.recovery_cases c WHERE c.id = case_note_add.case_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'recovery case % does not exist', case_id USING ERRCODE = 'PR003';
    END IF;
    IF body IS NULL OR length(btrim(body)) = 0 OR length(body) > 10000 THEN
        RAISE EXCEPTION 'a note needs a body of 1 to 10000 characters' USING ERRCODE = 'PR004',
            HINT = 'Send {"body": "..."}.';
    END IF;
    INSERT INTO recovery.case_notes (case_id, customer_id, body, author, author_user_id)
    VALUES (target.id, target.customer_id, body,
            coalesce(nullif(current_setting('recovery.actor'), ''), session_user), author_id)
    RETURNING * INTO note;
    RETURN note;
END
$$;
COMMENT ON FUNCTION case_note_add(bigint, text) IS 'Adds a note to a case, written by the current user.';

CREATE FUNCTION api_case_note_add(case_id bigint, body text) RETURNS jsonb
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT to_jsonb(n) FROM recovery.case_note_add(case_id, body) AS n
$$;
COMMENT ON FUNCTION api_case_note_add(bigint, text) IS 'POST /api/v1/recovery-cases/{id}/notes.';

CREATE FUNCTION case_assign(case_id bigint, expected_version integer,
                            assigned_user_id bigint DEFAULT NULL, priority integer DEFAULT NULL)
    RETURNS recovery_cases
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    target recovery.recovery_cases;
BEGIN
    IF NOT recovery.caller_has_role('recovery_agent') THEN
        RAISE EXCEPTION 'permission denied to assign cases' USING ERRCODE = '42501',
            HINT = 'Ask an agent or a manager to do it.';
    END IF;
    IF expected_version IS NULL THEN
        RAISE EXCEPTION 'expected_version is required' USING ERRCODE = 'PR004',
            HINT = 'Send the version of the case you read.';
    END IF;
    IF priority IS NOT NULL AND priority NOT BETWEEN 1 AND 5 THEN
        RAISE EXCEPTION 'priority % is out of range', priority USING ERRCODE = 'PR004',
            HINT = 'Priorities go from 1 (most urgent) to 5.';
    END IF;
    IF assigned_user_id IS NOT NULL AND assigned_user_id <> 0 AND NOT EXISTS (
           SELECT 1 FROM recovery.users u WHERE u.id = assigned_user_id AND NOT u.disabled) THEN
        RAISE EXCEPTION 'user % does not exist or is disabled', assigned_user_id
            USING ERRCODE = 'PR003';
    END IF;
    SELECT * INTO target FROM recovery.recovery_cases c WHERE c.id = case_assign.case_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'recovery case % does not exist', case_id USING ERRCODE = 'PR003';
    END IF;
    IF target.version <> expected_version THEN
        RAISE EXCEPTION 'recovery case % was changed by someone else', case_id
            USING ERRCODE = 'PR002',
                  DETAIL = format('You expected version %s; the case is now at version %s in state "%s".',
                                  expected_version, target.version, target.state),
                  HINT = 'Reload the case and decide again.';
    END IF;
    UPDATE recovery.recovery_cases c
       SET assigned_user_id = CASE WHEN case_assign.assigned_user_id IS NULL THEN c.assigned_user_id
                                   ELSE nullif(case_assign.assigned_user_id, 0) END,
           priority = coalesce(case_assign.priority, c.priority),
           updated_at = now(),
           version = c.version + 1
     WHERE c.id = case_assign.case_id
    RETURNING * INTO target;
    RETURN target;
END
$$;
COMMENT ON FUNCTION case_assign(bigint, integer, bigint, integer) IS
    'Assigns a case to a user (0: to nobody) and/or sets its priority, if its version is still expected_version.';

CREATE FUNCTION api_case_assign(case_id bigint, expected_version integer,
                                assigned_user_id bigint DEFAULT NULL, priority integer DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM recovery.case_assign(case_id, expected_version, assigned_user_id, priority);
    RETURN recovery.api_case_get(case_id);
END
$$;
COMMENT ON FUNCTION api_case_assign(bigint, integer, bigint, integer) IS
    'POST /api/v1/recovery-cases/{id}/assignment.';

CREATE FUNCTION api_case_timeline(case_id bigint) RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT coalesce(jsonb_agg(t.entry ORDER BY t.at, t.kind, t.id), '[]')
    FROM (
        SELECT 'event' AS kind, e.id, e.occurred_at AS at,
               jsonb_build_object('kind', 'event', 'id', e.id, 'at', e.occurred_at, 'event', e.event,
                                  'from_state', e.from_state, 'to_state', e.to_state,
                                  'actor', e.actor, 'reason', e.reason, 'details', e.details) AS entry
          FROM recovery.case_events AS e WHERE e.case_id = api_case_timeline.case_id
        UNION ALL
        SELECT 'promise', p.id, p.created_at,
               jsonb_build_object('kind', 'promise', 'id', p.id, 'at', p.created_at,
                                  'promise_kind', p.kind, 'instalment_no', p.instalment_no,
                                  'amount', p.amount, 'currency', p.currency,
                                  'due_date', p.due_date, 'paid_amount', p.paid_amount,
                                  'outcome', p.outcome)
          FROM recovery.promises AS p WHERE p.case_id = api_case_timeline.case_id
        UNION ALL
        SELECT 'receipt', r.id, r.received_at,
               jsonb_build_object('kind', 'receipt', 'id', r.id, 'at', r.received_at,
                                  'amount', r.amount, 'currency', r.currency,
                                  'allocated', r.allocated, 'unallocated', r.unallocated,
                                  'reference', r.reference)
          FROM recovery.receipts AS r WHERE r.case_id = api_case_timeline.case_id
        UNION ALL
        SELECT 'notification', x.id, x.created_at,
               jsonb_build_object('kind', 'notification', 'id', x.id, 'at', x.created_at,
                                  'channel', x.channel, 'status', x.status, 'sent_at', x.sent_at)
          FROM recovery.notifications AS x WHERE x.case_id = api_case_timeline.case_id
        UNION ALL
        SELECT 'document', d.id, d.created_at,
               jsonb_build_object('kind', 'document', 'id', d.id, 'at', d.created_at,
                                  'filename', d.filename, 'content_type', d.content_type,
                                  'size', d.size, 'uploaded_by', d.uploaded_by)
          FROM recovery.documents AS d WHERE d.case_id = api_case_timeline.case_id
        UNION ALL
        SELECT 'note', n.id, n.created_at,
               jsonb_build_object('kind', 'note', 'id', n.id, 'at', n.created_at, 'body', n.body,
                                  'author', n.author)
          FROM recovery.case_notes AS n WHERE n.case_id = api_case_timeline.case_id
    ) AS t
$$;
COMMENT ON FUNCTION api_case_timeline(bigint) IS
    'What happened to a case, oldest first: events, promises, money received, notifications, documents, notes.';

CREATE OR REPLACE FUNCTION api_case_get(case_id bigint) RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    result jsonb;
BEGIN
    SELECT to_jsonb(c)
           || jsonb_build_object(
                'overdue_days', recovery.case_overdue_days(c.id),
                'customer', jsonb_build_object('id', cu.id, 'name', cu.name,
                                               'external_ref', cu.external_ref),
                'payments', coalesce((
                    SELECT jsonb_agg(jsonb_build_object(
                               'id', p.id, 'external_ref', p.external_ref, 'amount', p.amount,
                               'outstanding', p.outstanding, 'due_date', p.due_date,
                               'status', p.status) ORDER BY p.due_date, p.id)
                    FROM recovery.payments AS p WHERE p.case_id = c.id), '[]'),
                'transitions', coalesce((
                    SELECT jsonb_agg(jsonb_build_object(
                               'event', t.event, 'to_state', t.to_state,
                               'required_details', to_jsonb(t.required_details))
                               ORDER BY t.event)
                    FROM recovery.case_transitions(c.id) AS t), '[]'),
                'timeline', recovery.api_case_timeline(c.id))
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
    'A recovery case with its customer, payments, the events the caller may fire now, and its timeline (GET /api/v1/recovery-cases/{id}).';

REVOKE ALL ON FUNCTION case_overdue_days(bigint),
                       api_cases_list(text, bigint, bigint, integer, bigint, bigint, text, text, integer),
                       case_note_add(bigint, text), api_case_note_add(bigint, text),
                       case_assign(bigint, integer, bigint, integer),
                       api_case_assign(bigint, integer, bigint, integer),
                       api_case_timeline(bigint)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION case_overdue_days(bigint),
                          api_cases_list(text, bigint, bigint, integer, bigint, bigint, text, text, integer),
                          api_case_timeline(bigint)
    TO recovery_viewer, recovery_auditor;
GRANT EXECUTE ON FUNCTION case_note_add(bigint, text), api_case_note_add(bigint, text)
    TO recovery_agent, recovery_automation;
GRANT EXECUTE ON FUNCTION case_assign(bigint, integer, bigint, integer),
                          api_case_assign(bigint, integer, bigint, integer)
    TO recovery_agent;

-------------------------------------------------------------------------------
-- Users and API keys (admins)
-------------------------------------------------------------------------------
CREATE FUNCTION api_users_list(cursor text DEFAULT NULL, "limit" integer DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    page_size integer := recovery.page_size("limit");
    after bigint := (recovery.cursor_decode(cursor) ->> 'id')::bigint;
    items jsonb;
BEGIN
    IF NOT recovery.caller_has_role('recovery_admin') THEN
        RAISE EXCEPTION 'permission denied to list users' USING ERRCODE = '42501',
            HINT = 'Ask an administrator.';
    END IF;
    SELECT coalesce(jsonb_agg(to_jsonb(u) ORDER BY u.id), '[]') INTO items
      FROM (SELECT id, email, display_name, role, disabled, created_at, updated_at, version
              FROM recovery.users WHERE after IS NULL OR id > after ORDER BY id LIMIT page_size) AS u;
    RETURN recovery.page_of(items, page_size,
                            jsonb_build_object('id', items -> -1 -> 'id'));
END
$$;
COMMENT ON FUNCTION api_users_list(text, integer) IS 'GET /api/v1/users (admins).';

CREATE FUNCTION api_user_create(email text, display_name text, role text, password text)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    new_id bigint;
BEGIN
    IF password IS NULL OR length(password) < 12 THEN
        RAISE EXCEPTION 'a password needs at least 12 characters' USING ERRCODE = 'PR004',
            HINT = 'Use a passphrase.';
    END IF;
    new_id := recovery.user_create(email, display_name, role, password);
    RETURN (SELECT to_jsonb(u) FROM (SELECT t.id, t.email, t.display_name, t.role, t.disabled,
                                            t.created_at, t.updated_at, t.version
                                       FROM recovery.users AS t WHERE t.id = new_id) AS u);
END
$$;
COMMENT ON FUNCTION api_user_create(text, text, text, text) IS 'POST /api/v1/users (admins).';

CREATE FUNCTION user_disable(user_id bigint) RETURNS users
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    changed recovery.users;
BEGIN
    IF NOT recovery.caller_has_role('recovery_admin') THEN
        RAISE EXCEPTION 'permission denied to disable users' USING ERRCODE = '42501',
            HINT = 'Ask an administrator.';
    END IF;
    UPDATE recovery.users u SET disabled = true, updated_at = now(), version = u.version + 1
     WHERE u.id = user_id RETURNING * INTO changed;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'user % does not exist', user_id USING ERRCODE = 'PR003';
    END IF;
    RETURN changed;
END
$$;
COMMENT ON FUNCTION user_disable(bigint) IS
    'Disables a user: they can no longer log in (tokens already issued expire on their own).';

CREATE FUNCTION api_user_disable(user_id bigint) RETURNS jsonb
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT to_jsonb(u) - 'password_hash' FROM recovery.user_disable(user_id) AS u
$$;
COMMENT ON FUNCTION api_user_disable(bigint) IS 'POST /api/v1/users/{id}/disable (admins).';

CREATE FUNCTION api_keys_list(cursor text DEFAULT NULL, "limit" integer DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    page_size integer := recovery.page_size("limit");
    after bigint := (recovery.cursor_decode(cursor) ->> 'id')::bigint;
    items jsonb;
BEGIN
    SELECT coalesce(jsonb_agg(to_jsonb(k) ORDER BY k.id), '[]') INTO items
      FROM (SELECT id, name, role, key_prefix, created_at, revoked_at, version
              FROM recovery.api_keys WHERE after IS NULL OR id > after ORDER BY id LIMIT page_size) AS k;
    RETURN recovery.page_of(items, page_size,
                            jsonb_build_object('id', items -> -1 -> 'id'));
END
$$;
COMMENT ON FUNCTION api_keys_list(text, integer) IS 'GET /api/v1/api-keys (admins): never the keys themselves.';

CREATE FUNCTION api_key_issue(name text, role text) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    key text;
    issued bigint;
BEGIN
    -- EXECUTE is granted to admins only; api_key_authenticate finds the new row
    key := recovery.api_key_create(name, role);
    issued := (recovery.api_key_authenticate(key)).api_key_id;
    RETURN jsonb_build_object(
        'key', key,
        'api_key', (SELECT jsonb_build_object('id', k.id, 'name', k.name, 'role', k.role,
                                              'key_prefix', k.key_prefix, 'created_at', k.created_at)
                      FROM recovery.api_keys AS k WHERE k.id = issued),
        'note', 'The key is shown once; only its hash is kept.');
END
$$;
COMMENT ON FUNCTION api_key_issue(text, text) IS 'POST /api/v1/api-keys (admins): the key, shown this once.';

CREATE FUNCTION api_key_revoke(api_key_id bigint) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    revoked jsonb;
BEGIN
    IF NOT recovery.caller_has_role('recovery_admin') THEN
        RAISE EXCEPTION 'permission denied to revoke API keys' USING ERRCODE = '42501',
            HINT = 'Ask an administrator.';
    END IF;
    UPDATE recovery.api_keys k
       SET revoked_at = coalesce(k.revoked_at, now()), version = k.version + 1
     WHERE k.id = api_key_id
    RETURNING jsonb_build_object('id', k.id, 'name', k.name, 'role', k.role,
                                 'key_prefix', k.key_prefix, 'revoked_at', k.revoked_at)
      INTO revoked;
    IF revoked IS NULL THEN
        RAISE EXCEPTION 'API key % does not exist', api_key_id USING ERRCODE = 'PR003';
    END IF;
    RETURN revoked;
END
$$;
COMMENT ON FUNCTION api_key_revoke(bigint) IS
    'POST /api/v1/api-keys/{id}/revoke (admins): the key stops working at once.';

-------------------------------------------------------------------------------
-- The audit trail (auditors and admins)
-------------------------------------------------------------------------------
CREATE FUNCTION api_audit_query(table_name text DEFAULT NULL, row_key text DEFAULT NULL,
                                actor text DEFAULT NULL, request_id text DEFAULT NULL,
                                customer_id bigint DEFAULT NULL,
                                "from" timestamptz DEFAULT NULL, "to" timestamptz DEFAULT NULL,
                                cursor text DEFAULT NULL, "limit" integer DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    page_size integer := recovery.page_size("limit");
    before bigint := (recovery.cursor_decode(cursor) ->> 'id')::bigint;
    items jsonb;
BEGIN
    -- newest first; audit_log has no query indexes yet (see README)
    SELECT coalesce(jsonb_agg(to_jsonb(a) ORDER BY a.id DESC), '[]') INTO items
      FROM (SELECT l.id, l.occurred_at, l.action, l.table_name, l.row_key, l.customer_id,
                   l.actor, l.actor_user_id, l.db_role, l.request_id, l.old_row, l.new_row,
                   l.erased_at
              FROM recovery.audit_log AS l
             WHERE (api_audit_query.table_name IS NULL OR l.table_name = api_audit_query.table_name)
               AND (api_audit_query.row_key IS NULL OR l.row_key = api_audit_query.row_key)
               AND (api_audit_query.actor IS NULL OR l.actor = api_audit_query.actor)
               AND (api_audit_query.request_id IS NULL OR l.request_id = api_audit_query.request_id)
               AND (api_audit_query.customer_id IS NULL OR l.customer_id = api_audit_query.customer_id)
               AND ("from" IS NULL OR l.occurred_at >= "from")
               AND ("to" IS NULL OR l.occurred_at < "to")
               AND (before IS NULL OR l.id < before)
             ORDER BY l.id DESC
             LIMIT page_size) AS a;
    RETURN recovery.page_of(items, page_size,
                            jsonb_build_object('id', items -> -1 -> 'id'));
END
$$;
COMMENT ON FUNCTION api_audit_query(text, text, text, text, bigint, timestamptz, timestamptz, text, integer) IS
    'GET /api/v1/audit (auditors and admins): audit rows, newest first, by table, row, actor, request, customer and time.';

CREATE FUNCTION api_audit_verify() RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT to_jsonb(v) FROM recovery.audit_verify() AS v
$$;
COMMENT ON FUNCTION api_audit_verify() IS 'GET /api/v1/audit/verify (auditors and admins).';

-------------------------------------------------------------------------------
-- Analytics, in SQL so that reports and the web app agree
-------------------------------------------------------------------------------
CREATE FUNCTION api_analytics_summary() RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    WITH by_currency AS (
        SELECT c.currency,
               count(*) FILTER (WHERE NOT recovery.case_state_is_terminal(c.state)) AS open_cases,
               coalesce(sum(c.balance) FILTER (WHERE NOT recovery.case_state_is_terminal(c.state)), 0) AS open_balance,
               (SELECT coalesce(sum(p.amount), 0) FROM recovery.payments p
                 WHERE p.currency = c.currency AND p.case_id IS NOT NULL) AS owed,
               (SELECT coalesce(sum(r.allocated), 0) FROM recovery.receipts r
                 WHERE r.currency = c.currency) AS recovered,
               (SELECT coalesce(sum(r.allocated), 0) FROM recovery.receipts r
                 WHERE r.currency = c.currency
                   AND r.received_at >= date_trunc('month', now())) AS recovered_this_month
          FROM recovery.recovery_cases c
         GROUP BY c.currency
    )
    SELECT jsonb_build_object(
        'by_currency', coalesce((SELECT jsonb_agg(jsonb_build_object(
                            'currency', currency, 'open_cases', open_cases,
                            'open_balance', open_balance, 'recovered_this_month', recovered_this_month,
                            'recovery_rate', CASE WHEN owed > 0 THEN round(recovered::numeric / owed, 4) END)
                            ORDER BY currency) FROM by_currency), '[]'),
        'promise_kept_rate', (SELECT CASE WHEN count(*) > 0
                                          THEN round(count(*) FILTER (WHERE outcome = 'kept')::numeric / count(*), 4) END
                                FROM recovery.promises WHERE outcome IN ('kept', 'broken')),
        'average_days_to_resolve', (SELECT round(avg(extract(epoch FROM closed_at - opened_at) / 86400)::numeric, 1)
                                      FROM recovery.recovery_cases WHERE state = 'resolved'),
        'cases_by_state', (SELECT jsonb_object_agg(state, n) FROM (
                               SELECT state, count(*) AS n FROM recovery.recovery_cases GROUP BY state) s))
$$;
COMMENT ON FUNCTION api_analytics_summary() IS
    'GET /api/v1/analytics/summary: open cases and balance by currency, recovered this month, recovery rate (money recovered / money owed that went to recovery), promise-kept rate, average days to resolve.';

CREATE FUNCTION api_analytics_aging() RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    WITH open_cases AS (
        SELECT c.currency, c.balance, coalesce(recovery.case_overdue_days(c.id), 0) AS days
          FROM recovery.recovery_cases c WHERE NOT recovery.case_state_is_terminal(c.state)
    ), bucketed AS (
        SELECT currency, balance,
               CASE WHEN days <= 30 THEN '0-30' WHEN days <= 60 THEN '31-60'
                    WHEN days <= 90 THEN '61-90' ELSE '90+' END AS bucket
          FROM open_cases
    )
    SELECT jsonb_build_object('buckets', coalesce(jsonb_agg(jsonb_build_object(
               'bucket', bucket, 'currency', currency, 'cases', n, 'balance', total)
               ORDER BY array_position(ARRAY['0-30', '31-60', '61-90', '90+'], bucket), currency), '[]'))
    FROM (SELECT bucket, currency, count(*) AS n, sum(balance) AS total
            FROM bucketed GROUP BY bucket, currency) AS b
$$;
COMMENT ON FUNCTION api_analytics_aging() IS
    'GET /api/v1/analytics/aging: open cases and balance by days overdue (0-30, 31-60, 61-90, 90+) and currency.';

CREATE FUNCTION api_analytics_recovery_by_month() RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT jsonb_build_object('months', coalesce(jsonb_agg(jsonb_build_object(
               'month', to_char(month, 'YYYY-MM'), 'currency', currency, 'opened', opened,
               'resolved', resolved, 'owed', owed, 'recovered', recovered,
               'recovery_rate', CASE WHEN owed > 0 THEN round(recovered::numeric / owed, 4) END)
               ORDER BY month, currency), '[]'))
    FROM (SELECT date_trunc('month', c.opened_at) AS month, c.currency,
                 count(*) AS opened,
                 count(*) FILTER (WHERE c.state = 'resolved') AS resolved,
                 coalesce(sum((SELECT sum(p.amount) FROM recovery.payments p WHERE p.case_id = c.id)), 0) AS owed,
                 coalesce(sum((SELECT sum(r.allocated) FROM recovery.receipts r WHERE r.case_id = c.id)), 0) AS recovered
            FROM recovery.recovery_cases c
           GROUP BY 1, 2) AS m
$$;
COMMENT ON FUNCTION api_analytics_recovery_by_month() IS
    'GET /api/v1/analytics/recovery-by-month: by month the cases opened and currency, what was owed and recovered.';

REVOKE ALL ON FUNCTION api_users_list(text, integer), api_user_create(text, text, text, text),
                       user_disable(bigint), api_user_disable(bigint),
                       api_keys_list(text, integer), api_key_issue(text, text), api_key_revoke(bigint),
                       api_audit_query(text, text, text, text, bigint, timestamptz, timestamptz, text, integer),
                       api_audit_verify(), api_analytics_summary(), api_analytics_aging(),
                       api_analytics_recovery_by_month()
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_users_list(text, integer), api_user_create(text, text, text, text),
                          user_disable(bigint), api_user_disable(bigint),
                          api_keys_list(text, integer), api_key_issue(text, text), api_key_revoke(bigint)
    TO recovery_admin;
GRANT EXECUTE ON FUNCTION api_audit_query(text, text, text, text, bigint, timestamptz, timestamptz, text, integer),
                          api_audit_verify()
    TO recovery_auditor;
GRANT EXECUTE ON FUNCTION api_analytics_summary(), api_analytics_aging(), api_analytics_recovery_by_month()
    TO recovery_viewer, recovery_auditor;

-------------------------------------------------------------------------------
-- Automation: tasks that workers claim with a lease, complete, or fail; a
-- failed task is retried with exponential backoff and jitter, then
-- dead-lettered with its last error.
-------------------------------------------------------------------------------
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

REVOKE ALL ON FUNCTION task_worker(), task_require_automation(),
                       api_task_schedule(text, timestamptz, jsonb, text, integer, integer),
                       api_task_get(bigint), api_tasks_claim(jsonb, integer, integer),
                       task_leased(bigint), api_task_complete(bigint, jsonb), api_task_fail(bigint, text),
                       api_tasks_dead(text, integer), api_task_requeue(bigint), api_cases_pending(integer)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_task_schedule(text, timestamptz, jsonb, text, integer, integer),
                          api_task_get(bigint), api_tasks_claim(jsonb, integer, integer),
                          api_task_complete(bigint, jsonb), api_task_fail(bigint, text),
                          api_tasks_dead(text, integer), api_task_requeue(bigint),
                          api_cases_pending(integer)
    TO recovery_automation, recovery_admin;

-------------------------------------------------------------------------------
-- GDPR erasure: a customer's personal data goes, from the business tables
-- and from the audit trail; amounts, states and history stay.  The audit
-- rows keep the SHA-256 digests of what they held, so every chain still
-- verifies (see audit.c).  This is the one sanctioned change to audit rows:
-- it runs as the extension's owner with triggers off for that one UPDATE.
-------------------------------------------------------------------------------
ALTER TABLE customers ADD COLUMN erased_at timestamptz;
COMMENT ON COLUMN customers.erased_at IS 'When the customer''s personal data was erased (customer_erase).';

-- the fields of audited rows that hold personal data, at any depth
CREATE FUNCTION erase_personal(data jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    personal CONSTANT text[] := ARRAY['name', 'email', 'phone', 'body', 'reason',
                                      'contact_preferences', 'display_name', 'filename'];
    erased jsonb;
BEGIN
    CASE jsonb_typeof(data)
    WHEN 'object' THEN
        SELECT coalesce(jsonb_object_agg(key,
                   CASE WHEN key = ANY (personal) AND value <> 'null'::jsonb
                        THEN to_jsonb('[erased]'::text)
                        ELSE recovery.erase_personal(value) END), '{}')
          INTO erased FROM jsonb_each(data);
        RETURN erased;
    WHEN 'array' THEN
        SELECT coalesce(jsonb_agg(recovery.erase_personal(value) ORDER BY n), '[]')
          INTO erased FROM jsonb_array_elements(data) WITH ORDINALITY AS e(value, n);
        RETURN erased;
    ELSE
        RETURN data;
    END CASE;
END
$$;
COMMENT ON FUNCTION erase_personal(jsonb) IS
    'A row (or event details) with its personal fields, at any depth (name, email, phone, notes, reasons, contact preferences), replaced by "[erased]".';

CREATE FUNCTION customer_erase(customer_id bigint) RETURNS jsonb
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
-- Documents of a case, stored in PostgreSQL.  The content type is checked
-- against the bytes themselves, from an allowlist.
-------------------------------------------------------------------------------
CREATE TABLE documents (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id      bigint NOT NULL REFERENCES recovery_cases,
    customer_id  bigint NOT NULL REFERENCES customers,
    filename     text NOT NULL CHECK (length(filename) BETWEEN 1 AND 255),
    content_type text NOT NULL,
    size         bigint NOT NULL,
    sha256       bytea NOT NULL,
    content      bytea,
    uploaded_by  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    erased_at    timestamptz
);
CREATE INDEX documents_case ON documents (case_id, id);
COMMENT ON TABLE documents IS 'Files of a case (statements, letters, proofs of payment); content erased with the customer.';
ALTER TABLE documents ALTER COLUMN content SET STORAGE EXTERNAL;
-- the content stays out of the audit trail: its digest is in sha256
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON documents
    FOR EACH ROW EXECUTE FUNCTION audit_trigger('content');
GRANT SELECT (id, case_id, customer_id, filename, content_type, size, sha256, uploaded_by,
              created_at, erased_at) ON documents TO recovery_viewer, recovery_auditor;

CREATE FUNCTION document_type_matches(content_type text, content bytea) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    CASE content_type
    WHEN 'application/pdf' THEN
        RETURN substring(content FROM 1 FOR 5) = '\x255044462d'::bytea;          -- %PDF-
    WHEN 'image/png' THEN
        RETURN substring(content FROM 1 FOR 8) = '\x89504e470d0a1a0a'::bytea;
    WHEN 'image/jpeg' THEN
        RETURN substring(content FROM 1 FOR 3) = '\xffd8ff'::bytea;
    WHEN 'text/plain', 'text/csv' THEN
        -- text: valid UTF-8 and no NUL byte
        IF position('\x00'::bytea IN content) > 0 THEN
            RETURN false;
        END IF;
        PERFORM convert_from(content, 'UTF8');
        RETURN true;
    ELSE
        RETURN false;
    END CASE;
EXCEPTION WHEN character_not_in_repertoire OR untranslatable_character THEN
    RETURN false;
END
$$;
COMMENT ON FUNCTION document_type_matches(text, bytea) IS
    'Whether the bytes are what the content type says (PDF, PNG, JPEG, or UTF-8 text or CSV).';

CREATE FUNCTION api_document_upload(case_id bigint, filename text, content_type text,
                                    content bytea) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    target recovery.recovery_cases;
    kind text := lower(btrim(split_part(coalesce(content_type, ''), ';', 1)));
    stored recovery.documents;
BEGIN
    IF NOT recovery.caller_has_role('recovery_agent')
       AND NOT recovery.caller_has_role('recovery_automation') THEN
        RAISE EXCEPTION 'permission denied to upload documents' USING ERRCODE = '42501',
            HINT = 'Ask an agent to do it.';
    END IF;
    SELECT * INTO target FROM recovery.recovery_cases c WHERE c.id = api_document_upload.case_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'recovery case % does not exist', case_id USING ERRCODE = 'PR003';
    END IF;
    IF kind NOT IN ('application/pdf', 'image/png', 'image/jpeg', 'text/plain', 'text/csv') THEN
        RAISE EXCEPTION 'documents of type "%" are not accepted', kind USING ERRCODE = 'PR004',
            HINT = 'Upload PDF, PNG, JPEG, plain text or CSV, with its Content-Type.';
    END IF;
    IF content IS NULL OR length(content) = 0 OR length(content) > 10 * 1024 * 1024 THEN
        RAISE EXCEPTION 'a document has 1 byte to 10 MiB' USING ERRCODE = 'PR004';
    END IF;
    IF NOT recovery.document_type_matches(kind, content) THEN
        RAISE EXCEPTION 'the content is not %', kind USING ERRCODE = 'PR004',
            DETAIL = 'The first bytes of the document do not match its Content-Type.',
            HINT = 'Send the file with the Content-Type of what it is.';
    END IF;
    IF filename IS NULL OR length(btrim(filename)) = 0 THEN
        filename := 'document';
    END IF;
    INSERT INTO recovery.documents (case_id, customer_id, filename, content_type, size, sha256,
                                    content, uploaded_by)
    VALUES (target.id, target.customer_id, left(filename, 255), kind, length(content),
            sha256(content), content,
            coalesce(nullif(current_setting('recovery.actor'), ''), session_user))
    RETURNING * INTO stored;
    RETURN to_jsonb(stored) - 'content' || jsonb_build_object('sha256', encode(stored.sha256, 'hex'));
END
$$;
COMMENT ON FUNCTION api_document_upload(bigint, text, text, bytea) IS
    'POST /api/v1/recovery-cases/{id}/documents: the raw body, with its Content-Type, stored with its SHA-256.';

CREATE FUNCTION api_documents_list(case_id bigint) RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT jsonb_build_object('items', coalesce(jsonb_agg(jsonb_build_object(
               'id', d.id, 'filename', d.filename, 'content_type', d.content_type, 'size', d.size,
               'sha256', encode(d.sha256, 'hex'), 'uploaded_by', d.uploaded_by,
               'created_at', d.created_at, 'erased_at', d.erased_at) ORDER BY d.id), '[]'))
    FROM recovery.documents AS d WHERE d.case_id = api_documents_list.case_id
$$;
COMMENT ON FUNCTION api_documents_list(bigint) IS 'GET /api/v1/recovery-cases/{id}/documents.';

CREATE FUNCTION api_document_get(document_id bigint) RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    result jsonb;
BEGIN
    SELECT jsonb_build_object('id', d.id, 'case_id', d.case_id, 'filename', d.filename,
                              'content_type', d.content_type, 'size', d.size,
                              'sha256', encode(d.sha256, 'hex'), 'uploaded_by', d.uploaded_by,
                              'created_at', d.created_at, 'erased_at', d.erased_at)
      INTO result FROM recovery.documents AS d WHERE d.id = document_id;
    IF result IS NULL THEN
        RAISE EXCEPTION 'document % does not exist', document_id USING ERRCODE = 'PR003';
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION api_document_get(bigint) IS 'GET /api/v1/documents/{id}: metadata.';

CREATE TYPE document_file AS (content_type text, filename text, content bytea);

CREATE FUNCTION api_document_content(document_id bigint) RETURNS document_file
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    file recovery.document_file;
BEGIN
    IF NOT recovery.caller_has_role('recovery_viewer') THEN
        RAISE EXCEPTION 'permission denied to read documents' USING ERRCODE = '42501';
    END IF;
    SELECT d.content_type, d.filename, d.content INTO file
      FROM recovery.documents AS d WHERE d.id = document_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'document % does not exist', document_id USING ERRCODE = 'PR003';
    END IF;
    IF file.content IS NULL THEN
        RAISE EXCEPTION 'document % was erased', document_id USING ERRCODE = 'PR003',
            HINT = 'Its customer''s personal data was erased.';
    END IF;
    RETURN file;
END
$$;
COMMENT ON FUNCTION api_document_content(bigint) IS
    'GET /api/v1/documents/{id}/content: the file (the gateway sends it as an attachment).';

GRANT EXECUTE ON FUNCTION api_document_upload(bigint, text, text, bytea)
    TO recovery_agent, recovery_automation;
GRANT EXECUTE ON FUNCTION api_documents_list(bigint), api_document_get(bigint),
                          api_document_content(bigint)
    TO recovery_viewer, recovery_auditor;

-------------------------------------------------------------------------------
-- Templates, dunning policies and notifications: their storage and API.
-- What they do (rendering, scheduling, delivery) is the reminders' work.
-------------------------------------------------------------------------------
CREATE TABLE templates (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_.-]{0,63}$'),
    channel    text NOT NULL CHECK (channel IN ('email', 'sms', 'letter', 'webhook')),
    locale     text NOT NULL CHECK (locale ~ '^[a-z]{2,3}(-[A-Z]{2})?$'),
    subject    text,
    body       text NOT NULL CHECK (length(body) BETWEEN 1 AND 20000),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    version    integer NOT NULL DEFAULT 1,
    UNIQUE (name, channel, locale)
);
COMMENT ON TABLE templates IS 'Message templates per channel and locale, with {{placeholders}} checked when saved.';
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON templates
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
GRANT SELECT ON templates TO recovery_viewer, recovery_auditor;

CREATE FUNCTION template_placeholders() RETURNS text[]
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT ARRAY['customer_name', 'amount', 'balance', 'currency', 'due_date',
                       'case_reference', 'payment_link'] $$;
COMMENT ON FUNCTION template_placeholders() IS 'The placeholders a template may use, as {{name}}.';

CREATE FUNCTION template_save(name text, channel text, locale text, body text,
                              subject text DEFAULT NULL, expected_version integer DEFAULT NULL)
    RETURNS templates
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    unknown text[];
    saved recovery.templates;
BEGIN
    IF NOT recovery.caller_has_role('recovery_manager') THEN
        RAISE EXCEPTION 'permission denied to change templates' USING ERRCODE = '42501',
            HINT = 'Templates are for managers and administrators.';
    END IF;
    -- a template that would fail when sent is refused now
    SELECT array_agg(DISTINCT m[1]) INTO unknown
      FROM regexp_matches(coalesce(body, '') || ' ' || coalesce(subject, ''),
                          '{{\s*([^{}]*?)\s*}}', 'g') AS m
     WHERE NOT m[1] = ANY (recovery.template_placeholders());
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION 'unknown placeholder %', array_to_string(unknown, ', ') USING ERRCODE = 'PR004',
            DETAIL = 'The placeholders are: ' || array_to_string(recovery.template_placeholders(), ', ') || '.',
            HINT = 'Write placeholders as {{customer_name}}.';
    END IF;
    IF channel = 'email' AND (subject IS NULL OR length(btrim(subject)) = 0) THEN
        RAISE EXCEPTION 'an email template needs a subject' USING ERRCODE = 'PR004';
    END IF;
    INSERT INTO recovery.templates AS t (name, channel, locale, subject, body)
    VALUES (name, channel, locale, subject, body)
    ON CONFLICT ON CONSTRAINT templates_name_channel_locale_key DO UPDATE
       SET subject = excluded.subject, body = excluded.body, updated_at = now(),
           version = t.version + 1
     WHERE expected_version IS NULL OR t.version = expected_version
    RETURNING * INTO saved;
    IF saved.id IS NULL THEN
        RAISE EXCEPTION 'template % was changed by someone else', name USING ERRCODE = 'PR002',
            HINT = 'Reload the template and apply your change again.';
    END IF;
    RETURN saved;
EXCEPTION
    WHEN check_violation OR not_null_violation THEN
        RAISE EXCEPTION 'invalid template: %', SQLERRM USING ERRCODE = 'PR004',
            HINT = 'name is lower case; channel is email, sms, letter or webhook; locale looks like en-GB.';
END
$$;
COMMENT ON FUNCTION template_save(text, text, text, text, text, integer) IS
    'Creates or replaces the template of a name, channel and locale (managers); refuses unknown placeholders.';

CREATE FUNCTION api_template_save(name text, channel text, locale text, body text,
                                  subject text DEFAULT NULL, expected_version integer DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT to_jsonb(t) FROM recovery.template_save(name, channel, locale, body, subject,
                                                       expected_version) AS t $$;
COMMENT ON FUNCTION api_template_save(text, text, text, text, text, integer) IS 'POST /api/v1/templates.';

CREATE FUNCTION api_templates_list(channel text DEFAULT NULL) RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT jsonb_build_object('items', coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.name, t.channel, t.locale), '[]'),
                              'placeholders', to_jsonb(recovery.template_placeholders()))
    FROM recovery.templates AS t WHERE api_templates_list.channel IS NULL OR t.channel = api_templates_list.channel
$$;
COMMENT ON FUNCTION api_templates_list(text) IS 'GET /api/v1/templates.';

CREATE TABLE dunning_policies (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    description text,
    steps       jsonb NOT NULL,
    is_default  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    version     integer NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX dunning_policies_one_default ON dunning_policies (is_default) WHERE is_default;
COMMENT ON TABLE dunning_policies IS
    'Ordered reminder steps: days from the due date, channel, template, optional fee and action.';
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON dunning_policies
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
GRANT SELECT ON dunning_policies TO recovery_viewer, recovery_auditor;

-- the reason a list of steps is not a policy, or NULL
CREATE FUNCTION dunning_steps_problem(steps jsonb) RETURNS text
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    step jsonb;
    n integer := 0;
    previous integer;
    fee jsonb;
BEGIN
    IF jsonb_typeof(steps) IS DISTINCT FROM 'array' OR jsonb_array_length(steps) = 0 THEN
        RETURN 'steps must be a non-empty array';
    END IF;
    FOR step IN SELECT value FROM jsonb_array_elements(steps) LOOP
        n := n + 1;
        IF jsonb_typeof(step) <> 'object' THEN
            RETURN format('step %s is not an object', n);
        END IF;
        IF EXISTS (SELECT 1 FROM jsonb_object_keys(step) AS k
                    WHERE k NOT IN ('offset_days', 'channel', 'template', 'fee', 'action')) THEN
            RETURN format('step %s has an unknown field; the fields are offset_days, channel, template, fee, action', n);
        END IF;
        IF jsonb_typeof(step -> 'offset_days') IS DISTINCT FROM 'number'
           OR (step ->> 'offset_days') !~ '^-?[0-9]+$'
           OR (step ->> 'offset_days')::integer NOT BETWEEN -60 AND 365 THEN
            RETURN format('step %s: offset_days is a whole number of days from -60 to 365', n);
        END IF;
        IF previous IS NOT NULL AND (step ->> 'offset_days')::integer <= previous THEN
            RETURN format('step %s: offset_days must grow from step to step', n);
        END IF;
        previous := (step ->> 'offset_days')::integer;
        IF NOT (step ->> 'channel') = ANY (ARRAY['email', 'sms', 'letter', 'webhook']) THEN
            RETURN format('step %s: channel is email, sms, letter or webhook', n);
        END IF;
        IF NOT EXISTS (SELECT 1 FROM recovery.templates t
                        WHERE t.name = step ->> 'template' AND t.channel = step ->> 'channel') THEN
            RETURN format('step %s: there is no %s template named "%s"', n, step ->> 'channel',
                          step ->> 'template');
        END IF;
        fee := step -> 'fee';
        IF fee IS NOT NULL AND fee <> 'null'::jsonb AND NOT coalesce(
               jsonb_typeof(fee) = 'object'
               AND (SELECT count(*) FROM jsonb_object_keys(fee)) = 1
               AND ((jsonb_typeof(fee -> 'fixed') IS NOT DISTINCT FROM 'number'
                     AND (fee ->> 'fixed') ~ '^[0-9]+$')
                    OR (jsonb_typeof(fee -> 'percent') IS NOT DISTINCT FROM 'number'
                        AND (fee ->> 'percent')::numeric BETWEEN 0 AND 100)), false) THEN
            RETURN format('step %s: a fee is {"fixed": minor units} or {"percent": 0 to 100}', n);
        END IF;
        IF step ? 'action' AND step -> 'action' <> 'null'::jsonb AND step ->> 'action' <> 'escalate' THEN
            RETURN format('step %s: the only action is "escalate"', n);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE FUNCTION dunning_policy_save(name text, steps jsonb, description text DEFAULT NULL,
                                    is_default boolean DEFAULT NULL, expected_version integer DEFAULT NULL)
    RETURNS dunning_policies
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    problem text := recovery.dunning_steps_problem(steps);
    saved recovery.dunning_policies;
BEGIN
    IF NOT recovery.caller_has_role('recovery_manager') THEN
        RAISE EXCEPTION 'permission denied to change dunning policies' USING ERRCODE = '42501',
            HINT = 'Dunning policies are for managers and administrators.';
    END IF;
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'invalid dunning policy: %', problem USING ERRCODE = 'PR004';
    END IF;
    IF coalesce(is_default, false) THEN
        UPDATE recovery.dunning_policies p SET is_default = false, updated_at = now(), version = p.version + 1
         WHERE p.is_default AND p.name <> dunning_policy_save.name;
    END IF;
    INSERT INTO recovery.dunning_policies AS p (name, description, steps, is_default)
    VALUES (name, description, steps, coalesce(is_default, false))
    ON CONFLICT ON CONSTRAINT dunning_policies_name_key DO UPDATE
       SET description = coalesce(excluded.description, p.description), steps = excluded.steps,
           is_default = coalesce(dunning_policy_save.is_default, p.is_default),
           updated_at = now(), version = p.version + 1
     WHERE expected_version IS NULL OR p.version = expected_version
    RETURNING * INTO saved;
    IF saved.id IS NULL THEN
        RAISE EXCEPTION 'dunning policy % was changed by someone else', name USING ERRCODE = 'PR002',
            HINT = 'Reload the policy and apply your change again.';
    END IF;
    RETURN saved;
END
$$;
COMMENT ON FUNCTION dunning_policy_save(text, jsonb, text, boolean, integer) IS
    'Creates or replaces a dunning policy (managers); steps are checked (growing offsets, known channels and templates, fees, actions).';

CREATE FUNCTION api_dunning_policy_save(name text, steps jsonb, description text DEFAULT NULL,
                                        is_default boolean DEFAULT NULL,
                                        expected_version integer DEFAULT NULL) RETURNS jsonb
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT to_jsonb(p) FROM recovery.dunning_policy_save(name, steps, description, is_default,
                                                             expected_version) AS p $$;
COMMENT ON FUNCTION api_dunning_policy_save(text, jsonb, text, boolean, integer) IS 'POST /api/v1/dunning-policies.';

CREATE FUNCTION api_dunning_policies_list() RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT jsonb_build_object('items', coalesce(jsonb_agg(to_jsonb(p) ORDER BY p.is_default DESC, p.name), '[]'))
    FROM recovery.dunning_policies AS p
$$;
COMMENT ON FUNCTION api_dunning_policies_list() IS 'GET /api/v1/dunning-policies.';

CREATE TABLE notifications (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id             bigint NOT NULL REFERENCES recovery_cases,
    customer_id         bigint NOT NULL REFERENCES customers,
    channel             text NOT NULL CHECK (channel IN ('email', 'sms', 'letter', 'webhook')),
    template_id         bigint REFERENCES templates,
    step_no             integer,
    status              text NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'dead', 'cancelled')),
    send_after          timestamptz NOT NULL DEFAULT now(),
    attempts            integer NOT NULL DEFAULT 0,
    provider_message_id text,
    last_error          text,
    created_by          text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    sent_at             timestamptz
);
CREATE INDEX notifications_case ON notifications (case_id, id);
CREATE INDEX notifications_customer ON notifications (customer_id, id);
COMMENT ON TABLE notifications IS
    'The outbox and history of messages to customers; the reminders work fills and delivers it.';
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON notifications
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
GRANT SELECT ON notifications TO recovery_viewer, recovery_auditor;

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

GRANT EXECUTE ON FUNCTION template_placeholders(), api_templates_list(text),
                          api_dunning_policies_list(),
                          api_notifications_list(bigint, bigint, text, text, integer)
    TO recovery_viewer, recovery_auditor;
GRANT EXECUTE ON FUNCTION template_save(text, text, text, text, text, integer),
                          api_template_save(text, text, text, text, text, integer),
                          dunning_steps_problem(jsonb),
                          dunning_policy_save(text, jsonb, text, boolean, integer),
                          api_dunning_policy_save(text, jsonb, text, boolean, integer)
    TO recovery_manager;
GRANT EXECUTE ON FUNCTION api_notification_queue(bigint, text, text, timestamptz)
    TO recovery_agent, recovery_automation;

CREATE FUNCTION api_analytics_channels() RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    -- money counts for a channel when it arrives within 7 days after a
    -- message on that channel was sent for the case
    WITH sent AS (
        SELECT n.id, n.case_id, n.channel, n.status, n.sent_at FROM recovery.notifications n
    ), results AS (
        SELECT s.channel,
               count(*) AS messages,
               count(*) FILTER (WHERE s.status = 'sent') AS sent,
               count(*) FILTER (WHERE s.status IN ('failed', 'dead')) AS failed,
               count(DISTINCT s.case_id) FILTER (WHERE s.status = 'sent' AND EXISTS (
                   SELECT 1 FROM recovery.receipts r
                    WHERE r.case_id = s.case_id AND r.received_at >= s.sent_at
                      AND r.received_at < s.sent_at + interval '7 days')) AS cases_paid_within_7_days
          FROM sent s GROUP BY s.channel
    )
    SELECT jsonb_build_object('channels', coalesce(jsonb_agg(jsonb_build_object(
               'channel', channel, 'messages', messages, 'sent', sent, 'failed', failed,
               'cases_paid_within_7_days', cases_paid_within_7_days) ORDER BY channel), '[]'))
    FROM results
$$;
COMMENT ON FUNCTION api_analytics_channels() IS
    'GET /api/v1/analytics/channels: messages by channel, how many were sent or failed, and the cases that paid within 7 days of one.';
GRANT EXECUTE ON FUNCTION api_analytics_channels() TO recovery_viewer, recovery_auditor;

-------------------------------------------------------------------------------
-- The automation contract's reminders and extractions: each schedules a
-- task (kind reminder or extraction) that the reminders and extraction
-- workers perform.
-------------------------------------------------------------------------------
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

CREATE FUNCTION api_extraction_schedule(source text, document_id bigint DEFAULT NULL,
                                        content text DEFAULT NULL, case_id bigint DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
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
    RETURN recovery.api_task_schedule('extraction', now(),
                                      jsonb_strip_nulls(jsonb_build_object(
                                          'source', source, 'document_id', document_id,
                                          'content', content, 'case_id', case_id)));
END
$$;
COMMENT ON FUNCTION api_extraction_schedule(text, bigint, text, bigint) IS
    'POST /api/v1/automation/extractions: schedules a task of kind extraction for a document, an email, an SMS or a text.';

GRANT EXECUTE ON FUNCTION api_reminder_schedule(bigint, timestamptz, text, text),
                          api_extraction_schedule(text, bigint, text, bigint)
    TO recovery_automation, recovery_admin;

-------------------------------------------------------------------------------
-- Opening a case by hand: an agent puts a customer's overdue payments into
-- recovery, which opens the case in their currency or adds to the open one.
-------------------------------------------------------------------------------
CREATE FUNCTION api_case_open(customer_id bigint, payment_ids jsonb, reason text DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    ids bigint[];
    currencies text[];
    opened recovery.recovery_cases;
    existed boolean;
BEGIN
    IF jsonb_typeof(payment_ids) IS DISTINCT FROM 'array' OR jsonb_array_length(payment_ids) = 0 THEN
        RAISE EXCEPTION 'payment_ids must be a non-empty array of payment ids' USING ERRCODE = 'PR004',
            HINT = 'A case holds the payments it recovers: name the overdue ones.';
    END IF;
    BEGIN
        ids := ARRAY(SELECT (value #>> '{}')::bigint FROM jsonb_array_elements(payment_ids));
    EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
        RAISE EXCEPTION 'payment_ids must be payment ids' USING ERRCODE = 'PR004';
    END;
    IF EXISTS (SELECT 1 FROM unnest(ids) AS i(id)
                WHERE NOT EXISTS (SELECT 1 FROM recovery.payments p
                                   WHERE p.id = i.id AND p.customer_id = api_case_open.customer_id)) THEN
        RAISE EXCEPTION 'every payment must be one of customer %''s', customer_id USING ERRCODE = 'PR003';
    END IF;
    SELECT array_agg(DISTINCT p.currency) INTO currencies FROM recovery.payments p WHERE p.id = ANY (ids);
    IF array_length(currencies, 1) > 1 THEN
        RAISE EXCEPTION 'the payments are in % currencies', array_length(currencies, 1)
            USING ERRCODE = 'PR005', HINT = 'A case is in one currency: open one per currency.';
    END IF;
    existed := EXISTS (SELECT 1 FROM recovery.recovery_cases c
                        WHERE c.customer_id = api_case_open.customer_id AND c.currency = currencies[1]
                          AND NOT recovery.case_state_is_terminal(c.state));
    FOR i IN 1 .. array_length(ids, 1) LOOP
        opened := recovery.payment_fail(ids[i], coalesce(reason, 'opened by hand'), 'overdue');
    END LOOP;
    RETURN recovery.api_case_get(opened.id) || jsonb_build_object('opened', NOT existed);
END
$$;
COMMENT ON FUNCTION api_case_open(bigint, jsonb, text) IS
    'POST /api/v1/recovery-cases: puts a customer''s payments into recovery by hand (as overdue); opens their case in that currency, or adds to the open one ("opened": false).';
GRANT EXECUTE ON FUNCTION api_case_open(bigint, jsonb, text) TO recovery_agent, recovery_automation;

-------------------------------------------------------------------------------
-- Whatever 0.2 added runs only where granted above
-------------------------------------------------------------------------------
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA recovery FROM PUBLIC;
GRANT EXECUTE ON FUNCTION caller_has_role(text) TO recovery_viewer, recovery_auditor;
