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

CREATE FUNCTION caller_role() RETURNS name
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'recovery_caller_role_sql';
COMMENT ON FUNCTION caller_role() IS
    'The role the request runs as (after SET ROLE), also inside SECURITY DEFINER functions.';
GRANT EXECUTE ON FUNCTION caller_role() TO recovery_viewer, recovery_auditor;

-- Read-your-writes on a standby: the gateway sends a read that carries the
-- commit position of the caller's last write to a standby with this first;
-- a standby that has not replayed that far refuses (PR011) and the gateway
-- sends the read to the primary.  On the primary it always passes.
CREATE FUNCTION replayed(lsn pg_lsn) RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF pg_is_in_recovery() AND coalesce(pg_last_wal_replay_lsn() < lsn, true) THEN
        RAISE EXCEPTION 'this standby has replayed the WAL to %, not yet to %',
                        pg_last_wal_replay_lsn(), lsn
            USING ERRCODE = 'PR011',
                  HINT = 'Read from the primary, or wait: the standby is catching up.';
    END IF;
END
$$;
COMMENT ON FUNCTION replayed(pg_lsn) IS
    'Fails with PR011 on a standby that has not replayed the WAL up to lsn (the commit position of a write the caller made); passes on the primary.';
GRANT EXECUTE ON FUNCTION replayed(pg_lsn) TO recovery_viewer, recovery_auditor, recovery_authenticator;
