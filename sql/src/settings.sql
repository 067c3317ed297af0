-- The extension's settings, read from SQL.

-- a setting in its base unit (seconds for "1min"), or the fallback when
-- the library is not loaded in this backend
CREATE FUNCTION setting_int(name text, fallback integer) RETURNS integer
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT coalesce((SELECT s.setting::integer FROM pg_settings s WHERE s.name = setting_int.name),
                          fallback) $$;
GRANT EXECUTE ON FUNCTION setting_int(text, integer) TO recovery_viewer, recovery_auditor;
