-- REST: payments.

-- Payments
CREATE FUNCTION api_payments_list(customer_id bigint DEFAULT NULL, status text DEFAULT NULL,
                                  due_from date DEFAULT NULL, due_to date DEFAULT NULL,
                                  cursor text DEFAULT NULL, "limit" integer DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    page_size integer := recovery.page_size("limit");
    mark jsonb := recovery.cursor_decode(cursor);
    after_due date := (mark ->> 'due_date')::date;
    after_id bigint := (mark ->> 'id')::bigint;
    items jsonb;
BEGIN
    IF status IS NOT NULL AND status NOT IN ('pending', 'failed', 'overdue', 'paid') THEN
        RAISE EXCEPTION 'unknown payment status "%"', status USING ERRCODE = 'PR004',
            HINT = 'The statuses are pending, failed, overdue and paid.';
    END IF;
    SELECT coalesce(jsonb_agg(to_jsonb(p) ORDER BY p.due_date, p.id), '[]')
      INTO items
      FROM (SELECT pa.*
              FROM recovery.payments AS pa
             WHERE (api_payments_list.customer_id IS NULL OR pa.customer_id = api_payments_list.customer_id)
               AND (api_payments_list.status IS NULL OR pa.status = api_payments_list.status)
               AND (due_from IS NULL OR pa.due_date >= due_from)
               AND (due_to IS NULL OR pa.due_date <= due_to)
               AND (after_id IS NULL OR (pa.due_date, pa.id) > (after_due, after_id))
             ORDER BY pa.due_date, pa.id
             LIMIT page_size) AS p;
    RETURN recovery.page_of(items, page_size,
                            jsonb_build_object('due_date', items -> -1 -> 'due_date',
                                               'id', items -> -1 -> 'id'));
END
$$;
COMMENT ON FUNCTION api_payments_list(bigint, text, date, date, text, integer) IS
    'A page of payments by due date, by customer, status and due date range (GET /api/v1/payments).';
GRANT EXECUTE ON FUNCTION api_payments_list(bigint, text, date, date, text, integer) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION api_payment_get(payment_id bigint) RETURNS jsonb
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    result jsonb;
BEGIN
    SELECT to_jsonb(p) INTO result FROM recovery.payments AS p WHERE p.id = payment_id;
    IF result IS NULL THEN
        RAISE EXCEPTION 'payment % does not exist', payment_id USING ERRCODE = 'PR003';
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION api_payment_get(bigint) IS 'A payment (GET /api/v1/payments/{id}).';
GRANT EXECUTE ON FUNCTION api_payment_get(bigint) TO recovery_viewer, recovery_auditor;

CREATE FUNCTION api_payment_create(customer_id bigint, external_ref text, amount bigint,
                                   currency text, due_date date) RETURNS jsonb
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT to_jsonb(p) FROM recovery.payment_create(customer_id, external_ref, amount,
                                                   currency, due_date) AS p
$$;
COMMENT ON FUNCTION api_payment_create(bigint, text, bigint, text, date) IS
    'Records a payment a customer owes (POST /api/v1/payments).';
GRANT EXECUTE ON FUNCTION api_payment_create(bigint, text, bigint, text, date) TO recovery_agent, recovery_automation;

CREATE FUNCTION api_payment_fail(payment_id bigint, reason text DEFAULT NULL,
                                 status text DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    opened recovery.recovery_cases;
BEGIN
    opened := recovery.payment_fail(payment_id, reason, coalesce(status, 'failed'));
    RETURN jsonb_build_object('payment', recovery.api_payment_get(payment_id),
                              'case', recovery.api_case_get(opened.id));
END
$$;
COMMENT ON FUNCTION api_payment_fail(bigint, text, text) IS
    'Marks a payment failed or overdue and opens or extends its case (POST /api/v1/payments/{id}/fail).';
GRANT EXECUTE ON FUNCTION api_payment_fail(bigint, text, text) TO recovery_agent, recovery_automation;
