-- REST: users and API keys.

-- Users and API keys (admins)
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
GRANT EXECUTE ON FUNCTION api_users_list(text, integer) TO recovery_admin;

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
GRANT EXECUTE ON FUNCTION api_user_create(text, text, text, text) TO recovery_admin;

CREATE FUNCTION api_user_disable(user_id bigint) RETURNS jsonb
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT to_jsonb(u) - 'password_hash' FROM recovery.user_disable(user_id) AS u
$$;
COMMENT ON FUNCTION api_user_disable(bigint) IS 'POST /api/v1/users/{id}/disable (admins).';
GRANT EXECUTE ON FUNCTION api_user_disable(bigint) TO recovery_admin;

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
GRANT EXECUTE ON FUNCTION api_keys_list(text, integer) TO recovery_admin;

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
GRANT EXECUTE ON FUNCTION api_key_issue(text, text) TO recovery_admin;

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
GRANT EXECUTE ON FUNCTION api_key_revoke(bigint) TO recovery_admin;
