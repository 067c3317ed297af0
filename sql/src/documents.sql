-- Documents attached to cases and customers.

-- Documents of a case, stored in PostgreSQL.  The content type is checked
-- against the bytes themselves, from an allowlist.
CREATE TABLE documents (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id      bigint NOT NULL REFERENCES recovery_cases,
    customer_id  bigint NOT NULL REFERENCES customers,
    filename     bytea NOT NULL CHECK (octet_length(filename) > 0),
    content_type text NOT NULL,
    size         bigint NOT NULL,
    sha256       bytea NOT NULL,
    content      bytea,
    uploaded_by  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    erased_at    timestamptz
);
-- (PostgreSQL 15 takes a column's storage only from ALTER TABLE)
ALTER TABLE documents ALTER COLUMN content SET STORAGE EXTERNAL;
CREATE INDEX documents_case ON documents (case_id, id);
COMMENT ON TABLE documents IS 'Files of a case (statements, letters, proofs of payment); content erased with the customer.';
COMMENT ON COLUMN documents.filename IS 'Sealed (pii_seal.c): read it decrypted in documents_decrypted; 1 to 255 characters.';
COMMENT ON COLUMN documents.content IS 'Sealed: recovery.pii_open_bytes(content, ''documents'', ''content'', id, customer_id) opens it (api_document_content).';
-- the content stays out of the audit trail: its digest is in sha256
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON documents
    FOR EACH ROW EXECUTE FUNCTION audit_trigger('content');
CREATE TRIGGER seal_personal BEFORE INSERT OR UPDATE ON documents
    FOR EACH ROW EXECUTE FUNCTION pii_seal('filename', 'bytes content');
GRANT SELECT (id, case_id, customer_id, filename, content_type, size, sha256, uploaded_by, created_at, erased_at) ON documents TO recovery_viewer, recovery_auditor;
SELECT pg_catalog.pg_extension_config_dump('documents', '');
SELECT pg_catalog.pg_extension_config_dump('documents_id_seq', '');

-- what the roles may read of a document, the file name decrypted; the
-- content only through api_document_content()
CREATE VIEW documents_decrypted AS
    SELECT d.id, d.case_id, d.customer_id,
           recovery.pii_open(d.filename, 'documents', 'filename', d.id, d.customer_id) AS filename,
           d.content_type, d.size, d.sha256, d.uploaded_by, d.created_at, d.erased_at
      FROM recovery.documents d;
COMMENT ON VIEW documents_decrypted IS 'recovery.documents without the content, the file name decrypted.';
GRANT SELECT ON documents_decrypted TO recovery_viewer, recovery_auditor;

CREATE TYPE document_file AS (content_type text, filename text, content bytea);

CREATE FUNCTION document_type_matches(content_type text, content bytea) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    CASE content_type
    WHEN 'application/pdf' THEN
        RETURN substring(content FROM 1 FOR 5) = '\x255044462d'::bytea;          -- %PDF-
    WHEN 'image/png' THEN
        RETURN substring(content FROM 1 FOR 8) = '\x89504e470d0a1a0a'::bytea;
    WHEN 'image/jpeg' THEN
        RETURN substring(content FROM 1 FOR 3) = '\xffd8ff'::bytea;
    WHEN 'text/plain', 'text/csv' THEN
        -- text: valid UTF-8 and no NUL byte
        IF position('\x00'::bytea IN content) > 0 THEN
            RETURN false;
        END IF;
        PERFORM convert_from(content, 'UTF8');
        RETURN true;
    ELSE
        RETURN false;
    END CASE;
EXCEPTION WHEN character_not_in_repertoire OR untranslatable_character THEN
    RETURN false;
END
$$;
COMMENT ON FUNCTION document_type_matches(text, bytea) IS
    'Whether the bytes are what the content type says (PDF, PNG, JPEG, or UTF-8 text or CSV).';
