-- Responses kept per Idempotency-Key, so that a retried write is answered, not repeated.

-- Idempotency: a POST retried with the same Idempotency-Key and body gets the
-- first response and writes nothing.  The gateway calls idempotency_begin
-- before the routed function and idempotency_store around it, in the same
-- transaction: a failed call leaves no key behind, and a concurrent request
-- with the same key waits on the key's row, then replays.  A replay skips
-- the call (CASE WHEN idempotency_replaying(key) ...) and answers with what
-- idempotency_begin returned.
CREATE TABLE idempotency_keys (
    owner        text NOT NULL,
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    route        text NOT NULL,
    request_hash text NOT NULL,
    status       integer,
    response     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
COMMENT ON TABLE idempotency_keys IS
    'Responses of POST requests by (owner, Idempotency-Key), replayed to retries until they expire.';
COMMENT ON COLUMN idempotency_keys.owner IS 'Who sent the request: recovery.actor (a user''s email or api-key:<name>).';
COMMENT ON COLUMN idempotency_keys.request_hash IS 'SHA-256 of the request body, hex: the same key with another body is refused.';
GRANT SELECT ON idempotency_keys TO recovery_auditor;
SELECT pg_catalog.pg_extension_config_dump('idempotency_keys', '');

CREATE FUNCTION idempotency_begin(key text, route text, request_hash text) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    who text := coalesce(nullif(current_setting('recovery.actor'), ''), session_user);
    -- missing_ok: the GUC exists once pg_recovery's library is loaded
    ttl interval := coalesce(nullif(current_setting('recovery.idempotency_ttl', true), ''),
                             '1 day')::interval;
    seen recovery.idempotency_keys;
BEGIN
    DELETE FROM recovery.idempotency_keys k
     WHERE k.owner = who AND k.key = idempotency_begin.key AND k.expires_at <= now();
    INSERT INTO recovery.idempotency_keys (owner, key, route, request_hash, expires_at)
    VALUES (who, key, route, request_hash, now() + ttl)
    ON CONFLICT ON CONSTRAINT idempotency_keys_pkey DO NOTHING;
    IF FOUND THEN
        RETURN NULL;
    END IF;

    SELECT * INTO seen FROM recovery.idempotency_keys k
     WHERE k.owner = who AND k.key = idempotency_begin.key;
    IF seen.route <> route OR seen.request_hash <> request_hash THEN
        RAISE EXCEPTION 'idempotency key "%" was used for another request', key
            USING ERRCODE = 'PR010',
                  DETAIL = format('It was first used for %s with another body, at %s.',
                                  seen.route, seen.created_at),
                  HINT = 'Use a new key for a new request; retry a request only with its own key and the same body.';
    END IF;
    -- a retry: the call of this transaction must not run (idempotency_replaying)
    PERFORM set_config('recovery.idempotency_replay', key, true);
    RETURN jsonb_build_object('status', seen.status, 'body', seen.response);
END
$$;
COMMENT ON FUNCTION idempotency_begin(text, text, text) IS
    'Claims an Idempotency-Key for this request (NULL), or returns the first response ({"status", "body"}) for a retry, or fails with PR010 when the key was used for another request.';
GRANT EXECUTE ON FUNCTION idempotency_begin(text, text, text) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION idempotency_replaying(key text) RETURNS boolean
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT coalesce(current_setting('recovery.idempotency_replay', true), '') = key $$;
COMMENT ON FUNCTION idempotency_replaying(text) IS
    'Whether idempotency_begin found this key a retry in this transaction: the routed call is then skipped.';
GRANT EXECUTE ON FUNCTION idempotency_replaying(text) TO recovery_viewer, recovery_auditor;

-- A retry with the same Idempotency-Key replays the first response, which is
-- kept for a day where auditors can read it: a secret it showed once (the
-- key of POST /api-keys) is not kept, and the replay says so.
CREATE FUNCTION idempotency_store(key text, status integer, response jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    kept jsonb := response;
BEGIN
    IF jsonb_typeof(response) = 'object' AND response ? 'key' THEN
        kept := (response - 'key') || jsonb_build_object('key_withheld', true,
            'note', 'This is a replay: the key was issued by the first request and is shown only once.');
    END IF;
    UPDATE recovery.idempotency_keys k
       SET status = idempotency_store.status, response = kept
     WHERE k.owner = coalesce(nullif(current_setting('recovery.actor'), ''), session_user)
       AND k.key = idempotency_store.key;
    RETURN response;
END
$$;
COMMENT ON FUNCTION idempotency_store(text, integer, jsonb) IS
    'Keeps the response of the request that claimed the key, without a secret it showed (an API key), and returns it whole.';
GRANT EXECUTE ON FUNCTION idempotency_store(text, integer, jsonb) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION idempotency_purge() RETURNS bigint
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    WITH gone AS (DELETE FROM recovery.idempotency_keys WHERE expires_at <= now() RETURNING 1)
    SELECT count(*) FROM gone
$$;
COMMENT ON FUNCTION idempotency_purge() IS 'Deletes expired idempotency keys; returns how many (for a pg_cron job).';
