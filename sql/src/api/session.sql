-- REST: signing in and who the caller is.

CREATE FUNCTION api_login(email text, password text) RETURNS jsonb
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT jsonb_build_object('user_id', l.user_id, 'email', l.user_email,
                              'display_name', l.display_name, 'role', l.role)
    FROM recovery.login(email, password) AS l
$$;
COMMENT ON FUNCTION api_login(text, text) IS
    'recovery.login as JSON, for POST /api/v1/auth/login (the gateway mints the token).';
GRANT EXECUTE ON FUNCTION api_login(text, text) TO recovery_authenticator;

CREATE FUNCTION api_me() RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT jsonb_build_object(
        'user_id', u.id,
        'email', u.email,
        'display_name', u.display_name,
        'role', current_user,
        'may', recovery.caller_may(),
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
GRANT EXECUTE ON FUNCTION api_me() TO recovery_viewer, recovery_auditor;
