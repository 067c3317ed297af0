-- Customers: the people and companies who owe.

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
    version             integer NOT NULL DEFAULT 1,
    erased_at           timestamptz,
    dunning_policy_id   bigint REFERENCES dunning_policies
);
COMMENT ON TABLE customers IS 'People and companies who owe money.';
COMMENT ON COLUMN customers.external_ref IS 'The customer number in the billing system.';
COMMENT ON COLUMN customers.phone IS 'E.164, for example +441632960961.';
COMMENT ON COLUMN customers.time_zone IS 'IANA time zone, for contact hours.';
COMMENT ON COLUMN customers.contact_preferences IS 'Channel consent, for example {"email": true, "sms": false}.';
COMMENT ON COLUMN customers.erased_at IS 'When the customer''s personal data was erased (customer_erase).';
COMMENT ON COLUMN customers.dunning_policy_id IS 'The dunning policy of this customer''s cases; NULL: the default policy.';
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON customers
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
GRANT SELECT ON customers TO recovery_viewer, recovery_auditor;
SELECT pg_catalog.pg_extension_config_dump('customers', '');
SELECT pg_catalog.pg_extension_config_dump('customers_id_seq', '');

-- Business functions (SQL): plain records without rules of their own
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
GRANT EXECUTE ON FUNCTION customer_create(text, text, text, text, text, text) TO recovery_agent, recovery_automation;

CREATE FUNCTION customer_update(customer_id bigint, expected_version integer,
                                name text DEFAULT NULL, email text DEFAULT NULL,
                                phone text DEFAULT NULL, locale text DEFAULT NULL,
                                time_zone text DEFAULT NULL,
                                contact_preferences jsonb DEFAULT NULL)
    RETURNS customers
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    current recovery.customers;
    updated recovery.customers;
    refused record;
BEGIN
    IF NOT recovery.caller_has_role('recovery_agent')
       AND NOT recovery.caller_has_role('recovery_automation') THEN
        RAISE EXCEPTION 'permission denied to update customers'
            USING ERRCODE = '42501', HINT = 'Ask an agent to do it.';
    END IF;
    IF expected_version IS NULL THEN
        RAISE EXCEPTION 'expected_version is required' USING ERRCODE = 'PR004',
            HINT = 'Send the version of the customer you read.';
    END IF;
    SELECT * INTO current FROM recovery.customers c WHERE c.id = customer_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'customer % does not exist', customer_id USING ERRCODE = 'PR003';
    END IF;
    IF current.version <> expected_version THEN
        RAISE EXCEPTION 'customer % was changed by someone else', customer_id
            USING ERRCODE = 'PR002',
                  DETAIL = format('You expected version %s; the customer is now at version %s.',
                                  expected_version, current.version),
                  HINT = 'Reload the customer and apply your change again.';
    END IF;
    -- a channel the delivery worker does not know would be consent to nothing
    IF jsonb_typeof(contact_preferences) = 'object' THEN
        SELECT k.key, k.value INTO refused FROM jsonb_each(contact_preferences) k
         WHERE k.key NOT IN ('email', 'sms', 'letter', 'webhook') OR jsonb_typeof(k.value) <> 'boolean'
         ORDER BY k.key LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'contact preference "%" is not a channel set to true or false', refused.key
                USING ERRCODE = 'PR004',
                      DETAIL = format('It is "%s": %s.', refused.key, refused.value),
                      HINT = 'The channels are email, sms, letter, webhook; each is true (the customer may be contacted on it) or false.';
        END IF;
    END IF;
    IF time_zone IS NOT NULL THEN
        BEGIN
            PERFORM now() AT TIME ZONE time_zone;
        EXCEPTION WHEN invalid_parameter_value THEN
            RAISE EXCEPTION 'unknown time zone "%"', time_zone USING ERRCODE = 'PR004',
                HINT = 'Use an IANA time zone name such as Europe/Berlin or America/New_York.';
        END;
    END IF;
    UPDATE recovery.customers c
       SET name = coalesce(customer_update.name, c.name),
           email = coalesce(customer_update.email, c.email),
           phone = coalesce(customer_update.phone, c.phone),
           locale = coalesce(customer_update.locale, c.locale),
           time_zone = coalesce(customer_update.time_zone, c.time_zone),
           contact_preferences = coalesce(customer_update.contact_preferences, c.contact_preferences),
           updated_at = now(),
           version = c.version + 1
     WHERE c.id = customer_id
    RETURNING * INTO updated;
    RETURN updated;
EXCEPTION
    WHEN check_violation OR not_null_violation THEN
        RAISE EXCEPTION 'invalid customer: %', SQLERRM USING ERRCODE = 'PR004',
            HINT = 'Email needs an @; phone is E.164 such as +441632960961; locale looks like en-US; contact_preferences is an object.';
END
$$;
COMMENT ON FUNCTION customer_update(bigint, integer, text, text, text, text, text, jsonb) IS
    'Changes the given fields of a customer if its version is still expected_version; NULL keeps a field.';
GRANT EXECUTE ON FUNCTION customer_update(bigint, integer, text, text, text, text, text, jsonb) TO recovery_agent, recovery_automation;

