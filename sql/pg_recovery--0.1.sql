-- pg_recovery 0.1: the system of record for recovering failed and overdue
-- payments.  Tables, roles and grants here; business rules, the case state
-- machine and the audit trail in C (pg_recovery/*.c).
\echo Use "CREATE EXTENSION pg_recovery" to load this file. \quit

-------------------------------------------------------------------------------
-- Roles (cluster-wide, so created only when missing)
-------------------------------------------------------------------------------
DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['recovery_viewer', 'recovery_agent',
                             'recovery_manager', 'recovery_auditor',
                             'recovery_automation', 'recovery_admin']
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'recovery_authenticator') THEN
        CREATE ROLE recovery_authenticator LOGIN NOINHERIT;
    END IF;
END
$roles$;

-- Privileges build up: agent > viewer, manager > agent, admin > manager + auditor.
GRANT recovery_viewer TO recovery_agent;
GRANT recovery_agent TO recovery_manager;
GRANT recovery_manager TO recovery_admin;
GRANT recovery_auditor TO recovery_admin;
GRANT recovery_viewer TO recovery_automation;
-- The gateway's login role can only switch into the others (NOINHERIT).
GRANT recovery_viewer, recovery_agent, recovery_manager, recovery_auditor,
      recovery_automation, recovery_admin TO recovery_authenticator;

-------------------------------------------------------------------------------
-- State machine predicates (C; the table itself is in state_machine.c)
-------------------------------------------------------------------------------
CREATE FUNCTION case_state_is_valid(state text) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'recovery_case_state_is_valid';
COMMENT ON FUNCTION case_state_is_valid(text) IS
    'Whether the text is one of the case states of the state machine.';

CREATE FUNCTION case_state_is_terminal(state text) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'recovery_case_state_is_terminal';
COMMENT ON FUNCTION case_state_is_terminal(text) IS
    'Whether a case in this state is closed (resolved, written_off, cancelled).';

CREATE FUNCTION case_states(OUT state text, OUT terminal boolean, OUT meaning text)
    RETURNS SETOF record
    LANGUAGE c IMMUTABLE STRICT
    AS 'MODULE_PATHNAME', 'recovery_case_states';
COMMENT ON FUNCTION case_states() IS 'The case states and what each means.';

CREATE FUNCTION case_transitions(OUT event text, OUT from_state text,
                                 OUT to_state text, OUT required_role text,
                                 OUT required_details text[])
    RETURNS SETOF record
    LANGUAGE c IMMUTABLE STRICT
    AS 'MODULE_PATHNAME', 'recovery_case_transitions';
COMMENT ON FUNCTION case_transitions() IS
    'The state machine: one row per (event, from state) pair, with the role an event needs beyond case_transition itself (NULL: none) and the details it requires.';

-------------------------------------------------------------------------------
-- Tables
-------------------------------------------------------------------------------
CREATE TABLE currencies (
    code        char(3) PRIMARY KEY CHECK (code ~ '^[A-Z]{3}$'),
    minor_units smallint NOT NULL CHECK (minor_units BETWEEN 0 AND 4),
    name        text NOT NULL
);
COMMENT ON TABLE currencies IS 'ISO 4217 currencies that amounts may be in, with their minor units.';

INSERT INTO currencies (code, minor_units, name) VALUES
    ('AED', 2, 'UAE Dirham'), ('AUD', 2, 'Australian Dollar'),
    ('BGN', 2, 'Bulgarian Lev'), ('BHD', 3, 'Bahraini Dinar'),
    ('BRL', 2, 'Brazilian Real'), ('CAD', 2, 'Canadian Dollar'),
    ('CHF', 2, 'Swiss Franc'), ('CLP', 0, 'Chilean Peso'),
    ('CNY', 2, 'Yuan Renminbi'), ('CZK', 2, 'Czech Koruna'),
    ('DKK', 2, 'Danish Krone'), ('EUR', 2, 'Euro'),
    ('GBP', 2, 'Pound Sterling'), ('HKD', 2, 'Hong Kong Dollar'),
    ('HUF', 2, 'Forint'), ('IDR', 2, 'Rupiah'), ('ILS', 2, 'New Israeli Sheqel'),
    ('INR', 2, 'Indian Rupee'), ('ISK', 0, 'Iceland Krona'),
    ('JOD', 3, 'Jordanian Dinar'), ('JPY', 0, 'Yen'), ('KRW', 0, 'Won'),
    ('KWD', 3, 'Kuwaiti Dinar'), ('MXN', 2, 'Mexican Peso'),
    ('MYR', 2, 'Malaysian Ringgit'), ('NOK', 2, 'Norwegian Krone'),
    ('NZD', 2, 'New Zealand Dollar'), ('OMR', 3, 'Rial Omani'),
    ('PHP', 2, 'Philippine Peso'), ('PLN', 2, 'Zloty'), ('RON', 2, 'Romanian Leu'),
    ('SAR', 2, 'Saudi Riyal'), ('SEK', 2, 'Swedish Krona'),
    ('SGD', 2, 'Singapore Dollar'), ('THB', 2, 'Baht'),
    ('TND', 3, 'Tunisian Dinar'), ('TRY', 2, 'Turkish Lira'),
    ('TWD', 2, 'New Taiwan Dollar'), ('UAH', 2, 'Hryvnia'),
    ('USD', 2, 'US Dollar'), ('VND', 0, 'Dong'), ('ZAR', 2, 'Rand');

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

CREATE TABLE customers (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_ref        text NOT NULL UNIQUE CHECK (length(external_ref) BETWEEN 1 AND 200),
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 500),
    email               text CHECK (email ~ '^[^@\s]+@[^@\s]+$'),
    phone               text CHECK (phone ~ '^\+[0-9]{6,15}$'),
    locale              text NOT NULL DEFAULT 'en-US' CHECK (locale ~ '^[a-z]{2,3}(-[A-Z]{2})?$'),
    time_zone           text NOT NULL DEFAULT 'UTC',
    contact_preferences jsonb NOT NULL DEFAULT '{"email": true, "sms": true, "letter": true}'
                        CHECK (jsonb_typeof(contact_preferences) = 'object'),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    version             integer NOT NULL DEFAULT 1
);
COMMENT ON TABLE customers IS 'People and companies who owe money.';
COMMENT ON COLUMN customers.external_ref IS 'The customer number in the billing system.';
COMMENT ON COLUMN customers.phone IS 'E.164, for example +441632960961.';
COMMENT ON COLUMN customers.time_zone IS 'IANA time zone, for contact hours.';
COMMENT ON COLUMN customers.contact_preferences IS 'Channel consent, for example {"email": true, "sms": false}.';

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

CREATE TABLE payments (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id    bigint NOT NULL REFERENCES customers,
    external_ref   text NOT NULL CHECK (length(external_ref) BETWEEN 1 AND 200),
    amount         bigint NOT NULL CHECK (amount > 0),
    outstanding    bigint NOT NULL,
    currency       char(3) NOT NULL REFERENCES currencies,
    due_date       date NOT NULL,
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'failed', 'overdue', 'paid')),
    failure_reason text,
    case_id        bigint REFERENCES recovery_cases,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    version        integer NOT NULL DEFAULT 1,
    UNIQUE (customer_id, external_ref),
    CHECK (outstanding BETWEEN 0 AND amount),
    CHECK ((status = 'paid') = (outstanding = 0))
);
CREATE INDEX payments_case ON payments (case_id) WHERE case_id IS NOT NULL;
CREATE INDEX payments_due ON payments (status, due_date);
COMMENT ON TABLE payments IS 'Amounts a customer owes (invoices, instalments, direct debits); failed or overdue ones are recovered in a case.';
COMMENT ON COLUMN payments.outstanding IS 'What is still unpaid, in minor units.';

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
    reason        text,
    details       jsonb NOT NULL DEFAULT '{}',
    request_id    text
);
CREATE INDEX case_events_case ON case_events (case_id, id);
COMMENT ON TABLE case_events IS 'The history of every case: transitions, and the money and payments that changed it (open, payment_added, payment_received, resolve).';

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

CREATE TABLE receipts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id     bigint NOT NULL REFERENCES recovery_cases,
    customer_id bigint NOT NULL REFERENCES customers,
    currency    char(3) NOT NULL REFERENCES currencies,
    amount      bigint NOT NULL CHECK (amount > 0),
    allocated   bigint NOT NULL CHECK (allocated >= 0),
    unallocated bigint NOT NULL CHECK (unallocated >= 0),
    reference   text,
    received_at timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (allocated + unallocated = amount)
);
CREATE INDEX receipts_case ON receipts (case_id);
COMMENT ON TABLE receipts IS 'Money received against a case.';
COMMENT ON COLUMN receipts.unallocated IS 'Overpayment kept as a credit to refund or apply by hand (only with allow_overpayment).';

CREATE TABLE receipt_allocations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    receipt_id  bigint NOT NULL REFERENCES receipts,
    payment_id  bigint NOT NULL REFERENCES payments,
    customer_id bigint NOT NULL REFERENCES customers,
    amount      bigint NOT NULL CHECK (amount > 0)
);
CREATE INDEX receipt_allocations_receipt ON receipt_allocations (receipt_id);
COMMENT ON TABLE receipt_allocations IS 'How each receipt paid the case''s payments, oldest due first.';

CREATE TABLE audit_log (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    chain         integer NOT NULL,
    seq           bigint NOT NULL,
    occurred_at   timestamptz NOT NULL,
    actor         text NOT NULL,
    actor_user_id bigint,
    db_user       text NOT NULL,
    db_role       text NOT NULL,
    request_id    text,
    action        text NOT NULL CHECK (action IN ('INSERT', 'UPDATE', 'DELETE')),
    table_name    text NOT NULL,
    row_key       text NOT NULL,
    customer_id   bigint,
    old_row       json,
    new_row       json,
    old_digest    bytea,
    new_digest    bytea,
    row_hash      bytea NOT NULL,
    erased_at     timestamptz,
    PRIMARY KEY (chain, seq)
);
-- Only the chain key is indexed.  Every audited write pays for each index
-- of audit_log: in bench/audit-overhead.sh each extra btree (by customer, by
-- table and row) cost about ten points of throughput and BRIN indexes on the
-- growing columns more, as every writer updates the same summary page.
-- Indexes for audit queries belong on closed time partitions, where they
-- are built once (see README).
COMMENT ON TABLE audit_log IS 'Every change to a business table: who, when, under which request, old and new row; append-only and hash-chained (see recovery.audit_verify()).';
COMMENT ON COLUMN audit_log.actor IS 'The application user from recovery.actor, else session_user.';
COMMENT ON COLUMN audit_log.db_role IS 'The PostgreSQL role in effect (SET ROLE) when the change was made.';
COMMENT ON COLUMN audit_log.chain IS 'Which of the independent hash chains the row is on; a transaction appends to one chain.';
COMMENT ON COLUMN audit_log.row_hash IS 'SHA-256 over the previous row''s row_hash on the chain, the fields and the digests of old_row and new_row.';
COMMENT ON COLUMN audit_log.old_digest IS 'Set by erasure: SHA-256 of old_row as it was, so that the chain still verifies.';
COMMENT ON COLUMN audit_log.new_digest IS 'Set by erasure: SHA-256 of new_row as it was.';
COMMENT ON COLUMN audit_log.old_row IS 'The row before a DELETE; for an UPDATE, only the old values of the columns it changed (new_row has the rest).';
COMMENT ON COLUMN audit_log.new_row IS 'The row after an INSERT or UPDATE.';
COMMENT ON COLUMN audit_log.erased_at IS 'Set when personal data was erased from old_row/new_row; the digests keep the chain verifiable.';

-------------------------------------------------------------------------------
-- Audit trail
-------------------------------------------------------------------------------
CREATE FUNCTION audit_trigger() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'recovery_audit_trigger';
COMMENT ON FUNCTION audit_trigger() IS
    'AFTER row trigger writing the hash-chained audit trail; its arguments name columns left out of the trail.';

CREATE FUNCTION audit_log_immutable() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'recovery_audit_log_immutable';

CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_immutable();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_immutable();

CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON customers
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON payments
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON recovery_cases
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON case_events
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON promises
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON receipts
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON receipt_allocations
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION audit_trigger('password_hash');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION audit_trigger('key_hash');

CREATE FUNCTION audit_verify(OUT ok boolean, OUT rows_checked bigint,
                             OUT chains integer, OUT broken_rows bigint,
                             OUT first_broken_id bigint, OUT problem text)
    RETURNS record
    LANGUAGE c STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'recovery_audit_verify';
COMMENT ON FUNCTION audit_verify() IS
    'Walks every audit chain and reports whether it is intact, and the first damaged row (lowest id) with what is wrong with it.';

CREATE VIEW audit_chain_heads AS
    SELECT DISTINCT ON (chain) chain, seq, id, row_hash, occurred_at
    FROM audit_log ORDER BY chain, seq DESC;
COMMENT ON VIEW audit_chain_heads IS
    'The last row of each audit chain: copy it somewhere else now and then, so that removing the newest rows can be noticed too.';

-------------------------------------------------------------------------------
-- Request context
-------------------------------------------------------------------------------
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

-------------------------------------------------------------------------------
-- Business functions (C)
-------------------------------------------------------------------------------
CREATE FUNCTION case_transitions(case_id bigint, OUT event text, OUT from_state text,
                                 OUT to_state text, OUT required_role text,
                                 OUT required_details text[])
    RETURNS SETOF record
    LANGUAGE c STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'recovery_case_transitions_for_case';
COMMENT ON FUNCTION case_transitions(bigint) IS
    'The events this case accepts now that the caller''s role may fire.';

CREATE FUNCTION case_transition(case_id bigint, event text, expected_version integer,
                                details jsonb DEFAULT '{}')
    RETURNS recovery_cases
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'recovery_case_transition';
COMMENT ON FUNCTION case_transition(bigint, text, integer, jsonb) IS
    'Fires an event of the state machine on a case, if its version is still expected_version; returns the changed case.';

CREATE FUNCTION payment_create(customer_id bigint, external_ref text, amount bigint,
                               currency text, due_date date)
    RETURNS payments
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'recovery_payment_create';
COMMENT ON FUNCTION payment_create(bigint, text, bigint, text, date) IS
    'Records a payment a customer owes (amount in minor units).';

CREATE FUNCTION payment_fail(payment_id bigint, reason text DEFAULT NULL,
                             status text DEFAULT 'failed')
    RETURNS recovery_cases
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'recovery_payment_fail';
COMMENT ON FUNCTION payment_fail(bigint, text, text) IS
    'Marks a payment failed (or status => ''overdue'') and opens its customer''s case in its currency, or adds it to the open one; returns the case.';

CREATE FUNCTION case_record_payment(case_id bigint, amount bigint, currency text,
                                    reference text DEFAULT NULL,
                                    received_at timestamptz DEFAULT NULL,
                                    allow_overpayment boolean DEFAULT false)
    RETURNS receipts
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'recovery_case_record_payment';
COMMENT ON FUNCTION case_record_payment(bigint, bigint, text, text, timestamptz, boolean) IS
    'Records money received against a case, allocated to its payments oldest first; the case resolves at a zero balance.';

CREATE FUNCTION password_hash(password text) RETURNS text
    LANGUAGE c STRICT VOLATILE
    AS 'MODULE_PATHNAME', 'recovery_password_hash';
COMMENT ON FUNCTION password_hash(text) IS 'PBKDF2-HMAC-SHA256 hash of a password with a random salt.';

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

CREATE FUNCTION api_key_create(name text, role text) RETURNS text
    LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'recovery_api_key_create';
COMMENT ON FUNCTION api_key_create(text, text) IS
    'Creates an API key for an automation client and returns it; only its hash is kept.';

CREATE FUNCTION api_key_authenticate(key text, OUT api_key_id bigint, OUT name text,
                                     OUT role text)
    RETURNS record
    LANGUAGE c STRICT VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'recovery_api_key_authenticate';
COMMENT ON FUNCTION api_key_authenticate(text) IS 'The key''s id, name and role, or PR007 for an unknown or revoked key.';

-------------------------------------------------------------------------------
-- Business functions (SQL): plain records without rules of their own
-------------------------------------------------------------------------------
CREATE FUNCTION customer_create(external_ref text, name text, email text DEFAULT NULL,
                                phone text DEFAULT NULL, locale text DEFAULT 'en-US',
                                time_zone text DEFAULT 'UTC')
    RETURNS customers
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    created recovery.customers;
BEGIN
    BEGIN
        PERFORM now() AT TIME ZONE time_zone;
    EXCEPTION WHEN invalid_parameter_value THEN
        RAISE EXCEPTION 'unknown time zone "%"', time_zone USING ERRCODE = 'PR004',
            HINT = 'Use an IANA time zone name such as Europe/Berlin or America/New_York.';
    END;
    INSERT INTO recovery.customers (external_ref, name, email, phone, locale, time_zone)
    VALUES (external_ref, name, email, phone, coalesce(locale, 'en-US'), time_zone)
    RETURNING * INTO created;
    RETURN created;
EXCEPTION
    WHEN unique_violation THEN
        RAISE EXCEPTION 'a customer with reference "%" already exists', external_ref
            USING ERRCODE = 'PR009', HINT = 'Use the existing customer.';
    WHEN check_violation OR not_null_violation THEN
        RAISE EXCEPTION 'invalid customer: %', SQLERRM USING ERRCODE = 'PR004',
            HINT = 'Name is required; email needs an @; phone is E.164 such as +441632960961; locale looks like en-US.';
END
$$;
COMMENT ON FUNCTION customer_create(text, text, text, text, text, text) IS 'Creates a customer.';

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

-------------------------------------------------------------------------------
-- Grants: least privilege.  Tables are read-only to every role; all writes
-- go through the functions above, which check what the table cannot.
-------------------------------------------------------------------------------
REVOKE ALL ON ALL TABLES IN SCHEMA recovery FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA recovery FROM PUBLIC;
GRANT USAGE ON SCHEMA recovery TO recovery_viewer, recovery_auditor, recovery_authenticator;

GRANT SELECT ON currencies, customers, payments, recovery_cases, case_events,
                promises, receipts, receipt_allocations
    TO recovery_viewer, recovery_auditor;
GRANT SELECT (id, email, display_name, role, disabled, created_at, updated_at, version)
    ON users TO recovery_viewer, recovery_auditor;
GRANT SELECT (id, name, role, key_prefix, created_at, revoked_at, version)
    ON api_keys TO recovery_admin, recovery_auditor;
GRANT SELECT ON audit_log, audit_chain_heads TO recovery_auditor;

GRANT EXECUTE ON FUNCTION case_state_is_valid(text), case_state_is_terminal(text),
                          case_states(), case_transitions(), case_transitions(bigint),
                          set_request_context(bigint, text)
    TO recovery_viewer, recovery_auditor;
GRANT EXECUTE ON FUNCTION case_transition(bigint, text, integer, jsonb),
                          case_record_payment(bigint, bigint, text, text, timestamptz, boolean),
                          payment_create(bigint, text, bigint, text, date),
                          payment_fail(bigint, text, text),
                          customer_create(text, text, text, text, text, text)
    TO recovery_agent, recovery_automation;
GRANT EXECUTE ON FUNCTION audit_verify() TO recovery_auditor;
GRANT EXECUTE ON FUNCTION user_create(text, text, text, text),
                          api_key_create(text, text),
                          password_hash(text)
    TO recovery_admin;
GRANT EXECUTE ON FUNCTION login(text, text), api_key_authenticate(text),
                          set_request_context(bigint, text)
    TO recovery_authenticator;
