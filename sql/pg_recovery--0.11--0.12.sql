-- pg_recovery 0.11 -> 0.12: personal data encrypted at rest.  Customers'
-- name, email and phone and the notes' bodies become sealed bytea (a data
-- key per customer, wrapped by the KEK recovery.key_command prints), read
-- through customers_decrypted and case_notes_decrypted; emails and phones
-- get blind indexes; erasure destroys the customer's key.  The rows are
-- kept as plain text by this script (no key is needed to upgrade) and read
-- as they are; CALL recovery.encrypt_existing() then seals them in batches
-- (scripts/cluster.sh does), resumable, with recovery.encryption_progress.
\echo Use "ALTER EXTENSION pg_recovery UPDATE TO '0.12'" to load this file. \quit

-- sql/src/pii.sql
-- Personal data encrypted at rest (pii_kek.c, pii_keys.c, pii_seal.c): a
-- data key per customer, wrapped by a key-encryption key (KEK) that
-- recovery.key_command prints and the database never stores.

CREATE TABLE customer_keys (
    customer_id   bigint PRIMARY KEY,
    version       integer NOT NULL DEFAULT 1 CHECK (version > 0),
    kek_id        text,
    wrapped       bytea CHECK (octet_length(wrapped) = 60),
    created_at    timestamptz NOT NULL DEFAULT now(),
    rewrapped_at  timestamptz,
    destroyed_at  timestamptz,
    CHECK ((wrapped IS NULL) = (destroyed_at IS NOT NULL)),
    CHECK ((wrapped IS NULL) = (kek_id IS NULL))
);
CREATE INDEX customer_keys_kek ON customer_keys (kek_id, customer_id) WHERE wrapped IS NOT NULL;
COMMENT ON TABLE customer_keys IS
    'Each customer''s data key (AES-256), wrapped by the KEK kek_id; made by the first personal value sealed for the customer, destroyed (wrapped NULL) by their erasure.';
COMMENT ON COLUMN customer_keys.wrapped IS 'Nonce, tag and the key, AES-256-GCM under the KEK; NULL once destroyed.';
SELECT pg_catalog.pg_extension_config_dump('customer_keys', '');

CREATE TABLE pii_keyring (
    purpose  text PRIMARY KEY CHECK (purpose IN ('blind-index')),
    kek_id   text NOT NULL,
    wrapped  bytea NOT NULL CHECK (octet_length(wrapped) = 60)
);
COMMENT ON TABLE pii_keyring IS
    'The keys that are no customer''s: the blind-index key (HMAC-SHA-256 of emails and phones, for equality lookups), wrapped by the KEK.';
SELECT pg_catalog.pg_extension_config_dump('pii_keyring', '');

-- Sealing and opening (pii_seal.c)
CREATE FUNCTION pii_seal() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'recovery_pii_seal';
COMMENT ON FUNCTION pii_seal() IS
    'BEFORE row trigger: seals the personal columns it names (bytea: "column" or "column:blind_index_column" for UTF-8 text, "bytes column" for a file) under the customer''s data key.';

CREATE FUNCTION pii_open(value bytea, table_name text, column_name text, row_id bigint,
                         customer_id bigint) RETURNS text
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED
    -- costly enough that a query decrypts after its sort and LIMIT, not before
    COST 100
    AS 'MODULE_PATHNAME', 'recovery_pii_open';
COMMENT ON FUNCTION pii_open(bytea, text, text, bigint, bigint) IS
    'The text of a personal value: decrypted if sealed (only in the table, column, row and customer it was written for), else as stored.';
GRANT EXECUTE ON FUNCTION pii_open(bytea, text, text, bigint, bigint) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION pii_open_bytes(value bytea, table_name text, column_name text, row_id bigint,
                               customer_id bigint) RETURNS bytea
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED COST 100
    AS 'MODULE_PATHNAME', 'recovery_pii_open_bytes';
COMMENT ON FUNCTION pii_open_bytes(bytea, text, text, bigint, bigint) IS
    'pii_open for a file''s bytes (documents.content): decrypted if sealed, else as stored.';
GRANT EXECUTE ON FUNCTION pii_open_bytes(bytea, text, text, bigint, bigint) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION pii_is_sealed(value bytea) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'recovery_pii_is_sealed';
COMMENT ON FUNCTION pii_is_sealed(bytea) IS 'Whether a stored personal value is sealed (else it is plain UTF-8 text).';
GRANT EXECUTE ON FUNCTION pii_is_sealed(bytea) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION pii_blind_index(kind text, value text) RETURNS bytea
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'recovery_pii_blind_index';
COMMENT ON FUNCTION pii_blind_index(text, text) IS
    'The blind index of an email or phone (kind): what customers.email_index and phone_index hold, for lookups by equality.';
GRANT EXECUTE ON FUNCTION pii_blind_index(text, text) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION pii_reseal(value bytea, table_name text, column_name text, row_id bigint,
                           customer_id bigint) RETURNS bytea
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'recovery_pii_reseal';
COMMENT ON FUNCTION pii_reseal(bytea, text, text, bigint, bigint) IS
    'A value sealed under the customer''s current key, plain or sealed before (superusers; encrypt_existing(), customer_rotate_key()).';

-- Keys (pii_keys.c)
CREATE FUNCTION pii_destroy_key(customer_id bigint) RETURNS void
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'recovery_pii_destroy_key';
COMMENT ON FUNCTION pii_destroy_key(bigint) IS
    'Destroys a customer''s data key (customer_erase): every value sealed for them, in old row versions, WAL, standbys and backups, can no longer be decrypted.';

CREATE FUNCTION pii_current_kek() RETURNS text
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'recovery_pii_current_kek';
COMMENT ON FUNCTION pii_current_kek() IS 'The id of the KEK that new and re-wrapped keys are wrapped with: the first line of recovery.key_command.';

CREATE FUNCTION rewrap_keys(batch integer) RETURNS bigint
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'recovery_rewrap_keys';
COMMENT ON FUNCTION rewrap_keys(integer) IS
    'Re-wraps up to batch keys under the current KEK; returns how many (recovery.rotate_kek() calls it).';

-- KEK rotation: a transaction a batch, so it goes on where it stopped
-- (no SET clause: a procedure that has one cannot COMMIT)
CREATE PROCEDURE rotate_kek(batch integer DEFAULT 1000)
    LANGUAGE plpgsql
    AS $$
DECLARE
    done bigint;
    total bigint := 0;
BEGIN
    RAISE NOTICE 'rotate_kek: re-wrapping every key under "%"', recovery.pii_current_kek();
    LOOP
        done := recovery.rewrap_keys(batch);
        EXIT WHEN done = 0;
        total := total + done;
        COMMIT;
        RAISE NOTICE 'rotate_kek: % keys re-wrapped, % to go', total,
            (SELECT count(*) FROM recovery.customer_keys k
              WHERE k.wrapped IS NOT NULL AND k.kek_id <> recovery.pii_current_kek());
    END LOOP;
    RAISE NOTICE 'rotate_kek: done, % keys re-wrapped; the old KEK may now be removed from recovery.key_command', total;
END
$$;
COMMENT ON PROCEDURE rotate_kek(integer) IS
    'Re-wraps every data key under the first KEK recovery.key_command prints (superusers), batch keys a transaction; resumable; progress in recovery.key_rotation_progress.';

CREATE VIEW key_rotation_progress AS
    SELECT k.kek_id, k.kek_id = recovery.pii_current_kek() AS current, count(*) AS keys
      FROM (SELECT kek_id FROM recovery.customer_keys WHERE wrapped IS NOT NULL
            UNION ALL SELECT kek_id FROM recovery.pii_keyring) k
     GROUP BY k.kek_id;
COMMENT ON VIEW key_rotation_progress IS
    'How many keys each KEK wraps; a rotation is done when only the current one is left.';

-- customers: the personal columns sealed, their checks moved before the seal
ALTER TABLE customers DROP CONSTRAINT customers_name_check,
                      DROP CONSTRAINT customers_email_check,
                      DROP CONSTRAINT customers_phone_check;
