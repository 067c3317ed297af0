-- Recovery cases, their state machine, events, promises and notes.

-- State machine predicates (C; the table itself is in state_machine.c)
CREATE FUNCTION case_state_is_valid(state text) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'recovery_case_state_is_valid';
COMMENT ON FUNCTION case_state_is_valid(text) IS
    'Whether the text is one of the case states of the state machine.';
GRANT EXECUTE ON FUNCTION case_state_is_valid(text) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION case_state_is_terminal(state text) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'recovery_case_state_is_terminal';
COMMENT ON FUNCTION case_state_is_terminal(text) IS
    'Whether a case in this state is closed (resolved, written_off, cancelled).';
GRANT EXECUTE ON FUNCTION case_state_is_terminal(text) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION case_states(OUT state text, OUT terminal boolean, OUT meaning text)
    RETURNS SETOF record
    LANGUAGE c IMMUTABLE STRICT
    AS 'MODULE_PATHNAME', 'recovery_case_states';
COMMENT ON FUNCTION case_states() IS 'The case states and what each means.';
GRANT EXECUTE ON FUNCTION case_states() TO recovery_viewer, recovery_auditor;

CREATE FUNCTION case_transitions(OUT event text, OUT from_state text,
                                 OUT to_state text, OUT required_role text,
                                 OUT required_details text[])
    RETURNS SETOF record
    LANGUAGE c IMMUTABLE STRICT
    AS 'MODULE_PATHNAME', 'recovery_case_transitions';
COMMENT ON FUNCTION case_transitions() IS
    'The state machine: one row per (event, from state) pair, with the role an event needs beyond case_transition itself (NULL: none) and the details it requires.';
GRANT EXECUTE ON FUNCTION case_transitions() TO recovery_viewer, recovery_auditor;

CREATE TABLE recovery_cases (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id      bigint NOT NULL REFERENCES customers,
    currency         char(3) NOT NULL REFERENCES currencies,
    balance          bigint NOT NULL CHECK (balance >= 0),
    state            text NOT NULL DEFAULT 'open' CHECK (case_state_is_valid(state)),
    assigned_user_id bigint REFERENCES users,
    priority         smallint NOT NULL DEFAULT 3 CHECK (priority BETWEEN 1 AND 5),
    next_action_at   timestamptz,
    opened_at        timestamptz NOT NULL DEFAULT now(),
    closed_at        timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    version          integer NOT NULL DEFAULT 1,
    dunning_policy_id bigint REFERENCES dunning_policies,
    CHECK ((closed_at IS NOT NULL) = case_state_is_terminal(state))
);
-- One open case per customer and currency.
CREATE UNIQUE INDEX recovery_cases_one_open ON recovery_cases (customer_id, currency)
    WHERE NOT case_state_is_terminal(state);
CREATE INDEX recovery_cases_state ON recovery_cases (state);
CREATE INDEX recovery_cases_assigned ON recovery_cases (assigned_user_id) WHERE assigned_user_id IS NOT NULL;
COMMENT ON TABLE recovery_cases IS 'A customer''s debt in one currency being recovered; state changes only through recovery.case_transition() and money.';
COMMENT ON COLUMN recovery_cases.balance IS 'Outstanding amount in minor units of currency: the sum of its payments'' outstanding amounts.';
COMMENT ON COLUMN recovery_cases.version IS 'Optimistic lock: bumped by every change; writers pass the version they saw.';
COMMENT ON COLUMN recovery_cases.priority IS '1 (highest) to 5.';
COMMENT ON COLUMN recovery_cases.dunning_policy_id IS 'The dunning policy of this case; NULL: the customer''s, else the default.';
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON recovery_cases
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
GRANT SELECT ON recovery_cases TO recovery_viewer, recovery_auditor;
SELECT pg_catalog.pg_extension_config_dump('recovery_cases', '');
SELECT pg_catalog.pg_extension_config_dump('recovery_cases_id_seq', '');

