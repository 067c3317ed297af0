-- Who is acting: the context the gateway sets for each request, and what the caller may do.

-- Request context
CREATE FUNCTION set_request_context(user_id bigint, request_id text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    user_email text;
BEGIN
    SELECT email INTO user_email FROM recovery.users WHERE id = user_id AND NOT disabled;
    IF user_id IS NOT NULL AND user_email IS NULL THEN
        RAISE EXCEPTION 'user % does not exist or is disabled', user_id
            USING ERRCODE = 'PR003';
    END IF;
    PERFORM set_config('recovery.user_id', coalesce(user_id::text, ''), true);
    PERFORM set_config('recovery.actor', coalesce(user_email, ''), true);
    PERFORM set_config('recovery.request_id', coalesce(request_id, ''), true);
END
$$;
COMMENT ON FUNCTION set_request_context(bigint, text) IS
    'Sets, for the current transaction, the application user and request id recorded by case events and the audit trail.';
GRANT EXECUTE ON FUNCTION set_request_context(bigint, text) TO recovery_viewer, recovery_auditor, recovery_authenticator;

CREATE FUNCTION caller_has_role(role text) RETURNS boolean
    LANGUAGE c STABLE STRICT
    AS 'MODULE_PATHNAME', 'recovery_caller_has_role_sql';
COMMENT ON FUNCTION caller_has_role(text) IS
    'Whether the role the request runs as (after SET ROLE, outside SECURITY DEFINER functions) has the privileges of role.';
GRANT EXECUTE ON FUNCTION caller_has_role(text) TO recovery_viewer, recovery_auditor;
