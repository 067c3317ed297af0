-- REST: the dashboard's figures.

-- Analytics, in SQL so that reports and the web app agree
CREATE FUNCTION api_analytics_summary() RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    WITH by_currency AS (
        SELECT c.currency,
               count(*) FILTER (WHERE NOT recovery.case_state_is_terminal(c.state)) AS open_cases,
               coalesce(sum(c.balance) FILTER (WHERE NOT recovery.case_state_is_terminal(c.state)), 0) AS open_balance,
               (SELECT coalesce(sum(p.amount), 0) FROM recovery.payments p
                 WHERE p.currency = c.currency AND p.case_id IS NOT NULL) AS owed,
               (SELECT coalesce(sum(r.allocated), 0) FROM recovery.receipts r
                 WHERE r.currency = c.currency) AS recovered,
               (SELECT coalesce(sum(r.allocated), 0) FROM recovery.receipts r
                 WHERE r.currency = c.currency
                   AND r.received_at >= date_trunc('month', now())) AS recovered_this_month
          FROM recovery.recovery_cases c
         GROUP BY c.currency
    )
    SELECT jsonb_build_object(
        'by_currency', coalesce((SELECT jsonb_agg(jsonb_build_object(
                            'currency', currency, 'open_cases', open_cases,
                            'open_balance', open_balance, 'recovered_this_month', recovered_this_month,
                            'recovery_rate', CASE WHEN owed > 0 THEN round(recovered::numeric / owed, 4) END)
                            ORDER BY currency) FROM by_currency), '[]'),
        'promise_kept_rate', (SELECT CASE WHEN count(*) > 0
                                          THEN round(count(*) FILTER (WHERE outcome = 'kept')::numeric / count(*), 4) END
                                FROM recovery.promises WHERE outcome IN ('kept', 'broken')),
        'average_days_to_resolve', (SELECT round(avg(extract(epoch FROM closed_at - opened_at) / 86400)::numeric, 1)
                                      FROM recovery.recovery_cases WHERE state = 'resolved'),
        'cases_by_state', (SELECT jsonb_object_agg(state, n) FROM (
                               SELECT state, count(*) AS n FROM recovery.recovery_cases GROUP BY state) s))
$$;
COMMENT ON FUNCTION api_analytics_summary() IS
    'GET /api/v1/analytics/summary: open cases and balance by currency, recovered this month, recovery rate (money recovered / money owed that went to recovery), promise-kept rate, average days to resolve.';
GRANT EXECUTE ON FUNCTION api_analytics_summary() TO recovery_viewer, recovery_auditor;

CREATE FUNCTION api_analytics_aging() RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    WITH open_cases AS (
        SELECT c.currency, c.balance, coalesce(recovery.case_overdue_days(c.id), 0) AS days
          FROM recovery.recovery_cases c WHERE NOT recovery.case_state_is_terminal(c.state)
    ), bucketed AS (
        SELECT currency, balance,
               CASE WHEN days <= 30 THEN '0-30' WHEN days <= 60 THEN '31-60'
                    WHEN days <= 90 THEN '61-90' ELSE '90+' END AS bucket
          FROM open_cases
    )
    SELECT jsonb_build_object('buckets', coalesce(jsonb_agg(jsonb_build_object(
               'bucket', bucket, 'currency', currency, 'cases', n, 'balance', total)
               ORDER BY array_position(ARRAY['0-30', '31-60', '61-90', '90+'], bucket), currency), '[]'))
    FROM (SELECT bucket, currency, count(*) AS n, sum(balance) AS total
            FROM bucketed GROUP BY bucket, currency) AS b
$$;
COMMENT ON FUNCTION api_analytics_aging() IS
    'GET /api/v1/analytics/aging: open cases and balance by days overdue (0-30, 31-60, 61-90, 90+) and currency.';
GRANT EXECUTE ON FUNCTION api_analytics_aging() TO recovery_viewer, recovery_auditor;

CREATE FUNCTION api_analytics_recovery_by_month() RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT jsonb_build_object('months', coalesce(jsonb_agg(jsonb_build_object(
               'month', to_char(month, 'YYYY-MM'), 'currency', currency, 'opened', opened,
               'resolved', resolved, 'owed', owed, 'recovered', recovered,
               'recovery_rate', CASE WHEN owed > 0 THEN round(recovered::numeric / owed, 4) END)
               ORDER BY month, currency), '[]'))
    FROM (SELECT date_trunc('month', c.opened_at) AS month, c.currency,
                 count(*) AS opened,
                 count(*) FILTER (WHERE c.state = 'resolved') AS resolved,
                 coalesce(sum((SELECT sum(p.amount) FROM recovery.payments p WHERE p.case_id = c.id)), 0) AS owed,
                 coalesce(sum((SELECT sum(r.allocated) FROM recovery.receipts r WHERE r.case_id = c.id)), 0) AS recovered
            FROM recovery.recovery_cases c
           GROUP BY 1, 2) AS m
$$;
COMMENT ON FUNCTION api_analytics_recovery_by_month() IS
    'GET /api/v1/analytics/recovery-by-month: by month the cases opened and currency, what was owed and recovered.';
GRANT EXECUTE ON FUNCTION api_analytics_recovery_by_month() TO recovery_viewer, recovery_auditor;

CREATE FUNCTION api_analytics_channels() RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    -- money counts for a channel when it arrives within 7 days after a
    -- message on that channel was sent for the case
    WITH sent AS (
        SELECT n.id, n.case_id, n.channel, n.status, n.sent_at FROM recovery.notifications n
    ), results AS (
        SELECT s.channel,
               count(*) AS messages,
               count(*) FILTER (WHERE s.status = 'sent') AS sent,
               count(*) FILTER (WHERE s.status IN ('failed', 'dead')) AS failed,
               count(DISTINCT s.case_id) FILTER (WHERE s.status = 'sent' AND EXISTS (
                   SELECT 1 FROM recovery.receipts r
                    WHERE r.case_id = s.case_id AND r.received_at >= s.sent_at
                      AND r.received_at < s.sent_at + interval '7 days')) AS cases_paid_within_7_days
          FROM sent s GROUP BY s.channel
    )
    SELECT jsonb_build_object('channels', coalesce(jsonb_agg(jsonb_build_object(
               'channel', channel, 'messages', messages, 'sent', sent, 'failed', failed,
               'cases_paid_within_7_days', cases_paid_within_7_days) ORDER BY channel), '[]'))
    FROM results
$$;
COMMENT ON FUNCTION api_analytics_channels() IS
    'GET /api/v1/analytics/channels: messages by channel, how many were sent or failed, and the cases that paid within 7 days of one.';
GRANT EXECUTE ON FUNCTION api_analytics_channels() TO recovery_viewer, recovery_auditor;
