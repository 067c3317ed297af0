-- Test fixtures, loaded by each pgTAP file inside its own transaction
-- (\ir lib/fixtures.sql); everything is rolled back at the end of the file.

-- A customer of our own for each case, so that the one-open-case rule
-- never couples two tests.
CREATE FUNCTION pg_temp.new_customer(tag text DEFAULT 'test') RETURNS bigint
LANGUAGE sql AS $$
    INSERT INTO recovery.customers (external_ref, name, email)
    VALUES ('T-' || tag || '-' || gen_random_uuid(), convert_to('Test ' || tag, 'UTF8'), 'test@example.com')
    RETURNING id
$$;

-- A case with one failed payment per amount, due in the order given.
CREATE FUNCTION pg_temp.new_case(amounts bigint[] DEFAULT ARRAY[10000]::bigint[],
                                 currency text DEFAULT 'EUR') RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    customer bigint := pg_temp.new_customer();
    case_id  bigint;
    i        integer;
    pay      recovery.payments;
BEGIN
    FOR i IN 1 .. array_length(amounts, 1) LOOP
        pay := recovery.payment_create(customer, 'INV-' || i, amounts[i], currency,
                                       current_date - 60 + i);
        case_id := (recovery.payment_fail(pay.id, 'insufficient funds')).id;
    END LOOP;
    RETURN case_id;
END
$$;

-- A case forced into a state (superuser, bypassing the state machine)
-- as the starting point of a state-machine test.
CREATE FUNCTION pg_temp.case_in_state(state text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    case_id bigint := pg_temp.new_case();
BEGIN
    UPDATE recovery.recovery_cases
    SET state = case_in_state.state, version = 1,
        closed_at = CASE WHEN recovery.case_state_is_terminal(case_in_state.state) THEN now() END
    WHERE id = case_id;
    RETURN case_id;
END
$$;

CREATE FUNCTION pg_temp.case_version(case_id bigint) RETURNS integer
LANGUAGE sql AS $$ SELECT version FROM recovery.recovery_cases WHERE id = case_id $$;
