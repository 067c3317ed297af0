-- The routed function alone, without the request context (the session's
-- role is set at connect time instead).
SELECT recovery.api_case_get(case_id => :case_id);
