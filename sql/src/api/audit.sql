-- REST: the audit trail.

-- An audited row with its sealed personal fields opened: the trail holds
-- them as the table did, sealed ("\xff01..."), bound to the same row.
CREATE FUNCTION audit_row_opened(audited json, table_name text, row_key text, customer_id bigint)
    RETURNS json
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE WHEN audited IS NULL OR json_typeof(audited) <> 'object'
                     OR strpos(audited::text, '"\\xff01') = 0 THEN audited
           ELSE (SELECT json_object_agg(f.key,
                            CASE WHEN json_typeof(f.value) = 'string' AND left(f.value #>> '{}', 6) = '\xff01'
                                 THEN to_json(recovery.pii_open(decode(substr(f.value #>> '{}', 3), 'hex'),
                                                                table_name, f.key, row_key::bigint,
                                                                recovery.audit_row_customer(audited, table_name,
                                                                                            row_key, customer_id)))
                                 ELSE f.value END)
                   FROM json_each(audited) f)
           END
$$;
COMMENT ON FUNCTION audit_row_opened(json, text, text, bigint) IS
    'An audit row''s old_row or new_row with its sealed personal fields decrypted (GET /api/v1/audit).';
GRANT EXECUTE ON FUNCTION audit_row_opened(json, text, text, bigint) TO recovery_auditor;

-- The audit trail (auditors and admins)
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
                   l.actor, l.actor_user_id, l.db_role, l.request_id,
                   recovery.audit_row_opened(l.old_row, l.table_name, l.row_key, l.customer_id) AS old_row,
                   recovery.audit_row_opened(l.new_row, l.table_name, l.row_key, l.customer_id) AS new_row,
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
GRANT EXECUTE ON FUNCTION api_audit_query(text, text, text, text, bigint, timestamptz, timestamptz, text, integer) TO recovery_auditor;

CREATE FUNCTION api_audit_verify() RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT to_jsonb(v) FROM recovery.audit_verify() AS v
$$;
COMMENT ON FUNCTION api_audit_verify() IS 'GET /api/v1/audit/verify (auditors and admins).';
GRANT EXECUTE ON FUNCTION api_audit_verify() TO recovery_auditor;
