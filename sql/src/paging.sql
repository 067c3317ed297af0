-- Keyset pages and search patterns shared by the list functions.

-- Pagination: keyset, with an opaque cursor (base64url of the last row's
-- sort key) and a hard maximum page size.
CREATE FUNCTION cursor_encode(mark jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT rtrim(translate(encode(convert_to(mark::text, 'UTF8'), 'base64'),
                           E'+/\n', '-_'), '=')
$$;
COMMENT ON FUNCTION cursor_encode(jsonb) IS 'The opaque cursor of a page position (base64url JSON).';
GRANT EXECUTE ON FUNCTION cursor_encode(jsonb) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION cursor_decode(cursor text) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    padded text;
    mark jsonb;
BEGIN
    IF cursor IS NULL THEN
        RETURN NULL;
    END IF;
    padded := translate(cursor, '-_', '+/');
    padded := padded || repeat('=', (4 - length(padded) % 4) % 4);
    mark := convert_from(decode(padded, 'base64'), 'UTF8')::jsonb;
    IF jsonb_typeof(mark) <> 'object' THEN
        RAISE EXCEPTION 'not an object';
    END IF;
    RETURN mark;
EXCEPTION WHEN OTHERS THEN
    RAISE EXCEPTION 'invalid cursor "%"', left(cursor, 40)
        USING ERRCODE = 'PR004',
              HINT = 'Pass back the next_cursor of the previous page unchanged, or no cursor for the first page.';
END
$$;
COMMENT ON FUNCTION cursor_decode(text) IS 'The page position of a cursor made by cursor_encode, or PR004.';
GRANT EXECUTE ON FUNCTION cursor_decode(text) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION page_size("limit" integer) RETURNS integer
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF "limit" IS NULL THEN
        RETURN 50;
    END IF;
    IF "limit" NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'limit % is out of range', "limit"
            USING ERRCODE = 'PR004',
                  DETAIL = 'A page holds between 1 and 200 items.',
                  HINT = 'Ask for fewer and follow next_cursor.';
    END IF;
    RETURN "limit";
END
$$;
COMMENT ON FUNCTION page_size(integer) IS 'The page size asked for, 50 by default, at most 200.';
GRANT EXECUTE ON FUNCTION page_size(integer) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION page_of(items jsonb, page_size integer, mark jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT jsonb_build_object(
        'items', items,
        'next_cursor', CASE WHEN jsonb_array_length(items) = page_size
                            THEN recovery.cursor_encode(mark) END)
$$;
COMMENT ON FUNCTION page_of(jsonb, integer, jsonb) IS
    'A page: its items, and the cursor of mark (the last item''s sort key) when the page is full.';
GRANT EXECUTE ON FUNCTION page_of(jsonb, integer, jsonb) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION like_pattern(term text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT '%' || replace(replace(replace(term, '\', '\\'), '%', '\%'), '_', '\_') || '%'
$$;
COMMENT ON FUNCTION like_pattern(text) IS 'An ILIKE pattern that finds term anywhere, with its wildcards escaped.';
GRANT EXECUTE ON FUNCTION like_pattern(text) TO recovery_viewer, recovery_auditor;
