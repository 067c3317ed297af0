-- REST: customers.

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
GRANT EXECUTE ON FUNCTION api_customer_create(text, text, text, text, text, text) TO recovery_agent, recovery_automation;

CREATE FUNCTION api_customers_list(q text DEFAULT NULL, cursor text DEFAULT NULL,
                                   "limit" integer DEFAULT NULL, email text DEFAULT NULL,
                                   phone text DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    page_size integer := recovery.page_size("limit");
    after bigint := (recovery.cursor_decode(cursor) ->> 'id')::bigint;
    pattern text := recovery.like_pattern(nullif(btrim(q), ''));
    -- an email or phone is found by its blind index, without decrypting
    by_email bytea := recovery.pii_blind_index('email', nullif(btrim(email), ''));
    by_phone bytea := recovery.pii_blind_index('phone', nullif(btrim(phone), ''));
    items jsonb;
BEGIN
    SELECT coalesce(jsonb_agg(to_jsonb(c) ORDER BY c.id), '[]')
      INTO items
      FROM (SELECT cu.id, cu.external_ref, cu.name, cu.email, cu.phone, cu.locale,
                   cu.time_zone, cu.created_at, cu.updated_at, cu.version
              FROM recovery.customers_decrypted AS cu
             WHERE (after IS NULL OR cu.id > after)
               AND (by_email IS NULL OR cu.id IN (SELECT x.id FROM recovery.customers x
                                                   WHERE x.email_index = by_email))
               AND (by_phone IS NULL OR cu.id IN (SELECT x.id FROM recovery.customers x
                                                   WHERE x.phone_index = by_phone))
               -- a part of a name or email: each customer is decrypted to compare
               AND (pattern IS NULL OR cu.external_ref ILIKE pattern OR cu.name ILIKE pattern
                    OR cu.email ILIKE pattern)
             ORDER BY cu.id
             LIMIT page_size) AS c;
    RETURN recovery.page_of(items, page_size,
                            jsonb_build_object('id', items -> -1 -> 'id'));
END
$$;
COMMENT ON FUNCTION api_customers_list(text, text, integer, text, text) IS
    'A page of customers by id, optionally those whose name, email or reference contains q, and those with exactly this email or phone (GET /api/v1/customers).';
GRANT EXECUTE ON FUNCTION api_customers_list(text, text, integer, text, text) TO recovery_viewer, recovery_auditor;

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
      FROM recovery.customers_decrypted AS cu
     WHERE cu.id = api_customer_get.customer_id;
    IF result IS NULL THEN
        RAISE EXCEPTION 'customer % does not exist', customer_id
            USING ERRCODE = 'PR003', HINT = 'Search with GET /api/v1/customers?q=...';
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION api_customer_get(bigint) IS 'A customer with their cases (GET /api/v1/customers/{id}).';
GRANT EXECUTE ON FUNCTION api_customer_get(bigint) TO recovery_viewer, recovery_auditor;

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
GRANT EXECUTE ON FUNCTION api_customer_update(bigint, integer, text, text, text, text, text, jsonb) TO recovery_agent, recovery_automation;
