-- REST: recovery cases.

CREATE FUNCTION api_case_states() RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT jsonb_build_object('items', jsonb_agg(to_jsonb(s))) FROM recovery.case_states() s $$;
COMMENT ON FUNCTION api_case_states() IS
    'GET /api/v1/case-states: the states of a case, whether each closes it, and what it means.';
GRANT EXECUTE ON FUNCTION api_case_states() TO recovery_viewer, recovery_auditor;

CREATE FUNCTION api_cases_list(state text DEFAULT NULL, assigned_user_id bigint DEFAULT NULL,
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

-- Recovery cases
CREATE FUNCTION api_case_get(case_id bigint) RETURNS jsonb
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

-- Opening a case by hand: an agent puts a customer's overdue payments into
-- recovery, which opens the case in their currency or adds to the open one.
CREATE FUNCTION api_case_open(customer_id bigint, payment_ids jsonb, reason text DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    ids bigint[];
    currencies text[];
    opened recovery.recovery_cases;
    existed boolean;
BEGIN
    IF jsonb_typeof(payment_ids) IS DISTINCT FROM 'array' OR jsonb_array_length(payment_ids) = 0 THEN
        RAISE EXCEPTION 'payment_ids must be a non-empty array of payment ids' USING ERRCODE = 'PR004',
            HINT = 'A case holds the payments it recovers: name the overdue ones.';
    END IF;
    BEGIN
        ids := ARRAY(SELECT (value #>> '{}')::bigint FROM jsonb_array_elements(payment_ids));
    EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
        RAISE EXCEPTION 'payment_ids must be payment ids' USING ERRCODE = 'PR004';
    END;
    IF EXISTS (SELECT 1 FROM unnest(ids) AS i(id)
                WHERE NOT EXISTS (SELECT 1 FROM recovery.payments p
                                   WHERE p.id = i.id AND p.customer_id = api_case_open.customer_id)) THEN
        RAISE EXCEPTION 'every payment must be one of customer %''s', customer_id USING ERRCODE = 'PR003';
    END IF;
    SELECT array_agg(DISTINCT p.currency) INTO currencies FROM recovery.payments p WHERE p.id = ANY (ids);
    IF array_length(currencies, 1) > 1 THEN
        RAISE EXCEPTION 'the payments are in % currencies', array_length(currencies, 1)
            USING ERRCODE = 'PR005', HINT = 'A case is in one currency: open one per currency.';
    END IF;
    existed := EXISTS (SELECT 1 FROM recovery.recovery_cases c
                        WHERE c.customer_id = api_case_open.customer_id AND c.currency = currencies[1]
                          AND NOT recovery.case_state_is_terminal(c.state));
    FOR i IN 1 .. array_length(ids, 1) LOOP
        opened := recovery.payment_fail(ids[i], coalesce(reason, 'opened by hand'), 'overdue');
    END LOOP;
    RETURN recovery.api_case_get(opened.id) || jsonb_build_object('opened', NOT existed);
END
$$;
COMMENT ON FUNCTION api_case_open(bigint, jsonb, text) IS
    'POST /api/v1/recovery-cases: puts a customer''s payments into recovery by hand (as overdue); opens their case in that currency, or adds to the open one ("opened": false).';
GRANT EXECUTE ON FUNCTION api_case_open(bigint, jsonb, text) TO recovery_agent, recovery_automation;

CREATE FUNCTION api_case_transition(case_id bigint, event text, expected_version integer,
                                    details jsonb DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM recovery.case_transition(case_id, event, expected_version,
                                     coalesce(details, '{}'));
    RETURN recovery.api_case_get(case_id);
END
$$;
COMMENT ON FUNCTION api_case_transition(bigint, text, integer, jsonb) IS
    'Fires an event on a case (POST /api/v1/recovery-cases/{id}/transitions); returns the case as api_case_get does.';
GRANT EXECUTE ON FUNCTION api_case_transition(bigint, text, integer, jsonb) TO recovery_agent, recovery_automation;

CREATE FUNCTION api_case_record_payment(case_id bigint, amount bigint, currency text,
                                        reference text DEFAULT NULL,
                                        allow_overpayment boolean DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    receipt jsonb;
BEGIN
    SELECT to_jsonb(r) INTO receipt
      FROM recovery.case_record_payment(case_id, amount, currency, reference, NULL,
                                        coalesce(allow_overpayment, false)) AS r;
    RETURN jsonb_build_object('receipt', receipt,
                              'case', recovery.api_case_get(case_id));
END
$$;
COMMENT ON FUNCTION api_case_record_payment(bigint, bigint, text, text, boolean) IS
    'Records money received against a case (POST /api/v1/recovery-cases/{id}/payments); returns the receipt and the case.';
GRANT EXECUTE ON FUNCTION api_case_record_payment(bigint, bigint, text, text, boolean) TO recovery_agent, recovery_automation;

CREATE FUNCTION api_case_note_add(case_id bigint, body text) RETURNS jsonb
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT to_jsonb(n) FROM recovery.case_note_add(case_id, body) AS n
$$;
COMMENT ON FUNCTION api_case_note_add(bigint, text) IS 'POST /api/v1/recovery-cases/{id}/notes.';
GRANT EXECUTE ON FUNCTION api_case_note_add(bigint, text) TO recovery_agent, recovery_automation;

CREATE FUNCTION api_case_assign(case_id bigint, expected_version integer,
                                assigned_user_id bigint DEFAULT NULL, priority integer DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM recovery.case_assign(case_id, expected_version, assigned_user_id, priority);
    RETURN recovery.api_case_get(case_id);
END
$$;
COMMENT ON FUNCTION api_case_assign(bigint, integer, bigint, integer) IS
    'POST /api/v1/recovery-cases/{id}/assignment.';
GRANT EXECUTE ON FUNCTION api_case_assign(bigint, integer, bigint, integer) TO recovery_agent;

-- the case timeline shows holds, and why a message failed or was cancelled
CREATE FUNCTION api_case_timeline(case_id bigint) RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT coalesce(jsonb_agg(t.entry ORDER BY t.at, t.kind, t.id), '[]')
    FROM (
        SELECT 'event' AS kind, e.id, e.occurred_at AS at,
               jsonb_build_object('kind', 'event', 'id', e.id, 'at', e.occurred_at, 'event', e.event,
                                  'from_state', e.from_state, 'to_state', e.to_state,
                                  'actor', e.actor, 'reason', e.reason, 'details', e.details) AS entry
          FROM recovery.case_events_decrypted AS e WHERE e.case_id = api_case_timeline.case_id
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
          FROM recovery.dunning_holds_decrypted AS h
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