ALTER TABLE customers ALTER COLUMN name TYPE bytea USING convert_to(name, 'UTF8'),
                      ALTER COLUMN email TYPE bytea USING convert_to(email, 'UTF8'),
                      ALTER COLUMN phone TYPE bytea USING convert_to(phone, 'UTF8'),
                      ADD COLUMN email_index bytea,
                      ADD COLUMN phone_index bytea;
CREATE INDEX customers_email_index ON customers (email_index);
CREATE INDEX customers_phone_index ON customers (phone_index);
COMMENT ON COLUMN customers.name IS 'Sealed (pii_seal.c): read it decrypted in customers_decrypted.';
COMMENT ON COLUMN customers.email IS 'Sealed; customers_decrypted has it in clear, email_index finds it.';
COMMENT ON COLUMN customers.phone IS 'Sealed; E.164 in clear, for example +441632960961; phone_index finds it.';
COMMENT ON COLUMN customers.email_index IS 'Blind index of the email: recovery.pii_blind_index(''email'', email).';
COMMENT ON COLUMN customers.phone_index IS 'Blind index of the phone: recovery.pii_blind_index(''phone'', phone).';

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

-- erased customers have no key to seal with: theirs is destroyed already
INSERT INTO customer_keys (customer_id, version, destroyed_at)
    SELECT c.id, 1, c.erased_at FROM customers c WHERE c.erased_at IS NOT NULL;

-- they return the customer as it reads
DROP FUNCTION customer_create(text, text, text, text, text, text);
DROP FUNCTION customer_update(bigint, integer, text, text, text, text, text, jsonb);
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

-- case notes
ALTER TABLE case_notes DROP CONSTRAINT case_notes_body_check,
                       ALTER COLUMN body TYPE bytea USING convert_to(body, 'UTF8'),
                       ADD CONSTRAINT case_notes_body_check CHECK (octet_length(body) > 0);
COMMENT ON COLUMN case_notes.body IS 'Sealed (pii_seal.c): read it decrypted in case_notes_decrypted; 1 to 10000 characters (case_note_add).';
CREATE TRIGGER seal_personal BEFORE INSERT OR UPDATE ON case_notes
    FOR EACH ROW EXECUTE FUNCTION pii_seal('body');

CREATE VIEW case_notes_decrypted AS
    SELECT n.id, n.case_id, n.customer_id,
           recovery.pii_open(n.body, 'case_notes', 'body', n.id, n.customer_id) AS body,
           n.author, n.author_user_id, n.created_at
      FROM recovery.case_notes n;
COMMENT ON VIEW case_notes_decrypted IS 'recovery.case_notes with the body decrypted.';
GRANT SELECT ON case_notes_decrypted TO recovery_viewer, recovery_auditor;

DROP FUNCTION case_note_add(bigint, text);
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

-- documents: the file name and the content sealed
ALTER TABLE documents DROP CONSTRAINT documents_filename_check,
                      ALTER COLUMN filename TYPE bytea USING convert_to(filename, 'UTF8'),
                      ADD CONSTRAINT documents_filename_check CHECK (octet_length(filename) > 0);
COMMENT ON COLUMN documents.filename IS 'Sealed (pii_seal.c): read it decrypted in documents_decrypted; 1 to 255 characters.';
COMMENT ON COLUMN documents.content IS 'Sealed: recovery.pii_open_bytes(content, ''documents'', ''content'', id, customer_id) opens it (api_document_content).';
CREATE TRIGGER seal_personal BEFORE INSERT OR UPDATE ON documents
    FOR EACH ROW EXECUTE FUNCTION pii_seal('filename', 'bytes content');

-- what the roles may read of a document, the file name decrypted; the
-- content only through api_document_content()
CREATE VIEW documents_decrypted AS
    SELECT d.id, d.case_id, d.customer_id,
           recovery.pii_open(d.filename, 'documents', 'filename', d.id, d.customer_id) AS filename,
           d.content_type, d.size, d.sha256, d.uploaded_by, d.created_at, d.erased_at
      FROM recovery.documents d;
COMMENT ON VIEW documents_decrypted IS 'recovery.documents without the content, the file name decrypted.';
GRANT SELECT ON documents_decrypted TO recovery_viewer, recovery_auditor;


CREATE OR REPLACE FUNCTION api_document_upload(case_id bigint, filename text, content_type text,
                                    content bytea) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    target recovery.recovery_cases;
    kind text := lower(btrim(split_part(coalesce(content_type, ''), ';', 1)));
    stored recovery.documents_decrypted;
BEGIN
    IF NOT recovery.caller_has_role('recovery_agent')
       AND NOT recovery.caller_has_role('recovery_automation') THEN
        RAISE EXCEPTION 'permission denied to upload documents' USING ERRCODE = '42501',
            HINT = 'Ask an agent to do it.';
    END IF;
    SELECT * INTO target FROM recovery.recovery_cases c WHERE c.id = api_document_upload.case_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'recovery case % does not exist', case_id USING ERRCODE = 'PR003';
    END IF;
    IF kind NOT IN ('application/pdf', 'image/png', 'image/jpeg', 'text/plain', 'text/csv') THEN
        RAISE EXCEPTION 'documents of type "%" are not accepted', kind USING ERRCODE = 'PR004',
            HINT = 'Upload PDF, PNG, JPEG, plain text or CSV, with its Content-Type.';
    END IF;
    IF content IS NULL OR length(content) = 0 OR length(content) > 10 * 1024 * 1024 THEN
        RAISE EXCEPTION 'a document has 1 byte to 10 MiB' USING ERRCODE = 'PR004';
    END IF;
    IF NOT recovery.document_type_matches(kind, content) THEN
        RAISE EXCEPTION 'the content is not %', kind USING ERRCODE = 'PR004',
            DETAIL = 'The first bytes of the document do not match its Content-Type.',
            HINT = 'Send the file with the Content-Type of what it is.';
    END IF;
    IF filename IS NULL OR length(btrim(filename)) = 0 THEN
        filename := 'document';
    END IF;
    filename := left(filename, 255);
    INSERT INTO recovery.documents AS d (case_id, customer_id, filename, content_type, size, sha256,
                                         content, uploaded_by)
    VALUES (target.id, target.customer_id, convert_to(filename, 'UTF8'), kind, length(content),
            sha256(content), content,
            coalesce(nullif(current_setting('recovery.actor'), ''), session_user))
    RETURNING d.id, d.case_id, d.customer_id, api_document_upload.filename, d.content_type, d.size,
              d.sha256, d.uploaded_by, d.created_at, d.erased_at INTO stored;
    RETURN to_jsonb(stored) || jsonb_build_object('sha256', encode(stored.sha256, 'hex'));
END
$$;
COMMENT ON FUNCTION api_document_upload(bigint, text, text, bytea) IS
    'POST /api/v1/recovery-cases/{id}/documents: the raw body, with its Content-Type, stored with its SHA-256.';
GRANT EXECUTE ON FUNCTION api_document_upload(bigint, text, text, bytea) TO recovery_agent, recovery_automation;

CREATE OR REPLACE FUNCTION api_documents_list(case_id bigint) RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT jsonb_build_object('items', coalesce(jsonb_agg(jsonb_build_object(
               'id', d.id, 'filename', d.filename, 'content_type', d.content_type, 'size', d.size,
               'sha256', encode(d.sha256, 'hex'), 'uploaded_by', d.uploaded_by,
               'created_at', d.created_at, 'erased_at', d.erased_at) ORDER BY d.id), '[]'))
    FROM recovery.documents_decrypted AS d WHERE d.case_id = api_documents_list.case_id
$$;
COMMENT ON FUNCTION api_documents_list(bigint) IS 'GET /api/v1/recovery-cases/{id}/documents.';
GRANT EXECUTE ON FUNCTION api_documents_list(bigint) TO recovery_viewer, recovery_auditor;

