-- Dunning policies: the steps of reminders a case goes through.

CREATE TABLE dunning_policies (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    description text,
    steps       jsonb NOT NULL,
    is_default  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    version     integer NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX dunning_policies_one_default ON dunning_policies (is_default) WHERE is_default;
COMMENT ON TABLE dunning_policies IS
    'Ordered reminder steps: days from the due date, channel, template, optional fee and action.';
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON dunning_policies
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
GRANT SELECT ON dunning_policies TO recovery_viewer, recovery_auditor;
SELECT pg_catalog.pg_extension_config_dump('dunning_policies', '');
SELECT pg_catalog.pg_extension_config_dump('dunning_policies_id_seq', '');

-- the reason a list of steps is not a policy, or NULL
CREATE FUNCTION dunning_steps_problem(steps jsonb) RETURNS text
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    step jsonb;
    n integer := 0;
    previous integer;
    fee jsonb;
BEGIN
    IF jsonb_typeof(steps) IS DISTINCT FROM 'array' OR jsonb_array_length(steps) = 0 THEN
        RETURN 'steps must be a non-empty array';
    END IF;
    FOR step IN SELECT value FROM jsonb_array_elements(steps) LOOP
        n := n + 1;
        IF jsonb_typeof(step) <> 'object' THEN
            RETURN format('step %s is not an object', n);
        END IF;
        IF EXISTS (SELECT 1 FROM jsonb_object_keys(step) AS k
                    WHERE k NOT IN ('offset_days', 'channel', 'template', 'fee', 'action')) THEN
            RETURN format('step %s has an unknown field; the fields are offset_days, channel, template, fee, action', n);
        END IF;
        IF jsonb_typeof(step -> 'offset_days') IS DISTINCT FROM 'number'
           OR (step ->> 'offset_days') !~ '^-?[0-9]+$'
           OR (step ->> 'offset_days')::integer NOT BETWEEN -60 AND 365 THEN
            RETURN format('step %s: offset_days is a whole number of days from -60 to 365', n);
        END IF;
        IF previous IS NOT NULL AND (step ->> 'offset_days')::integer <= previous THEN
            RETURN format('step %s: offset_days must grow from step to step', n);
        END IF;
        previous := (step ->> 'offset_days')::integer;
        IF NOT (step ->> 'channel') = ANY (ARRAY['email', 'sms', 'letter', 'webhook']) THEN
            RETURN format('step %s: channel is email, sms, letter or webhook', n);
        END IF;
        IF NOT EXISTS (SELECT 1 FROM recovery.templates t
                        WHERE t.name = step ->> 'template' AND t.channel = step ->> 'channel') THEN
            RETURN format('step %s: there is no %s template named "%s"', n, step ->> 'channel',
                          step ->> 'template');
        END IF;
        fee := step -> 'fee';
        IF fee IS NOT NULL AND fee <> 'null'::jsonb AND NOT coalesce(
               jsonb_typeof(fee) = 'object'
               AND (SELECT count(*) FROM jsonb_object_keys(fee)) = 1
               AND ((jsonb_typeof(fee -> 'fixed') IS NOT DISTINCT FROM 'number'
                     AND (fee ->> 'fixed') ~ '^[0-9]+$')
                    OR (jsonb_typeof(fee -> 'percent') IS NOT DISTINCT FROM 'number'
                        AND (fee ->> 'percent')::numeric BETWEEN 0 AND 100)), false) THEN
            RETURN format('step %s: a fee is {"fixed": minor units} or {"percent": 0 to 100}', n);
        END IF;
        IF step ? 'action' AND step -> 'action' <> 'null'::jsonb AND step ->> 'action' <> 'escalate' THEN
            RETURN format('step %s: the only action is "escalate"', n);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;
GRANT EXECUTE ON FUNCTION dunning_steps_problem(jsonb) TO recovery_manager;

CREATE FUNCTION dunning_policy_save(name text, steps jsonb, description text DEFAULT NULL,
                                    is_default boolean DEFAULT NULL, expected_version integer DEFAULT NULL)
    RETURNS dunning_policies
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    problem text := recovery.dunning_steps_problem(steps);
    saved recovery.dunning_policies;
BEGIN
    IF NOT recovery.caller_has_role('recovery_manager') THEN
        RAISE EXCEPTION 'permission denied to change dunning policies' USING ERRCODE = '42501',
            HINT = 'Dunning policies are for managers and administrators.';
    END IF;
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'invalid dunning policy: %', problem USING ERRCODE = 'PR004';
    END IF;
    IF coalesce(is_default, false) THEN
        UPDATE recovery.dunning_policies p SET is_default = false, updated_at = now(), version = p.version + 1
         WHERE p.is_default AND p.name <> dunning_policy_save.name;
    END IF;
    INSERT INTO recovery.dunning_policies AS p (name, description, steps, is_default)
    VALUES (name, description, steps, coalesce(is_default, false))
    ON CONFLICT ON CONSTRAINT dunning_policies_name_key DO UPDATE
       SET description = coalesce(excluded.description, p.description), steps = excluded.steps,
           is_default = coalesce(dunning_policy_save.is_default, p.is_default),
           updated_at = now(), version = p.version + 1
     WHERE expected_version IS NULL OR p.version = expected_version
    RETURNING * INTO saved;
    IF saved.id IS NULL THEN
        RAISE EXCEPTION 'dunning policy % was changed by someone else', name USING ERRCODE = 'PR002',
            HINT = 'Reload the policy and apply your change again.';
    END IF;
    RETURN saved;
END
$$;
COMMENT ON FUNCTION dunning_policy_save(text, jsonb, text, boolean, integer) IS
    'Creates or replaces a dunning policy (managers); steps are checked (growing offsets, known channels and templates, fees, actions).';
GRANT EXECUTE ON FUNCTION dunning_policy_save(text, jsonb, text, boolean, integer) TO recovery_manager;
