-- A database restored from a dump.  pg_dump keeps every table of the
-- extension (pg_extension_config_dump beside each); pg_restore's session
-- writes no audit rows, since the dump brings the trail, and its first row
-- records a hold here (restore.c).  While a restore holds, reminders,
-- delivery and the scheduled jobs wait, so that a copy sends nothing its
-- original already sent, until an operator calls restore_release().

CREATE TABLE restore_holds (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    restored_at timestamptz NOT NULL DEFAULT now(),
    restored_by text NOT NULL DEFAULT session_user,
    released_at timestamptz,
    released_by text,
    CHECK ((released_at IS NULL) = (released_by IS NULL))
);
-- one hold at a time
CREATE UNIQUE INDEX restore_holds_held ON restore_holds ((true)) WHERE released_at IS NULL;
COMMENT ON TABLE restore_holds IS
    'Restores of this database from a dump: until released, reminders, delivery and the scheduled jobs hold. This database''s own history, so never in a dump itself.';
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON restore_holds
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
GRANT SELECT ON restore_holds TO recovery_viewer, recovery_auditor;

CREATE FUNCTION restoring() RETURNS boolean
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'recovery_restoring_sql';
COMMENT ON FUNCTION restoring() IS
    'Whether this session is a superuser''s pg_restore: its rows bring their trail and record no live events.';

CREATE FUNCTION restore_held() RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$ SELECT EXISTS (SELECT 1 FROM recovery.restore_holds h WHERE h.released_at IS NULL) $$;
COMMENT ON FUNCTION restore_held() IS
    'Whether this database was restored from a dump and holds its reminders, delivery and scheduled jobs until restore_release().';
GRANT EXECUTE ON FUNCTION restore_held() TO recovery_viewer, recovery_auditor;

CREATE FUNCTION restore_release() RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    hold recovery.restore_holds;
BEGIN
    IF NOT recovery.caller_has_role('recovery_admin') THEN
        RAISE EXCEPTION 'only an administrator may release a restored database'
            USING ERRCODE = '42501',
                  DETAIL = 'Released, it sends the reminders and messages its outbox holds.',
                  HINT = 'Run it as recovery_admin or a superuser.';
    END IF;
    UPDATE recovery.restore_holds h
       SET released_at = now(),
           released_by = coalesce(nullif(current_setting('recovery.actor', true), ''), session_user)
     WHERE h.released_at IS NULL
    RETURNING * INTO hold;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('released', false, 'message', 'nothing was held');
    END IF;
    NOTIFY recovery_outbox;
    RETURN jsonb_build_object(
        'released', true, 'restored_at', hold.restored_at, 'released_at', hold.released_at,
        'released_by', hold.released_by,
        'queued_notifications', (SELECT count(*) FROM recovery.notifications n
                                  WHERE n.status IN ('queued', 'failed')));
END
$$;
COMMENT ON FUNCTION restore_release() IS
    'Ends the hold of a restored database (administrators): reminders, delivery and the scheduled jobs start again; says what the outbox holds.';
GRANT EXECUTE ON FUNCTION restore_release() TO recovery_admin;