CREATE OR REPLACE FUNCTION api_document_get(document_id bigint) RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    result jsonb;
BEGIN
    SELECT jsonb_build_object('id', d.id, 'case_id', d.case_id, 'filename', d.filename,
                              'content_type', d.content_type, 'size', d.size,
                              'sha256', encode(d.sha256, 'hex'), 'uploaded_by', d.uploaded_by,
                              'created_at', d.created_at, 'erased_at', d.erased_at)
      INTO result FROM recovery.documents_decrypted AS d WHERE d.id = document_id;
    IF result IS NULL THEN
        RAISE EXCEPTION 'document % does not exist', document_id USING ERRCODE = 'PR003';
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION api_document_get(bigint) IS 'GET /api/v1/documents/{id}: metadata.';
GRANT EXECUTE ON FUNCTION api_document_get(bigint) TO recovery_viewer, recovery_auditor;

CREATE OR REPLACE FUNCTION api_document_content(document_id bigint) RETURNS document_file
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    file recovery.document_file;
BEGIN
    IF NOT recovery.caller_has_role('recovery_viewer') THEN
        RAISE EXCEPTION 'permission denied to read documents' USING ERRCODE = '42501';
    END IF;
    SELECT d.content_type, recovery.pii_open(d.filename, 'documents', 'filename', d.id, d.customer_id),
           recovery.pii_open_bytes(d.content, 'documents', 'content', d.id, d.customer_id) INTO file
      FROM recovery.documents AS d WHERE d.id = document_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'document % does not exist', document_id USING ERRCODE = 'PR003';
    END IF;
    IF file.content IS NULL THEN
        RAISE EXCEPTION 'document % was erased', document_id USING ERRCODE = 'PR003',
            HINT = 'Its customer''s personal data was erased.';
    END IF;
    RETURN file;
END
$$;
COMMENT ON FUNCTION api_document_content(bigint) IS
    'GET /api/v1/documents/{id}/content: the file (the gateway sends it as an attachment).';
GRANT EXECUTE ON FUNCTION api_document_content(bigint) TO recovery_viewer, recovery_auditor;

CREATE OR REPLACE FUNCTION perform_extraction_tasks() RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    task recovery.tasks;
    doc record;
    outcome jsonb;
    done integer := 0;
BEGIN
    IF recovery.restore_held() THEN
        RETURN 0;
    END IF;
    FOR task IN SELECT * FROM recovery.tasks t
                 WHERE t.kind = 'extraction' AND t.state = 'scheduled' AND t.run_at <= now()
                 ORDER BY t.run_at, t.id LIMIT 100 FOR UPDATE SKIP LOCKED LOOP
        BEGIN
            IF task.payload ->> 'source' = 'document' THEN
                SELECT d.id, d.case_id, d.content_type,
                       recovery.pii_open_bytes(d.content, 'documents', 'content', d.id, d.customer_id) AS content
                  INTO doc FROM recovery.documents d WHERE d.id = (task.payload ->> 'document_id')::bigint;
                outcome := recovery.extract_payments(CASE WHEN doc.content_type IN ('message/rfc822') THEN 'email'
                                                WHEN doc.content_type LIKE 'text/plain%' THEN 'text'
                                                ELSE 'statement' END,
                                           doc.content, task.payload ->> 'mapping',
                                           coalesce((task.payload ->> 'case_id')::bigint, doc.case_id), doc.id);
            ELSE
                outcome := recovery.extract_payments(task.payload ->> 'source', convert_to(task.payload ->> 'content', 'UTF8'),
                                           task.payload ->> 'mapping', (task.payload ->> 'case_id')::bigint);
            END IF;
            UPDATE recovery.tasks t
               SET state = 'done', attempts = t.attempts + 1, completed_at = now(), updated_at = now(),
                   result = outcome - 'parsed'
             WHERE t.id = task.id;
        EXCEPTION WHEN OTHERS THEN
            UPDATE recovery.tasks t
               SET state = 'dead', attempts = t.attempts + 1, last_error = SQLERRM, updated_at = now()
             WHERE t.id = task.id;
        END;
        done := done + 1;
    END LOOP;
    RETURN done;
END
$$;
COMMENT ON FUNCTION perform_extraction_tasks() IS
    'Performs due tasks of kind extraction (POST /api/v1/automation/extractions); pg_cron runs it every minute.';
GRANT EXECUTE ON FUNCTION perform_extraction_tasks() TO recovery_automation, recovery_admin;

-- sql/src/pii_migration.sql
-- Rows written before personal data was encrypted (0.11 and earlier) are
-- kept as plain text by the upgrade and read as they are; this seals them.

-- a customer whose key is destroyed takes no sealed value again
CREATE FUNCTION pii_key_destroyed(customer_id bigint) RETURNS boolean
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT EXISTS (SELECT 1 FROM recovery.customer_keys k
                    WHERE k.customer_id = pii_key_destroyed.customer_id AND k.wrapped IS NULL)
$$;

-- which audited fields the tables seal
CREATE FUNCTION sealed_columns(table_name text) RETURNS text[]
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE table_name WHEN 'customers' THEN ARRAY['name', 'email', 'phone']
                           WHEN 'case_notes' THEN ARRAY['body']
                           WHEN 'documents' THEN ARRAY['filename'] END
$$;

