-- Customers: the people and companies who owe.

CREATE TABLE customers (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_ref        text NOT NULL UNIQUE CHECK (length(external_ref) BETWEEN 1 AND 200),
    name                bytea NOT NULL,
    email               bytea,
    phone               bytea,
    locale              text NOT NULL DEFAULT 'en-US' CHECK (locale ~ '^[a-z]{2,3}(-[A-Z]{2})?$'),
    time_zone           text NOT NULL DEFAULT 'UTC',
    contact_preferences jsonb NOT NULL DEFAULT '{"email": true, "sms": true, "letter": true}'
                        CHECK (jsonb_typeof(contact_preferences) = 'object'),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    version             integer NOT NULL DEFAULT 1,
    erased_at           timestamptz,
    dunning_policy_id   bigint REFERENCES dunning_policies,
    email_index         bytea,
    phone_index         bytea
);
CREATE INDEX customers_email_index ON customers (email_index);
CREATE INDEX customers_phone_index ON customers (phone_index);
COMMENT ON TABLE customers IS 'People and companies who owe money.';
COMMENT ON COLUMN customers.external_ref IS 'The customer number in the billing system.';
COMMENT ON COLUMN customers.name IS 'Sealed (pii_seal.c): read it decrypted in customers_decrypted.';
COMMENT ON COLUMN customers.email IS 'Sealed; customers_decrypted has it in clear, email_index finds it.';
COMMENT ON COLUMN customers.phone IS 'Sealed; E.164 in clear, for example +441632960961; phone_index finds it.';
COMMENT ON COLUMN customers.email_index IS 'Blind index of the email: recovery.pii_blind_index(''email'', email).';
COMMENT ON COLUMN customers.phone_index IS 'Blind index of the phone: recovery.pii_blind_index(''phone'', phone).';
COMMENT ON COLUMN customers.time_zone IS 'IANA time zone, for contact hours.';
COMMENT ON COLUMN customers.contact_preferences IS 'Channel consent, for example {"email": true, "sms": false}.';
COMMENT ON COLUMN customers.erased_at IS 'When the customer''s personal data was erased (customer_erase).';
COMMENT ON COLUMN customers.dunning_policy_id IS 'The dunning policy of this customer''s cases; NULL: the default policy.';
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON customers
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
GRANT SELECT ON customers TO recovery_viewer, recovery_auditor;
SELECT pg_catalog.pg_extension_config_dump('customers', '');
SELECT pg_catalog.pg_extension_config_dump('customers_id_seq', '');

-- What the CHECK constraints checked before the columns were sealed: a
-- constraint sees the sealed value, so the plain one is checked first.
CREATE FUNCTION customers_check() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    plain text;
BEGIN
    IF NOT recovery.pii_is_sealed(NEW.name) THEN
        plain := convert_from(NEW.name, 'UTF8');
        IF length(plain) NOT BETWEEN 1 AND 500 THEN
            RAISE EXCEPTION 'new row for relation "customers" violates check constraint "customers_name_check"'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'customers_name_check', TABLE = 'customers',
                      DETAIL = 'A name has 1 to 500 characters.';
        END IF;
    END IF;
    IF NEW.email IS NOT NULL AND NOT recovery.pii_is_sealed(NEW.email)
       AND convert_from(NEW.email, 'UTF8') !~ '^[^@\s]+@[^@\s]+$' THEN
        RAISE EXCEPTION 'new row for relation "customers" violates check constraint "customers_email_check"'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'customers_email_check', TABLE = 'customers',
                  DETAIL = 'An email has an @ and no spaces.';
    END IF;
    IF NEW.phone IS NOT NULL AND NOT recovery.pii_is_sealed(NEW.phone)
       AND convert_from(NEW.phone, 'UTF8') !~ '^\+[0-9]{6,15}$' THEN
        RAISE EXCEPTION 'new row for relation "customers" violates check constraint "customers_phone_check"'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'customers_phone_check', TABLE = 'customers',
                  DETAIL = 'A phone is E.164: + and 6 to 15 digits.';
    END IF;
    RETURN NEW;
END
$$;
-- triggers fire by name: the check, then the seal
CREATE TRIGGER check_personal BEFORE INSERT OR UPDATE ON customers
    FOR EACH ROW EXECUTE FUNCTION customers_check();
CREATE TRIGGER seal_personal BEFORE INSERT OR UPDATE ON customers
    FOR EACH ROW EXECUTE FUNCTION pii_seal('name', 'email:email_index', 'phone:phone_index');

-- The customers as they read: what the API returns and DBAs query.
CREATE VIEW customers_decrypted AS
    SELECT c.id, c.external_ref,
           recovery.pii_open(c.name, 'customers', 'name', c.id, c.id) AS name,
           recovery.pii_open(c.email, 'customers', 'email', c.id, c.id) AS email,
           recovery.pii_open(c.phone, 'customers', 'phone', c.id, c.id) AS phone,
           c.locale, c.time_zone, c.contact_preferences, c.created_at, c.updated_at,
           c.version, c.erased_at, c.dunning_policy_id
      FROM recovery.customers c;
COMMENT ON VIEW customers_decrypted IS 'recovery.customers with name, email and phone decrypted.';
GRANT SELECT ON customers_decrypted TO recovery_viewer, recovery_auditor;

-- Business functions (SQL): plain records without rules of their own
CREATE FUNCTION customer_create(external_ref text, name text, email text DEFAULT NULL,
                                phone text DEFAULT NULL, locale text DEFAULT 'en-US',
                                time_zone text DEFAULT 'UTC')
    RETURNS customers_decrypted
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    created recovery.customers_decrypted;
BEGIN
    BEGIN
        PERFORM now() AT TIME ZONE time_zone;
    EXCEPTION WHEN invalid_parameter_value THEN
        RAISE EXCEPTION 'unknown time zone "%"', time_zone USING ERRCODE = 'PR004',
            HINT = 'Use an IANA time zone name such as Europe/Berlin or America/New_York.';
    END;
    INSERT INTO recovery.customers AS c (external_ref, name, email, phone, locale, time_zone)
    VALUES (external_ref, convert_to(name, 'UTF8'), convert_to(email, 'UTF8'),
            convert_to(phone, 'UTF8'), coalesce(locale, 'en-US'), time_zone)
    RETURNING c.id, c.external_ref, customer_create.name, customer_create.email,
              customer_create.phone, c.locale, c.time_zone, c.contact_preferences,
              c.created_at, c.updated_at, c.version, c.erased_at, c.dunning_policy_id
         INTO created;
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
    RETURNS customers_decrypted
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    current recovery.customers;
    updated recovery.customers_decrypted;
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
       SET name = coalesce(convert_to(customer_update.name, 'UTF8'), c.name),
           email = coalesce(convert_to(customer_update.email, 'UTF8'), c.email),
           phone = coalesce(convert_to(customer_update.phone, 'UTF8'), c.phone),
           locale = coalesce(customer_update.locale, c.locale),
           time_zone = coalesce(customer_update.time_zone, c.time_zone),
           contact_preferences = coalesce(customer_update.contact_preferences, c.contact_preferences),
           updated_at = now(),
           version = c.version + 1
     WHERE c.id = customer_id;
    SELECT * INTO updated FROM recovery.customers_decrypted d WHERE d.id = customer_id;
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

