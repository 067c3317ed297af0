-- People who sign in, API keys for automation clients, passwords and logins.

CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         text NOT NULL CHECK (email ~ '^[^@\s]+@[^@\s]+$' AND length(email) <= 320),
    display_name  text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    role          text NOT NULL CHECK (role IN ('recovery_viewer', 'recovery_agent',
                      'recovery_manager', 'recovery_auditor', 'recovery_automation',
                      'recovery_admin')),
    password_hash text NOT NULL,
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    version       integer NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
COMMENT ON TABLE users IS 'People who sign in to the web app; role is the PostgreSQL role their requests run as.';
COMMENT ON COLUMN users.password_hash IS 'pbkdf2-sha256$iterations$salt$hash, made by recovery.password_hash().';
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION audit_trigger('password_hash');
GRANT SELECT (id, email, display_name, role, disabled, created_at, updated_at, version) ON users TO recovery_viewer, recovery_auditor;
SELECT pg_catalog.pg_extension_config_dump('users', '');
SELECT pg_catalog.pg_extension_config_dump('users_id_seq', '');

CREATE TABLE api_keys (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role         text NOT NULL CHECK (role IN ('recovery_viewer', 'recovery_agent',
                     'recovery_manager', 'recovery_auditor', 'recovery_automation',
                     'recovery_admin')),
    key_prefix   text NOT NULL,
    key_hash     bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    version      integer NOT NULL DEFAULT 1
);
COMMENT ON TABLE api_keys IS 'Keys of automation clients, stored as SHA-256 of the key; the key is shown once.';
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION audit_trigger('key_hash');
GRANT SELECT (id, name, role, key_prefix, created_at, revoked_at, version) ON api_keys TO recovery_auditor, recovery_admin;
SELECT pg_catalog.pg_extension_config_dump('api_keys', '');
SELECT pg_catalog.pg_extension_config_dump('api_keys_id_seq', '');

CREATE FUNCTION password_hash(password text) RETURNS text
    LANGUAGE c STRICT VOLATILE
    AS 'MODULE_PATHNAME', 'recovery_password_hash';
COMMENT ON FUNCTION password_hash(text) IS 'PBKDF2-HMAC-SHA256 hash of a password with a random salt.';
GRANT EXECUTE ON FUNCTION password_hash(text) TO recovery_admin;

CREATE FUNCTION password_check(password text, stored_hash text) RETURNS boolean
    LANGUAGE c STRICT VOLATILE
    AS 'MODULE_PATHNAME', 'recovery_password_check';
COMMENT ON FUNCTION password_check(text, text) IS 'Whether a password matches a stored hash (constant-time compare).';

CREATE FUNCTION login(email text, password text, OUT user_id bigint, OUT user_email text,
                      OUT display_name text, OUT role text)
    RETURNS record
    LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'recovery_login';
COMMENT ON FUNCTION login(text, text) IS
    'Checks a user''s password; returns the user and role, or fails with PR007 whatever was wrong.';
GRANT EXECUTE ON FUNCTION login(text, text) TO recovery_authenticator;

CREATE FUNCTION api_key_create(name text, role text) RETURNS text
    LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'recovery_api_key_create';
COMMENT ON FUNCTION api_key_create(text, text) IS
    'Creates an API key for an automation client and returns it; only its hash is kept.';
GRANT EXECUTE ON FUNCTION api_key_create(text, text) TO recovery_admin;

CREATE FUNCTION api_key_authenticate(key text, OUT api_key_id bigint, OUT name text,
                                     OUT role text)
    RETURNS record
    LANGUAGE c STRICT VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'recovery_api_key_authenticate';
COMMENT ON FUNCTION api_key_authenticate(text) IS 'The key''s id, name and role, or PR007 for an unknown or revoked key.';
GRANT EXECUTE ON FUNCTION api_key_authenticate(text) TO recovery_authenticator;

CREATE FUNCTION user_create(email text, display_name text, role text, password text)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    new_id bigint;
BEGIN
    INSERT INTO recovery.users (email, display_name, role, password_hash)
    VALUES (email, display_name, role, recovery.password_hash(password))
    RETURNING id INTO new_id;
    RETURN new_id;
EXCEPTION
    WHEN unique_violation THEN
        RAISE EXCEPTION 'a user with email "%" already exists', email USING ERRCODE = 'PR009';
    WHEN check_violation OR not_null_violation THEN
        RAISE EXCEPTION 'invalid user: %', SQLERRM USING ERRCODE = 'PR004',
            HINT = 'Give an email, a display name and one of the recovery_* roles.';
END
$$;
COMMENT ON FUNCTION user_create(text, text, text, text) IS 'Creates a web app user; returns its id.';
GRANT EXECUTE ON FUNCTION user_create(text, text, text, text) TO recovery_admin;

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
GRANT EXECUTE ON FUNCTION user_disable(bigint) TO recovery_admin;

-- A token's user: the gateway sets recovery.user_id through this in every
-- request's context, so a token whose user was deleted or disabled, or that
-- names a user who never was, stops working at once.
CREATE FUNCTION token_user(user_id text) RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF user_id !~ '^[0-9]{1,18}$' OR NOT EXISTS (
           SELECT 1 FROM recovery.users u WHERE u.id = user_id::bigint AND NOT u.disabled) THEN
        RAISE EXCEPTION 'the token names no enabled user'
            USING ERRCODE = 'PR007',
                  DETAIL = format('User %s does not exist or is disabled.', user_id),
                  HINT = 'Sign in again; an administrator can enable the user.';
    END IF;
    RETURN user_id;
END
$$;
COMMENT ON FUNCTION token_user(text) IS
    'The user id a token names (its sub), once it is known to be an enabled user; PR007 (401) otherwise.';
GRANT EXECUTE ON FUNCTION token_user(text) TO recovery_authenticator;

-- Authentication, called by the gateway as recovery_authenticator
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
GRANT EXECUTE ON FUNCTION api_key_context(text, text) TO recovery_authenticator;