CREATE TABLE case_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id       bigint NOT NULL REFERENCES recovery_cases,
    customer_id   bigint NOT NULL REFERENCES customers,
    event         text NOT NULL,
    from_state    text CHECK (case_state_is_valid(from_state)),
    to_state      text NOT NULL CHECK (case_state_is_valid(to_state)),
    actor         text NOT NULL,
    actor_user_id bigint REFERENCES users,
    occurred_at   timestamptz NOT NULL DEFAULT now(),
    reason        bytea,
    details       jsonb NOT NULL DEFAULT '{}',
    request_id    text,
    personal_details bytea
);
CREATE INDEX case_events_case ON case_events (case_id, id);
COMMENT ON TABLE case_events IS 'The history of every case: transitions, and the money and payments that changed it (open, payment_added, payment_received, resolve).';
COMMENT ON COLUMN case_events.reason IS 'Sealed (pii_seal.c): read it decrypted in case_events_decrypted.';
COMMENT ON COLUMN case_events.details IS
    'The details the system reads (amounts, dates, ids: event_details_clear()), in clear; the rest of what was sent is in personal_details.';
COMMENT ON COLUMN case_events.personal_details IS
    'Sealed: the details that are not the system''s own (the reason as sent, any other field), a JSON object; NULL when there are none.';
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON case_events
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
GRANT SELECT ON case_events TO recovery_viewer, recovery_auditor;
SELECT pg_catalog.pg_extension_config_dump('case_events', '');
SELECT pg_catalog.pg_extension_config_dump('case_events_id_seq', '');

