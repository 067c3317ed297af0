-- Message templates for reminders and their rendering.

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
    html_body  text CHECK (length(html_body) BETWEEN 1 AND 50000),
    UNIQUE (name, channel, locale)
);
COMMENT ON TABLE templates IS 'Message templates per channel and locale, with {{placeholders}} checked when saved.';
COMMENT ON COLUMN templates.html_body IS 'Email only: an HTML alternative to body; every value put into it is HTML-escaped.';
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON templates
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
GRANT SELECT ON templates TO recovery_viewer, recovery_auditor;
SELECT pg_catalog.pg_extension_config_dump('templates', '');
SELECT pg_catalog.pg_extension_config_dump('templates_id_seq', '');

CREATE FUNCTION template_placeholders() RETURNS text[]
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT ARRAY['customer_name', 'amount', 'balance', 'currency', 'due_date',
                       'case_reference', 'payment_link'] $$;
COMMENT ON FUNCTION template_placeholders() IS 'The placeholders a template may use, as {{name}}.';
GRANT EXECUTE ON FUNCTION template_placeholders() TO recovery_viewer, recovery_auditor;

CREATE FUNCTION template_save(name text, channel text, locale text, body text,
                              subject text DEFAULT NULL, expected_version integer DEFAULT NULL,
                              html_body text DEFAULT NULL)
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
      FROM regexp_matches(coalesce(body, '') || ' ' || coalesce(subject, '') || ' ' || coalesce(html_body, ''),
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
    IF html_body IS NOT NULL AND channel IS DISTINCT FROM 'email' THEN
        RAISE EXCEPTION 'only email templates have an HTML body' USING ERRCODE = 'PR004';
    END IF;
    INSERT INTO recovery.templates AS t (name, channel, locale, subject, body, html_body)
    VALUES (name, channel, locale, subject, body, html_body)
    ON CONFLICT ON CONSTRAINT templates_name_channel_locale_key DO UPDATE
       SET subject = excluded.subject, body = excluded.body, html_body = excluded.html_body,
           updated_at = now(), version = t.version + 1
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
COMMENT ON FUNCTION template_save(text, text, text, text, text, integer, text) IS
    'Creates or replaces the template of a name, channel and locale (managers); refuses unknown placeholders.';
GRANT EXECUTE ON FUNCTION template_save(text, text, text, text, text, integer, text) TO recovery_manager;