-- whether an audited row holds a personal field in plain text
CREATE FUNCTION audit_row_plain(audited json, table_name text) RETURNS boolean
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT coalesce(json_typeof(audited) = 'object' AND EXISTS (
               SELECT 1 FROM json_each(audited) f
                WHERE f.key = ANY (recovery.sealed_columns(table_name))
                  AND json_typeof(f.value) = 'string' AND left(f.value #>> '{}', 6) <> '\xff01'), false)
$$;

-- an audited row with its personal fields sealed as the table seals them,
-- under the customer's current key (plain ones, and sealed ones again)
CREATE FUNCTION audit_row_sealed(audited json, table_name text, row_key text, customer_id bigint)
    RETURNS json
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp SET bytea_output = hex
    AS $$
    SELECT CASE WHEN audited IS NULL OR json_typeof(audited) <> 'object' THEN audited
           ELSE (SELECT json_object_agg(f.key,
                            CASE WHEN f.key = ANY (recovery.sealed_columns(table_name))
                                      AND json_typeof(f.value) = 'string'
                                 THEN to_json(recovery.pii_reseal(
                                          CASE WHEN left(f.value #>> '{}', 6) = '\xff01'
                                               THEN decode(substr(f.value #>> '{}', 3), 'hex')
                                               ELSE convert_to(f.value #>> '{}', 'UTF8') END,
                                          table_name, f.key, row_key::bigint, customer_id)::text)
                                 ELSE f.value END)
                   FROM json_each(audited) f)
           END
$$;

-- (no SET clause: a procedure that has one cannot COMMIT)
CREATE PROCEDURE encrypt_existing(batch integer DEFAULT 1000)
    LANGUAGE plpgsql
    AS $$
DECLARE
    customers bigint;
    notes bigint;
    documents bigint;
    audit_rows bigint;
    total bigint := 0;
    last_chain integer := -1;
    last_seq bigint := -1;
    span_chain integer;
    span_seq bigint;
BEGIN
    LOOP
        -- Only the storage changes: no audit row, no live event, no trigger.
        PERFORM set_config('session_replication_role', 'replica', true);
        WITH todo AS (
            SELECT c.id FROM recovery.customers c
             WHERE c.erased_at IS NULL AND NOT recovery.pii_key_destroyed(c.id)
               AND (NOT recovery.pii_is_sealed(c.name)
                    OR coalesce(NOT recovery.pii_is_sealed(c.email), false)
                    OR coalesce(NOT recovery.pii_is_sealed(c.phone), false))
             ORDER BY c.id LIMIT batch FOR UPDATE SKIP LOCKED)
        UPDATE recovery.customers c
           SET name = recovery.pii_reseal(c.name, 'customers', 'name', c.id, c.id),
               email = recovery.pii_reseal(c.email, 'customers', 'email', c.id, c.id),
               phone = recovery.pii_reseal(c.phone, 'customers', 'phone', c.id, c.id),
               email_index = recovery.pii_blind_index('email', recovery.pii_open(c.email, 'customers', 'email', c.id, c.id)),
               phone_index = recovery.pii_blind_index('phone', recovery.pii_open(c.phone, 'customers', 'phone', c.id, c.id))
          FROM todo WHERE c.id = todo.id;
        GET DIAGNOSTICS customers = ROW_COUNT;
        WITH todo AS (
            SELECT n.id FROM recovery.case_notes n
              JOIN recovery.customers c ON c.id = n.customer_id AND c.erased_at IS NULL
             WHERE NOT recovery.pii_key_destroyed(c.id) AND NOT recovery.pii_is_sealed(n.body)
             ORDER BY n.id LIMIT batch FOR UPDATE OF n SKIP LOCKED)
        UPDATE recovery.case_notes n
           SET body = recovery.pii_reseal(n.body, 'case_notes', 'body', n.id, n.customer_id)
          FROM todo WHERE n.id = todo.id;
        GET DIAGNOSTICS notes = ROW_COUNT;
        -- files are large: a tenth of the batch (at least one) a transaction
        WITH todo AS (
            SELECT d.id FROM recovery.documents d
              JOIN recovery.customers c ON c.id = d.customer_id AND c.erased_at IS NULL
             WHERE NOT recovery.pii_key_destroyed(c.id)
               AND (NOT recovery.pii_is_sealed(d.filename)
                    OR coalesce(NOT recovery.pii_is_sealed(d.content), false))
             ORDER BY d.id LIMIT greatest(batch / 10, 1) FOR UPDATE OF d SKIP LOCKED)
        UPDATE recovery.documents d
           SET filename = recovery.pii_reseal(d.filename, 'documents', 'filename', d.id, d.customer_id),
               content = recovery.pii_reseal(d.content, 'documents', 'content', d.id, d.customer_id)
          FROM todo WHERE d.id = todo.id;
        GET DIAGNOSTICS documents = ROW_COUNT;
        PERFORM set_config('session_replication_role', 'origin', true);
        EXIT WHEN customers + notes + documents = 0;
        total := total + customers + notes + documents;
        COMMIT;
        RAISE NOTICE 'encrypt_existing: % rows sealed', total;
    END LOOP;
    -- then the audit trail, along its primary key; a row keeps the digests
    -- of what it held, so that the chain still verifies (audit_verify())
    LOOP
        SELECT a.chain, a.seq INTO span_chain, span_seq FROM recovery.audit_log a
         WHERE (a.chain, a.seq) > (last_chain, last_seq)
         ORDER BY a.chain, a.seq OFFSET batch - 1 LIMIT 1;
        PERFORM set_config('session_replication_role', 'replica', true);
        UPDATE recovery.audit_log a
           SET old_digest = sha256(convert_to(a.old_row::text, 'UTF8')),
               new_digest = sha256(convert_to(a.new_row::text, 'UTF8')),
               old_row = recovery.audit_row_sealed(a.old_row, a.table_name, a.row_key, a.customer_id),
               new_row = recovery.audit_row_sealed(a.new_row, a.table_name, a.row_key, a.customer_id)
         WHERE (a.chain, a.seq) > (last_chain, last_seq)
           AND (span_chain IS NULL OR (a.chain, a.seq) <= (span_chain, span_seq))
           AND a.table_name IN ('customers', 'case_notes', 'documents') AND a.erased_at IS NULL
           AND a.old_digest IS NULL AND a.new_digest IS NULL
           AND NOT recovery.pii_key_destroyed(a.customer_id)
           AND (recovery.audit_row_plain(a.old_row, a.table_name)
                OR recovery.audit_row_plain(a.new_row, a.table_name));
        GET DIAGNOSTICS audit_rows = ROW_COUNT;
        PERFORM set_config('session_replication_role', 'origin', true);
        total := total + audit_rows;
        COMMIT;
        EXIT WHEN span_chain IS NULL;
        last_chain := span_chain;
        last_seq := span_seq;
        IF audit_rows > 0 THEN
            RAISE NOTICE 'encrypt_existing: % rows sealed; the audit trail is read up to chain %, seq %',
                total, last_chain, last_seq;
        END IF;
    END LOOP;
    RAISE NOTICE 'encrypt_existing: done, % rows sealed', total;
END
$$;
COMMENT ON PROCEDURE encrypt_existing(integer) IS
    'Seals the personal data written before encryption (superusers), batch rows of each table a transaction; resumable; progress in recovery.encryption_progress.';

CREATE VIEW encryption_progress AS
    SELECT 'customers' AS table_name,
           count(*) FILTER (WHERE recovery.pii_is_sealed(c.name)) AS sealed_rows,
           count(*) FILTER (WHERE NOT recovery.pii_is_sealed(c.name) AND c.erased_at IS NULL) AS plain_rows,
           count(*) FILTER (WHERE c.erased_at IS NOT NULL) AS erased_rows
      FROM recovery.customers c
    UNION ALL
    SELECT 'case_notes',
           count(*) FILTER (WHERE recovery.pii_is_sealed(n.body)),
           count(*) FILTER (WHERE NOT recovery.pii_is_sealed(n.body) AND c.erased_at IS NULL),
           count(*) FILTER (WHERE c.erased_at IS NOT NULL)
      FROM recovery.case_notes n JOIN recovery.customers c ON c.id = n.customer_id
    UNION ALL
    SELECT 'documents',
           count(*) FILTER (WHERE recovery.pii_is_sealed(d.filename)),
           count(*) FILTER (WHERE NOT recovery.pii_is_sealed(d.filename) AND c.erased_at IS NULL),
           count(*) FILTER (WHERE c.erased_at IS NOT NULL)
      FROM recovery.documents d JOIN recovery.customers c ON c.id = d.customer_id
    UNION ALL
    SELECT 'audit_log',
           count(*) FILTER (WHERE a.erased_at IS NULL
                              AND NOT recovery.audit_row_plain(a.old_row, a.table_name)
                              AND NOT recovery.audit_row_plain(a.new_row, a.table_name)),
           count(*) FILTER (WHERE a.erased_at IS NULL
                              AND (recovery.audit_row_plain(a.old_row, a.table_name)
                                   OR recovery.audit_row_plain(a.new_row, a.table_name))),
           count(*) FILTER (WHERE a.erased_at IS NOT NULL)
      FROM recovery.audit_log a WHERE a.table_name IN ('customers', 'case_notes', 'documents');
COMMENT ON VIEW encryption_progress IS
    'Rows of each table with personal data, and of the audit trail''s rows of them: sealed, still plain (recovery.encrypt_existing() seals them), and erased (their placeholders stay plain).';

-- sql/src/pii_rotation.sql
-- One customer's data key rotated: a new key, and every value sealed for
-- them (their rows and the audit trail's) sealed again under it, in one
-- transaction (pii_reseal, audit_row_sealed).

CREATE FUNCTION rotate_data_key(customer_id bigint) RETURNS integer
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'recovery_rotate_data_key';
COMMENT ON FUNCTION rotate_data_key(bigint) IS
    'A new data key for the customer; the old one opens values until the transaction ends (customer_rotate_key() seals them again).';

CREATE FUNCTION customer_rotate_key(customer_id bigint) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    version integer;
    customers bigint;
    notes bigint;
    documents bigint;
    audit_rows bigint;
BEGIN
    IF NOT recovery.caller_has_role('recovery_admin') THEN
        RAISE EXCEPTION 'permission denied to rotate a customer''s key' USING ERRCODE = '42501',
            HINT = 'Key rotation is for administrators.';
    END IF;
    PERFORM 1 FROM recovery.customers c WHERE c.id = customer_rotate_key.customer_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'customer % does not exist', customer_id USING ERRCODE = 'PR003';
    END IF;
    version := recovery.rotate_data_key(customer_id);

    -- only the storage changes: no audit row, no live event, no trigger
    PERFORM set_config('session_replication_role', 'replica', true);
    UPDATE recovery.customers c
       SET name = recovery.pii_reseal(c.name, 'customers', 'name', c.id, c.id),
           email = recovery.pii_reseal(c.email, 'customers', 'email', c.id, c.id),
           phone = recovery.pii_reseal(c.phone, 'customers', 'phone', c.id, c.id)
     WHERE c.id = customer_rotate_key.customer_id;
    GET DIAGNOSTICS customers = ROW_COUNT;
    UPDATE recovery.case_notes n
       SET body = recovery.pii_reseal(n.body, 'case_notes', 'body', n.id, n.customer_id)
     WHERE n.customer_id = customer_rotate_key.customer_id;
    GET DIAGNOSTICS notes = ROW_COUNT;
    UPDATE recovery.documents d
       SET filename = recovery.pii_reseal(d.filename, 'documents', 'filename', d.id, d.customer_id),
           content = recovery.pii_reseal(d.content, 'documents', 'content', d.id, d.customer_id)
     WHERE d.customer_id = customer_rotate_key.customer_id;
    GET DIAGNOSTICS documents = ROW_COUNT;
    -- the trail's copies too, keeping the digests of what each row held
    UPDATE recovery.audit_log a
       SET old_digest = coalesce(a.old_digest, sha256(convert_to(a.old_row::text, 'UTF8'))),
           new_digest = coalesce(a.new_digest, sha256(convert_to(a.new_row::text, 'UTF8'))),
           old_row = recovery.audit_row_sealed(a.old_row, a.table_name, a.row_key, a.customer_id),
           new_row = recovery.audit_row_sealed(a.new_row, a.table_name, a.row_key, a.customer_id)
     WHERE a.customer_id = customer_rotate_key.customer_id AND a.erased_at IS NULL
       AND (strpos(coalesce(a.old_row::text, ''), '"\\xff01') > 0
            OR strpos(coalesce(a.new_row::text, ''), '"\\xff01') > 0);
    GET DIAGNOSTICS audit_rows = ROW_COUNT;
    PERFORM set_config('session_replication_role', 'origin', true);

    RETURN jsonb_build_object('customer_id', customer_id, 'key_version', version,
                              'customers', customers, 'notes', notes, 'documents', documents,
                              'audit_rows', audit_rows);
END
$$;
COMMENT ON FUNCTION customer_rotate_key(bigint) IS
    'A new data key for the customer (admins): their name, email, phone, notes, documents and the audit trail''s copies sealed again under it, in one transaction; the old key is gone at commit.';
GRANT EXECUTE ON FUNCTION customer_rotate_key(bigint) TO recovery_admin;

-- readers: through the decrypting views
DROP FUNCTION api_customers_list(text, text, integer);
CREATE FUNCTION api_customers_list(q text DEFAULT NULL, cursor text DEFAULT NULL,
                                   "limit" integer DEFAULT NULL, email text DEFAULT NULL,
                                   phone text DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    page_size integer := recovery.page_size("limit");
    after bigint := (recovery.cursor_decode(cursor) ->> 'id')::bigint;
    pattern text := recovery.like_pattern(nullif(btrim(q), ''));
    -- an email or phone is found by its blind index, without decrypting
    by_email bytea := recovery.pii_blind_index('email', nullif(btrim(email), ''));
    by_phone bytea := recovery.pii_blind_index('phone', nullif(btrim(phone), ''));
    items jsonb;
BEGIN
    SELECT coalesce(jsonb_agg(to_jsonb(c) ORDER BY c.id), '[]')
      INTO items
      FROM (SELECT cu.id, cu.external_ref, cu.name, cu.email, cu.phone, cu.locale,
                   cu.time_zone, cu.created_at, cu.updated_at, cu.version
              FROM recovery.customers_decrypted AS cu
             WHERE (after IS NULL OR cu.id > after)
               AND (by_email IS NULL OR cu.id IN (SELECT x.id FROM recovery.customers x
                                                   WHERE x.email_index = by_email))
               AND (by_phone IS NULL OR cu.id IN (SELECT x.id FROM recovery.customers x
                                                   WHERE x.phone_index = by_phone))
               -- a part of a name or email: each customer is decrypted to compare
               AND (pattern IS NULL OR cu.external_ref ILIKE pattern OR cu.name ILIKE pattern
                    OR cu.email ILIKE pattern)
             ORDER BY cu.id
             LIMIT page_size) AS c;
    RETURN recovery.page_of(items, page_size,
                            jsonb_build_object('id', items -> -1 -> 'id'));
END
$$;
COMMENT ON FUNCTION api_customers_list(text, text, integer, text, text) IS
    'A page of customers by id, optionally those whose name, email or reference contains q, and those with exactly this email or phone (GET /api/v1/customers).';
GRANT EXECUTE ON FUNCTION api_customers_list(text, text, integer, text, text) TO recovery_viewer, recovery_auditor;

CREATE OR REPLACE FUNCTION api_customer_get(customer_id bigint) RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    result jsonb;
BEGIN
    SELECT to_jsonb(cu) || jsonb_build_object(
               'cases', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                      'id', c.id, 'state', c.state, 'currency', c.currency,
                                      'balance', c.balance, 'opened_at', c.opened_at) ORDER BY c.id)
                                  FROM recovery.recovery_cases AS c WHERE c.customer_id = cu.id), '[]'))
      INTO result
      FROM recovery.customers_decrypted AS cu
     WHERE cu.id = api_customer_get.customer_id;
    IF result IS NULL THEN
        RAISE EXCEPTION 'customer % does not exist', customer_id
            USING ERRCODE = 'PR003', HINT = 'Search with GET /api/v1/customers?q=...';
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION api_customer_get(bigint) IS 'A customer with their cases (GET /api/v1/customers/{id}).';
GRANT EXECUTE ON FUNCTION api_customer_get(bigint) TO recovery_viewer, recovery_auditor;

CREATE OR REPLACE FUNCTION api_cases_list(state text DEFAULT NULL, assigned_user_id bigint DEFAULT NULL,
                               customer_id bigint DEFAULT NULL,
                               min_overdue_days integer DEFAULT NULL,
                               min_balance bigint DEFAULT NULL, max_balance bigint DEFAULT NULL,
                               sort text DEFAULT NULL, cursor text DEFAULT NULL,
                               "limit" integer DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    page_size integer := recovery.page_size("limit");
    mark jsonb := recovery.cursor_decode(cursor);
    order_by text := coalesce(sort, 'id');
    column_name text;
    descending boolean;
    items jsonb;
BEGIN
    IF order_by NOT IN ('id', '-id', 'balance', '-balance', 'opened_at', '-opened_at',
                        'updated_at', '-updated_at') THEN
        RAISE EXCEPTION 'cannot sort by "%"', order_by USING ERRCODE = 'PR004',
            HINT = 'Sort by id, balance, opened_at or updated_at; a leading "-" sorts descending.';
    END IF;
    IF state IS NOT NULL AND NOT recovery.case_state_is_valid(state) THEN
        RAISE EXCEPTION 'unknown case state "%"', state USING ERRCODE = 'PR004',
            HINT = 'recovery.case_states() lists the states.';
    END IF;
    IF mark IS NOT NULL AND mark ->> 'sort' IS DISTINCT FROM order_by THEN
        RAISE EXCEPTION 'the cursor belongs to another sort order' USING ERRCODE = 'PR004',
            HINT = 'Keep the sort of the page the cursor came from, or start again without a cursor.';
    END IF;
    descending := left(order_by, 1) = '-';
    column_name := ltrim(order_by, '-');

    -- the column name comes from the list above; every value is a parameter
    EXECUTE format($q$
        SELECT coalesce(jsonb_agg(to_jsonb(page) ORDER BY page.%1$I %2$s, page.id %2$s), '[]')
        FROM (SELECT c.id, c.customer_id, cu.name AS customer_name, c.currency, c.balance,
                     c.state, c.assigned_user_id, c.priority, c.next_action_at, c.opened_at,
                     c.updated_at, c.version, recovery.case_overdue_days(c.id) AS overdue_days
                FROM recovery.recovery_cases AS c
                JOIN recovery.customers_decrypted AS cu ON cu.id = c.customer_id
               WHERE ($1 IS NULL OR c.state = $1)
                 AND ($2 IS NULL OR c.assigned_user_id = $2)
                 AND ($3 IS NULL OR c.customer_id = $3)
                 AND ($4 IS NULL OR recovery.case_overdue_days(c.id) >= $4)
                 AND ($5 IS NULL OR c.balance >= $5)
                 AND ($6 IS NULL OR c.balance <= $6)
                 AND ($7 IS NULL OR (c.%1$I, c.id) %3$s (($7 ->> 'value')::%4$s, ($7 ->> 'id')::bigint))
               ORDER BY c.%1$I %2$s, c.id %2$s
               LIMIT $8) AS page
        $q$, column_name, CASE WHEN descending THEN 'DESC' ELSE 'ASC' END,
             CASE WHEN descending THEN '<' ELSE '>' END,
             CASE column_name WHEN 'id' THEN 'bigint' WHEN 'balance' THEN 'bigint'
                              ELSE 'timestamptz' END)
      INTO items
      USING state, assigned_user_id, customer_id, min_overdue_days, min_balance, max_balance,
            mark, page_size;

    RETURN recovery.page_of(items, page_size,
                            jsonb_build_object('sort', order_by,
                                               'value', items -> -1 -> column_name,
                                               'id', items -> -1 -> 'id'));
END
$$;
COMMENT ON FUNCTION api_cases_list(text, bigint, bigint, integer, bigint, bigint, text, text, integer) IS
    'A page of recovery cases with filters, in a stable order (GET /api/v1/recovery-cases).';
GRANT EXECUTE ON FUNCTION api_cases_list(text, bigint, bigint, integer, bigint, bigint, text, text, integer) TO recovery_viewer, recovery_auditor;

CREATE OR REPLACE FUNCTION api_case_get(case_id bigint) RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    result jsonb;
BEGIN
    SELECT to_jsonb(c)
           || jsonb_build_object(
                'overdue_days', recovery.case_overdue_days(c.id),
                'customer', jsonb_build_object('id', cu.id, 'name', cu.name,
                                               'external_ref', cu.external_ref),
                'payments', coalesce((
                    SELECT jsonb_agg(jsonb_build_object(
                               'id', p.id, 'external_ref', p.external_ref, 'amount', p.amount,
                               'outstanding', p.outstanding, 'due_date', p.due_date,
                               'status', p.status) ORDER BY p.due_date, p.id)
                    FROM recovery.payments AS p WHERE p.case_id = c.id), '[]'),
                'transitions', coalesce((
                    SELECT jsonb_agg(jsonb_build_object(
                               'event', t.event, 'to_state', t.to_state,
                               'required_details', to_jsonb(t.required_details))
                               ORDER BY t.event)
                    FROM recovery.case_transitions(c.id) AS t), '[]'),
                'timeline', recovery.api_case_timeline(c.id))
      INTO result
      FROM recovery.recovery_cases AS c
      JOIN recovery.customers_decrypted AS cu ON cu.id = c.customer_id
     WHERE c.id = api_case_get.case_id;

    IF result IS NULL THEN
        RAISE EXCEPTION 'recovery case % does not exist', case_id
            USING ERRCODE = 'PR003',
                  HINT = 'List the cases with GET /api/v1/recovery-cases.';
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION api_case_get(bigint) IS
    'A recovery case with its customer, payments, the events the caller may fire now, and its timeline (GET /api/v1/recovery-cases/{id}).';
GRANT EXECUTE ON FUNCTION api_case_get(bigint) TO recovery_viewer, recovery_auditor;

CREATE OR REPLACE FUNCTION api_case_timeline(case_id bigint) RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT coalesce(jsonb_agg(t.entry ORDER BY t.at, t.kind, t.id), '[]')
    FROM (
        SELECT 'event' AS kind, e.id, e.occurred_at AS at,
               jsonb_build_object('kind', 'event', 'id', e.id, 'at', e.occurred_at, 'event', e.event,
                                  'from_state', e.from_state, 'to_state', e.to_state,
                                  'actor', e.actor, 'reason', e.reason, 'details', e.details) AS entry
          FROM recovery.case_events AS e WHERE e.case_id = api_case_timeline.case_id
        UNION ALL
        SELECT 'promise', p.id, p.created_at,
               jsonb_build_object('kind', 'promise', 'id', p.id, 'at', p.created_at,
                                  'promise_kind', p.kind, 'instalment_no', p.instalment_no,
                                  'amount', p.amount, 'currency', p.currency,
                                  'due_date', p.due_date, 'paid_amount', p.paid_amount,
                                  'outcome', p.outcome)
          FROM recovery.promises AS p WHERE p.case_id = api_case_timeline.case_id
        UNION ALL
        SELECT 'receipt', r.id, r.received_at,
               jsonb_build_object('kind', 'receipt', 'id', r.id, 'at', r.received_at,
                                  'amount', r.amount, 'currency', r.currency,
                                  'allocated', r.allocated, 'unallocated', r.unallocated,
                                  'reference', r.reference)
          FROM recovery.receipts AS r WHERE r.case_id = api_case_timeline.case_id
        UNION ALL
        SELECT 'notification', x.id, x.created_at,
               jsonb_build_object('kind', 'notification', 'id', x.id, 'at', x.created_at,
                                  'channel', x.channel, 'status', x.status, 'sent_at', x.sent_at,
                                  'step_no', x.step_no, 'attempts', x.attempts, 'last_error', x.last_error,
                                  'cancel_reason', x.cancel_reason)
          FROM recovery.notifications AS x WHERE x.case_id = api_case_timeline.case_id
        UNION ALL
        SELECT 'document', d.id, d.created_at,
               jsonb_build_object('kind', 'document', 'id', d.id, 'at', d.created_at,
                                  'filename', d.filename, 'content_type', d.content_type,
                                  'size', d.size, 'uploaded_by', d.uploaded_by)
          FROM recovery.documents_decrypted AS d WHERE d.case_id = api_case_timeline.case_id
        UNION ALL
        SELECT 'hold', h.id, h.created_at,
               jsonb_build_object('kind', 'hold', 'id', h.id, 'at', h.created_at, 'reason', h.reason,
                                  'ends_at', h.ends_at, 'released_at', h.released_at,
                                  'created_by', h.created_by, 'whole_customer', h.case_id IS NULL)
          FROM recovery.dunning_holds AS h
         WHERE h.case_id = api_case_timeline.case_id
            OR (h.case_id IS NULL AND h.customer_id = (SELECT c.customer_id FROM recovery.recovery_cases c
                                                       WHERE c.id = api_case_timeline.case_id))
        UNION ALL
        SELECT 'note', n.id, n.created_at,
               jsonb_build_object('kind', 'note', 'id', n.id, 'at', n.created_at, 'body', n.body,
                                  'author', n.author)
          FROM recovery.case_notes_decrypted AS n WHERE n.case_id = api_case_timeline.case_id
    ) AS t
$$;
COMMENT ON FUNCTION api_case_timeline(bigint) IS
    'What happened to a case, oldest first: events, promises, money received, notifications (with why they failed or were cancelled), holds, documents, notes.';
GRANT EXECUTE ON FUNCTION api_case_timeline(bigint) TO recovery_viewer, recovery_auditor;

CREATE OR REPLACE FUNCTION delivery_check(notification_id bigint, at timestamptz DEFAULT now()) RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    m recovery.notifications;
    c recovery.recovery_cases;
    cu recovery.customers_decrypted;
    hold_reason text;
    opens timestamptz;
    cap integer := recovery.setting_int('recovery.contact_cap', 3);
    oldest_in_window timestamptz;
BEGIN
    SELECT * INTO m FROM recovery.notifications n WHERE n.id = notification_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'notification % does not exist', notification_id USING ERRCODE = 'PR003';
    END IF;
    SELECT * INTO c FROM recovery.recovery_cases x WHERE x.id = m.case_id;
    SELECT * INTO cu FROM recovery.customers_decrypted x WHERE x.id = c.customer_id;
    IF cu.erased_at IS NOT NULL THEN
        RETURN jsonb_build_object('decision', 'cancel', 'reason', 'the customer was erased');
    ELSIF recovery.case_state_is_terminal(c.state) OR c.state = 'disputed' THEN
        RETURN jsonb_build_object('decision', 'cancel', 'reason', 'the case is ' || c.state);
    END IF;
    IF m.step_no IS NOT NULL THEN
        -- automatic reminders only
        IF c.state = 'escalated' THEN
            RETURN jsonb_build_object('decision', 'cancel', 'reason', 'the case is escalated');
        END IF;
        IF EXISTS (SELECT 1 FROM recovery.promises p WHERE p.case_id = c.id AND p.outcome = 'pending') THEN
            RETURN jsonb_build_object('decision', 'cancel', 'reason', 'a promise to pay is pending');
        END IF;
        SELECT h.reason INTO hold_reason FROM recovery.dunning_holds h
         WHERE h.customer_id = cu.id AND (h.case_id IS NULL OR h.case_id = c.id)
           AND h.released_at IS NULL AND at >= h.starts_at AND at < h.ends_at
         ORDER BY h.ends_at DESC LIMIT 1;
        IF FOUND THEN
            RETURN jsonb_build_object('decision', 'cancel', 'reason', 'dunning is on hold: ' || hold_reason);
        END IF;
    END IF;
    IF (cu.contact_preferences -> m.channel) = 'false'::jsonb THEN
        RETURN jsonb_build_object('decision', 'cancel', 'reason', 'the customer opted out of ' || m.channel);
    ELSIF m.channel = 'email' AND cu.email IS NULL THEN
        RETURN jsonb_build_object('decision', 'cancel', 'reason', 'the customer has no email address');
    ELSIF m.channel = 'sms' AND cu.phone IS NULL THEN
        RETURN jsonb_build_object('decision', 'cancel', 'reason', 'the customer has no phone number');
    END IF;
    opens := recovery.contact_window_opens(cu.time_zone, at);
    IF opens > at THEN
        RETURN jsonb_build_object('decision', 'defer', 'until', opens, 'reason', 'quiet hours in ' || cu.time_zone);
    END IF;
    SELECT min(s.sent_at) INTO oldest_in_window
      FROM (SELECT n.sent_at FROM recovery.notifications n
             WHERE n.customer_id = cu.id AND n.status = 'sent' AND n.sent_at > at - interval '7 days'
             ORDER BY n.sent_at DESC LIMIT cap) s
    HAVING count(*) >= cap;
    IF oldest_in_window IS NOT NULL THEN
        RETURN jsonb_build_object('decision', 'defer', 'until', oldest_in_window + interval '7 days',
                                  'reason', format('%s messages in 7 days already', cap));
    END IF;
    RETURN jsonb_build_object('decision', 'send');
END
$$;
COMMENT ON FUNCTION delivery_check(bigint, timestamptz) IS
    'The contact rules for one queued message: {"decision": "send"}, "defer" with "until" (quiet hours, the 7-day cap) or "cancel" with "reason".';
GRANT EXECUTE ON FUNCTION delivery_check(bigint, timestamptz) TO recovery_viewer, recovery_auditor;

CREATE OR REPLACE FUNCTION delivery_next(channels text[])
    RETURNS TABLE (id bigint, channel text, recipient text, recipient_name text, subject text,
                   body text, html_body text, message_id text, webhook_payload text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    allowed text[];
    m recovery.notifications;
    decision jsonb;
    rendered record;
    cu recovery.customers_decrypted;
    address text;
BEGIN
    -- a restored copy sends nothing its original may have sent already
    IF recovery.restore_held() THEN
        RETURN;
    END IF;
    -- an open circuit whose cool-down is over lets one probe through
    UPDATE recovery.delivery_circuits dc SET state = 'half_open', updated_at = now()
     WHERE dc.channel = ANY (channels) AND dc.state = 'open' AND dc.retry_at <= now();
    SELECT array_agg(dc.channel) INTO allowed FROM recovery.delivery_circuits dc
     WHERE dc.channel = ANY (channels)
       AND (dc.state = 'closed'
            OR (dc.state = 'half_open' AND NOT EXISTS (
                    SELECT 1 FROM recovery.notifications n WHERE n.channel = dc.channel AND n.status = 'sending')));
    IF allowed IS NULL THEN
        RETURN;
    END IF;
    LOOP
        SELECT * INTO m FROM recovery.notifications n
         WHERE n.status IN ('queued', 'failed') AND n.send_after <= now() AND n.channel = ANY (allowed)
         ORDER BY n.send_after, n.id LIMIT 1 FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        decision := recovery.delivery_check(m.id, now());
        IF decision ->> 'decision' = 'cancel' THEN
            UPDATE recovery.notifications n SET status = 'cancelled', cancel_reason = decision ->> 'reason'
             WHERE n.id = m.id;
            CONTINUE;
        ELSIF decision ->> 'decision' = 'defer' THEN
            UPDATE recovery.notifications n SET send_after = (decision ->> 'until')::timestamptz,
                   last_error = 'deferred: ' || (decision ->> 'reason')
             WHERE n.id = m.id;
            CONTINUE;
        END IF;
        BEGIN
            SELECT * INTO rendered FROM recovery.render_template(m.template_id, m.case_id);
        EXCEPTION WHEN OTHERS THEN
            -- a message that cannot be rendered never will be: a dead letter
            UPDATE recovery.notifications n SET status = 'dead', last_error = 'cannot render: ' || SQLERRM
             WHERE n.id = m.id;
            CONTINUE;
        END;
        SELECT x.* INTO cu FROM recovery.customers_decrypted x WHERE x.id = (
            SELECT c.customer_id FROM recovery.recovery_cases c WHERE c.id = m.case_id);
        address := CASE m.channel WHEN 'email' THEN cu.email WHEN 'sms' THEN cu.phone END;
        UPDATE recovery.notifications n
           SET status = 'sending', attempts = n.attempts + 1, sending_started_at = now(),
               message_id = coalesce(n.message_id, format('<notification-%s@%s>', n.id,
                   coalesce(nullif(current_setting('recovery.message_id_domain', true), ''), 'recovery.invalid')))
         WHERE n.id = m.id
        RETURNING * INTO m;
        RETURN QUERY SELECT m.id, m.channel, address, cu.name, rendered.subject, rendered.body,
                            rendered.html_body, m.message_id,
                            jsonb_build_object('id', m.message_id, 'notification_id', m.id,
                                               'channel', m.channel, 'to', address, 'name', cu.name,
                                               'customer_ref', cu.external_ref, 'locale', cu.locale,
                                               'case_id', m.case_id,
                                               'case_reference', recovery.case_reference(m.case_id),
                                               'subject', rendered.subject, 'body', rendered.body)::text;
        RETURN;
    END LOOP;
END
$$;
COMMENT ON FUNCTION delivery_next(text[]) IS
    'The delivery worker''s claim: the next ready message of the channels whose circuit allows it, checked, rendered and marked sending; cancels or defers what the contact rules stop on the way.';

CREATE OR REPLACE FUNCTION customer_erase(customer_id bigint) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    target recovery.customers;
    notes bigint;
    events bigint;
    documents bigint;
    audit_rows bigint;
BEGIN
    IF NOT recovery.caller_has_role('recovery_admin') THEN
        RAISE EXCEPTION 'permission denied to erase customers' USING ERRCODE = '42501',
            HINT = 'Erasure is for administrators.';
    END IF;
    SELECT * INTO target FROM recovery.customers c WHERE c.id = customer_erase.customer_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'customer % does not exist', customer_id USING ERRCODE = 'PR003';
    END IF;

    -- First the key: from here on every value sealed for the customer, in
    -- old row versions, the WAL, standbys and backups, is unreadable, and
    -- the rows below take only the erasure's own words.
    PERFORM recovery.pii_destroy_key(customer_id);

    -- the business rows, audited as any change
    UPDATE recovery.customers c
       SET name = convert_to('erased customer ' || c.id, 'UTF8'), email = NULL, phone = NULL,
           contact_preferences = '{"email": false, "sms": false, "letter": false}',
           erased_at = coalesce(c.erased_at, now()), updated_at = now(), version = c.version + 1
     WHERE c.id = customer_erase.customer_id;
    UPDATE recovery.case_notes n SET body = convert_to('[erased]', 'UTF8')
     WHERE n.customer_id = customer_erase.customer_id AND n.body <> convert_to('[erased]', 'UTF8');
    GET DIAGNOSTICS notes = ROW_COUNT;
    UPDATE recovery.case_events e
       SET reason = CASE WHEN e.reason IS NOT NULL THEN '[erased]' END,
           details = recovery.erase_personal(e.details)
     WHERE e.customer_id = customer_erase.customer_id
       AND (e.reason IS DISTINCT FROM CASE WHEN e.reason IS NOT NULL THEN '[erased]' END
            OR e.details IS DISTINCT FROM recovery.erase_personal(e.details));
    GET DIAGNOSTICS events = ROW_COUNT;
    UPDATE recovery.documents d
       SET content = NULL, filename = convert_to('erased', 'UTF8'), erased_at = now()
     WHERE d.customer_id = customer_erase.customer_id AND d.erased_at IS NULL;
    GET DIAGNOSTICS documents = ROW_COUNT;

    -- then the trail, including the rows the updates above just wrote
    PERFORM set_config('session_replication_role', 'replica', true);
    UPDATE recovery.audit_log a
       -- a row sealed by encrypt_existing() has the digests of what it was
       SET old_digest = coalesce(a.old_digest, sha256(convert_to(a.old_row::text, 'UTF8'))),
           new_digest = coalesce(a.new_digest, sha256(convert_to(a.new_row::text, 'UTF8'))),
           old_row = recovery.erase_personal(a.old_row::jsonb)::json,
           new_row = recovery.erase_personal(a.new_row::jsonb)::json,
           erased_at = now()
     WHERE a.customer_id = customer_erase.customer_id AND a.erased_at IS NULL;
    GET DIAGNOSTICS audit_rows = ROW_COUNT;
    PERFORM set_config('session_replication_role', 'origin', true);

    -- outside the cluster, so that no restore brings the customer back
    PERFORM recovery.erasure_ledger_record(customer_id);

    RETURN jsonb_build_object('customer_id', customer_id, 'erased_at', now(),
                              'notes_erased', notes, 'events_erased', events,
                              'documents_erased', documents,
                              'audit_rows_erased', audit_rows);
END
$$;
COMMENT ON FUNCTION customer_erase(bigint) IS
    'GDPR erasure of a customer (admins): their data key destroyed, personal data removed from customers, notes, event reasons and the audit trail; amounts and history kept; the audit chains still verify.';
GRANT EXECUTE ON FUNCTION customer_erase(bigint) TO recovery_admin;

CREATE FUNCTION audit_row_opened(audited json, table_name text, row_key text, customer_id bigint)
    RETURNS json
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE WHEN audited IS NULL OR json_typeof(audited) <> 'object'
                     OR strpos(audited::text, '"\\xff01') = 0 THEN audited
           ELSE (SELECT json_object_agg(f.key,
                            CASE WHEN json_typeof(f.value) = 'string' AND left(f.value #>> '{}', 6) = '\xff01'
                                 THEN to_json(recovery.pii_open(decode(substr(f.value #>> '{}', 3), 'hex'),
                                                                table_name, f.key, row_key::bigint, customer_id))
                                 ELSE f.value END)
                   FROM json_each(audited) f)
           END
$$;
COMMENT ON FUNCTION audit_row_opened(json, text, text, bigint) IS
    'An audit row''s old_row or new_row with its sealed personal fields decrypted (GET /api/v1/audit).';
GRANT EXECUTE ON FUNCTION audit_row_opened(json, text, text, bigint) TO recovery_auditor;

CREATE OR REPLACE FUNCTION api_audit_query(table_name text DEFAULT NULL, row_key text DEFAULT NULL,
                                actor text DEFAULT NULL, request_id text DEFAULT NULL,
                                customer_id bigint DEFAULT NULL,
                                "from" timestamptz DEFAULT NULL, "to" timestamptz DEFAULT NULL,
                                cursor text DEFAULT NULL, "limit" integer DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    page_size integer := recovery.page_size("limit");
    before bigint := (recovery.cursor_decode(cursor) ->> 'id')::bigint;
    items jsonb;
BEGIN
    -- newest first; audit_log has no query indexes yet (see README)
    SELECT coalesce(jsonb_agg(to_jsonb(a) ORDER BY a.id DESC), '[]') INTO items
      FROM (SELECT l.id, l.occurred_at, l.action, l.table_name, l.row_key, l.customer_id,
                   l.actor, l.actor_user_id, l.db_role, l.request_id,
                   recovery.audit_row_opened(l.old_row, l.table_name, l.row_key, l.customer_id) AS old_row,
                   recovery.audit_row_opened(l.new_row, l.table_name, l.row_key, l.customer_id) AS new_row,
                   l.erased_at
              FROM recovery.audit_log AS l
             WHERE (api_audit_query.table_name IS NULL OR l.table_name = api_audit_query.table_name)
               AND (api_audit_query.row_key IS NULL OR l.row_key = api_audit_query.row_key)
               AND (api_audit_query.actor IS NULL OR l.actor = api_audit_query.actor)
               AND (api_audit_query.request_id IS NULL OR l.request_id = api_audit_query.request_id)
               AND (api_audit_query.customer_id IS NULL OR l.customer_id = api_audit_query.customer_id)
               AND ("from" IS NULL OR l.occurred_at >= "from")
               AND ("to" IS NULL OR l.occurred_at < "to")
               AND (before IS NULL OR l.id < before)
             ORDER BY l.id DESC
             LIMIT page_size) AS a;
    RETURN recovery.page_of(items, page_size,
                            jsonb_build_object('id', items -> -1 -> 'id'));
END
$$;
COMMENT ON FUNCTION api_audit_query(text, text, text, text, bigint, timestamptz, timestamptz, text, integer) IS
    'GET /api/v1/audit (auditors and admins): audit rows, newest first, by table, row, actor, request, customer and time.';
GRANT EXECUTE ON FUNCTION api_audit_query(text, text, text, text, bigint, timestamptz, timestamptz, text, integer) TO recovery_auditor;

-- nothing new is PUBLIC's
REVOKE ALL ON customer_keys, pii_keyring, customers_decrypted, case_notes_decrypted, documents_decrypted,
              key_rotation_progress, encryption_progress FROM PUBLIC;
REVOKE ALL ON FUNCTION pii_seal(), pii_open(bytea, text, text, bigint, bigint), pii_is_sealed(bytea),
              pii_blind_index(text, text),
              pii_open_bytes(bytea, text, text, bigint, bigint),
              pii_destroy_key(bigint), pii_current_kek(), rewrap_keys(integer), pii_key_destroyed(bigint),
              sealed_columns(text), audit_row_plain(json, text), audit_row_sealed(json, text, text, bigint),
              customers_check(), customer_create(text, text, text, text, text, text),
              customer_update(bigint, integer, text, text, text, text, text, jsonb),
              case_note_add(bigint, text), api_customers_list(text, text, integer, text, text),
              audit_row_opened(json, text, text, bigint), rotate_data_key(bigint),
              pii_reseal(bytea, text, text, bigint, bigint),
              customer_rotate_key(bigint) FROM PUBLIC;
REVOKE ALL ON PROCEDURE rotate_kek(integer), encrypt_existing(integer) FROM PUBLIC;
