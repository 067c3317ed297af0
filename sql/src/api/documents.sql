-- REST: documents.

CREATE FUNCTION api_document_upload(case_id bigint, filename text, content_type text,
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

CREATE FUNCTION api_documents_list(case_id bigint) RETURNS jsonb
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

CREATE FUNCTION api_document_get(document_id bigint) RETURNS jsonb
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

CREATE FUNCTION api_document_content(document_id bigint) RETURNS document_file
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