-- An event's details are what the client sent with it: the fields the
-- system itself reads and writes (money, dates, ids) stay clear for
-- reports; the reason and anything else may be personal and are sealed.
-- The trigger below asks for every event, payments included: one jsonb
-- operator answers.
CREATE FUNCTION event_details_personal(details jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE WHEN jsonb_typeof(details) = 'object'
                THEN nullif(details - '{amount,due_date,instalments,grace_days,payment_id,status,receipt_id,allocated,balance,notification_id,channel}'::text[],
                            '{}') END
$$;
COMMENT ON FUNCTION event_details_personal(jsonb) IS
    'The fields of an event''s details that are sealed: all but amount, due_date, instalments, grace_days, payment_id, status, receipt_id, allocated, balance, notification_id and channel (the reason, any field a client adds); NULL when there are none.';
GRANT EXECUTE ON FUNCTION event_details_personal(jsonb) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION event_details_clear(details jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE WHEN jsonb_typeof(details) = 'object'
                THEN details - ARRAY(SELECT jsonb_object_keys(recovery.event_details_personal(details)))
                ELSE '{}' END
$$;
COMMENT ON FUNCTION event_details_clear(jsonb) IS
    'The fields of an event''s details kept in clear: those event_details_personal() leaves out.';
GRANT EXECUTE ON FUNCTION event_details_clear(jsonb) TO recovery_viewer, recovery_auditor;

-- Before the seal: the personal details move to their sealed column, and
-- an erased customer's event keeps only the erasure's words.
CREATE FUNCTION case_event_personal() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    personal jsonb := recovery.event_details_personal(NEW.details);
BEGIN
    IF personal IS NOT NULL THEN
        IF NEW.personal_details IS NOT NULL THEN
            personal := recovery.pii_open(NEW.personal_details, 'case_events', 'personal_details',
                                          NEW.id, NEW.customer_id)::jsonb || personal;
        END IF;
        NEW.details := recovery.event_details_clear(NEW.details);
        NEW.personal_details := convert_to(personal::text, 'UTF8');
    END IF;
    IF (NOT recovery.pii_is_sealed(NEW.reason) OR NOT recovery.pii_is_sealed(NEW.personal_details))
       AND recovery.pii_key_destroyed(NEW.customer_id) THEN
        IF NOT recovery.pii_is_sealed(NEW.reason) THEN
            NEW.reason := convert_to('[erased]', 'UTF8');
        END IF;
        IF NOT recovery.pii_is_sealed(NEW.personal_details) THEN
            NEW.personal_details := NULL;
        END IF;
    END IF;
    RETURN NEW;
END
$$;
-- triggers fire by name: this one, then the seal
CREATE TRIGGER check_personal BEFORE INSERT OR UPDATE ON case_events
    FOR EACH ROW EXECUTE FUNCTION case_event_personal();
CREATE TRIGGER seal_personal BEFORE INSERT OR UPDATE ON case_events
    FOR EACH ROW EXECUTE FUNCTION pii_seal('reason', 'personal_details');

CREATE VIEW case_events_decrypted AS
    SELECT e.id, e.case_id, e.customer_id, e.event, e.from_state, e.to_state, e.actor,
           e.actor_user_id, e.occurred_at,
           recovery.pii_open(e.reason, 'case_events', 'reason', e.id, e.customer_id) AS reason,
           e.details || coalesce(recovery.pii_open(e.personal_details, 'case_events', 'personal_details',
                                                   e.id, e.customer_id)::jsonb, '{}') AS details,
           e.request_id
      FROM recovery.case_events e;
COMMENT ON VIEW case_events_decrypted IS 'recovery.case_events with the reason decrypted and the details whole again.';
GRANT SELECT ON case_events_decrypted TO recovery_viewer, recovery_auditor;

CREATE TABLE promises (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id       bigint NOT NULL REFERENCES recovery_cases,
    customer_id   bigint NOT NULL REFERENCES customers,
    case_event_id bigint NOT NULL REFERENCES case_events,
    kind          text NOT NULL CHECK (kind IN ('promise', 'instalment')),
    instalment_no integer NOT NULL DEFAULT 1 CHECK (instalment_no > 0),
    amount        bigint NOT NULL CHECK (amount > 0),
    currency      char(3) NOT NULL REFERENCES currencies,
    due_date      date NOT NULL,
    paid_amount   bigint NOT NULL DEFAULT 0 CHECK (paid_amount >= 0),
    outcome       text NOT NULL DEFAULT 'pending'
                  CHECK (outcome IN ('pending', 'kept', 'broken', 'superseded', 'cancelled')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    resolved_at   timestamptz,
    version       integer NOT NULL DEFAULT 1
);
CREATE INDEX promises_pending ON promises (case_id) WHERE outcome = 'pending';
COMMENT ON TABLE promises IS 'Promises to pay and the instalments of payment plans, with what was paid towards them and their outcome.';
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON promises
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
GRANT SELECT ON promises TO recovery_viewer, recovery_auditor;
SELECT pg_catalog.pg_extension_config_dump('promises', '');
SELECT pg_catalog.pg_extension_config_dump('promises_id_seq', '');

CREATE TABLE case_notes (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id        bigint NOT NULL REFERENCES recovery_cases,
    customer_id    bigint NOT NULL REFERENCES customers,
    body           bytea NOT NULL CHECK (octet_length(body) > 0),
    author         text NOT NULL,
    author_user_id bigint REFERENCES users,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_notes_case ON case_notes (case_id, id);
COMMENT ON TABLE case_notes IS 'Free-text notes of the people who work a case (personal data: erased with the customer).';
COMMENT ON COLUMN case_notes.body IS 'Sealed (pii_seal.c): read it decrypted in case_notes_decrypted; 1 to 10000 characters (case_note_add).';
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON case_notes
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
CREATE TRIGGER seal_personal BEFORE INSERT OR UPDATE ON case_notes
    FOR EACH ROW EXECUTE FUNCTION pii_seal('body');
GRANT SELECT ON case_notes TO recovery_viewer, recovery_auditor;
SELECT pg_catalog.pg_extension_config_dump('case_notes', '');
SELECT pg_catalog.pg_extension_config_dump('case_notes_id_seq', '');

CREATE VIEW case_notes_decrypted AS
    SELECT n.id, n.case_id, n.customer_id,
           recovery.pii_open(n.body, 'case_notes', 'body', n.id, n.customer_id) AS body,
           n.author, n.author_user_id, n.created_at
      FROM recovery.case_notes n;
COMMENT ON VIEW case_notes_decrypted IS 'recovery.case_notes with the body decrypted.';
GRANT SELECT ON case_notes_decrypted TO recovery_viewer, recovery_auditor;

-- The state machine applied to a case (C, state_machine.c)
CREATE FUNCTION case_transitions(case_id bigint, OUT event text, OUT from_state text,
                                 OUT to_state text, OUT required_role text,
                                 OUT required_details text[])
    RETURNS SETOF record
    LANGUAGE c STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'recovery_case_transitions_for_case';
COMMENT ON FUNCTION case_transitions(bigint) IS
    'The events this case accepts now that the caller''s role may fire.';
GRANT EXECUTE ON FUNCTION case_transitions(bigint) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION case_transition(case_id bigint, event text, expected_version integer,
                                details jsonb DEFAULT '{}')
    RETURNS recovery_cases
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'recovery_case_transition';
COMMENT ON FUNCTION case_transition(bigint, text, integer, jsonb) IS
    'Fires an event of the state machine on a case, if its version is still expected_version; returns the changed case.';
GRANT EXECUTE ON FUNCTION case_transition(bigint, text, integer, jsonb) TO recovery_agent, recovery_automation;

-- days since the oldest payment of the case that is still owed fell due
CREATE FUNCTION case_overdue_days(case_id bigint) RETURNS integer
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT greatest(current_date - min(p.due_date), 0)
    FROM recovery.payments AS p
    WHERE p.case_id = case_overdue_days.case_id AND p.outstanding > 0
$$;
COMMENT ON FUNCTION case_overdue_days(bigint) IS
    'Days since the oldest payment of the case that is still owed fell due (NULL when nothing is owed).';
GRANT EXECUTE ON FUNCTION case_overdue_days(bigint) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION case_note_add(case_id bigint, body text) RETURNS case_notes_decrypted
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    target recovery.recovery_cases;
    note recovery.case_notes_decrypted;
    author_id bigint := nullif(current_setting('recovery.user_id'), '')::bigint;
BEGIN
    IF NOT recovery.caller_has_role('recovery_agent')
       AND NOT recovery.caller_has_role('recovery_automation') THEN
        RAISE EXCEPTION 'permission denied to add notes' USING ERRCODE = '42501',
            HINT = 'Ask an agent to do it.';
    END IF;
    SELECT * INTO target FROM recovery.recovery_cases c WHERE c.id = case_note_add.case_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'recovery case % does not exist', case_id USING ERRCODE = 'PR003';
    END IF;
    IF body IS NULL OR length(btrim(body)) = 0 OR length(body) > 10000 THEN
        RAISE EXCEPTION 'a note needs a body of 1 to 10000 characters' USING ERRCODE = 'PR004',
            HINT = 'Send {"body": "..."}.';
    END IF;
    INSERT INTO recovery.case_notes AS n (case_id, customer_id, body, author, author_user_id)
    VALUES (target.id, target.customer_id, convert_to(body, 'UTF8'),
            coalesce(nullif(current_setting('recovery.actor'), ''), session_user), author_id)
    RETURNING n.id, n.case_id, n.customer_id, case_note_add.body, n.author, n.author_user_id,
              n.created_at INTO note;
    RETURN note;
END
$$;
COMMENT ON FUNCTION case_note_add(bigint, text) IS 'Adds a note to a case, written by the current user.';
GRANT EXECUTE ON FUNCTION case_note_add(bigint, text) TO recovery_agent, recovery_automation;

CREATE FUNCTION case_assign(case_id bigint, expected_version integer,
                            assigned_user_id bigint DEFAULT NULL, priority integer DEFAULT NULL)
    RETURNS recovery_cases
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    target recovery.recovery_cases;
BEGIN
    IF NOT recovery.caller_has_role('recovery_agent') THEN
        RAISE EXCEPTION 'permission denied to assign cases' USING ERRCODE = '42501',
            HINT = 'Ask an agent or a manager to do it.';
    END IF;
    IF expected_version IS NULL THEN
        RAISE EXCEPTION 'expected_version is required' USING ERRCODE = 'PR004',
            HINT = 'Send the version of the case you read.';
    END IF;
    IF priority IS NOT NULL AND priority NOT BETWEEN 1 AND 5 THEN
        RAISE EXCEPTION 'priority % is out of range', priority USING ERRCODE = 'PR004',
            HINT = 'Priorities go from 1 (most urgent) to 5.';
    END IF;
    IF assigned_user_id IS NOT NULL AND assigned_user_id <> 0 AND NOT EXISTS (
           SELECT 1 FROM recovery.users u WHERE u.id = assigned_user_id AND NOT u.disabled) THEN
        RAISE EXCEPTION 'user % does not exist or is disabled', assigned_user_id
            USING ERRCODE = 'PR003';
    END IF;
    SELECT * INTO target FROM recovery.recovery_cases c WHERE c.id = case_assign.case_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'recovery case % does not exist', case_id USING ERRCODE = 'PR003';
    END IF;
    IF target.version <> expected_version THEN
        RAISE EXCEPTION 'recovery case % was changed by someone else', case_id
            USING ERRCODE = 'PR002',
                  DETAIL = format('You expected version %s; the case is now at version %s in state "%s".',
                                  expected_version, target.version, target.state),
                  HINT = 'Reload the case and decide again.';
    END IF;
    UPDATE recovery.recovery_cases c
       SET assigned_user_id = CASE WHEN case_assign.assigned_user_id IS NULL THEN c.assigned_user_id
                                   ELSE nullif(case_assign.assigned_user_id, 0) END,
           priority = coalesce(case_assign.priority, c.priority),
           updated_at = now(),
           version = c.version + 1
     WHERE c.id = case_assign.case_id
    RETURNING * INTO target;
    RETURN target;
END
$$;
COMMENT ON FUNCTION case_assign(bigint, integer, bigint, integer) IS
    'Assigns a case to a user (0: to nobody) and/or sets its priority, if its version is still expected_version.';
GRANT EXECUTE ON FUNCTION case_assign(bigint, integer, bigint, integer) TO recovery_agent;

-- how a case is named to its customer and in payment references
CREATE FUNCTION case_reference(case_id bigint) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT 'RC-' || lpad(case_id::text, 6, '0') $$;
COMMENT ON FUNCTION case_reference(bigint) IS
    'The reference of a case that customers see in messages (RC-000042); payments quoting it are matched to the case.';
GRANT EXECUTE ON FUNCTION case_reference(bigint) TO recovery_viewer, recovery_auditor;

-- Broken promises and defaulted plans
CREATE FUNCTION check_promises(now timestamptz DEFAULT now()) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    grace integer := recovery.setting_int('recovery.promise_grace_days', 3);
    late record;
    broken integer := 0;
    defaulted integer := 0;
    failed integer := 0;
BEGIN
    -- a restored copy fires nothing its original may have fired already
    IF recovery.restore_held() THEN
        RETURN jsonb_build_object('promises_broken', 0, 'plans_defaulted', 0, 'skipped', 0,
                                  'held', 'restored from a dump: see recovery.restore_release()');
    END IF;
    FOR late IN
        SELECT c.id AS case_id, c.version, c.state,
               bool_or(p.kind = 'instalment') AS instalment, min(p.due_date) AS due_date
          FROM recovery.promises p
          JOIN recovery.recovery_cases c ON c.id = p.case_id
          JOIN recovery.customers cu ON cu.id = c.customer_id
         WHERE p.outcome = 'pending' AND p.paid_amount < p.amount
           AND p.due_date + grace < recovery.local_date(cu.time_zone, check_promises.now)
           AND c.state IN ('promised', 'plan')
         GROUP BY c.id, c.version, c.state
         ORDER BY c.id
    LOOP
        BEGIN
            PERFORM recovery.case_transition(late.case_id,
                CASE WHEN late.state = 'plan' THEN 'plan_default' ELSE 'promise_broken' END,
                late.version,
                jsonb_build_object('due_date', late.due_date, 'grace_days', grace));
            IF late.state = 'plan' THEN defaulted := defaulted + 1; ELSE broken := broken + 1; END IF;
        EXCEPTION WHEN OTHERS THEN
            -- changed meanwhile (a payment, an agent): the next run looks again
            failed := failed + 1;
            RAISE WARNING 'check_promises: case %: %', late.case_id, SQLERRM;
        END;
    END LOOP;
    RETURN jsonb_build_object('promises_broken', broken, 'plans_defaulted', defaulted, 'skipped', failed);
END
$$;
COMMENT ON FUNCTION check_promises(timestamptz) IS
    'The scheduled check: a promise unpaid past its date plus recovery.promise_grace_days fires promise_broken; a missed instalment fires plan_default.';
GRANT EXECUTE ON FUNCTION check_promises(timestamptz) TO recovery_automation, recovery_admin;

-- What the web app asks instead of knowing: what the caller may do, and
-- which states close a case
CREATE FUNCTION caller_may() RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT jsonb_build_object(
        'act', recovery.caller_has_role('recovery_agent'),
        'manage', recovery.caller_has_role('recovery_manager'),
        'audit', recovery.caller_has_role('recovery_auditor'),
        'administer', recovery.caller_has_role('recovery_admin')) $$;
COMMENT ON FUNCTION caller_may() IS
    'What the role in effect may do: act on cases (agents), manage templates, policies and dead letters (managers), read the audit trail (auditors), administer (admins).';
GRANT EXECUTE ON FUNCTION caller_may() TO recovery_viewer, recovery_auditor;
