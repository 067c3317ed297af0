-- What the gateway sends for GET /api/v1/recovery-cases/{id} with a JWT:
-- the request context (ngx_http_recovery_call.c) and the routed call, in
-- one pipeline, one implicit transaction (run with pgbench -M prepared, so
-- values are bound like the gateway's prepared statements).
\startpipeline
SELECT set_config('recovery.user_id', recovery.token_user(:user_id), true), set_config('recovery.actor', :actor, true), set_config('recovery.request_id', :request_id, true), set_config('recovery.claims', :claims, true), set_config('transaction_read_only', 'on', true), set_config('statement_timeout', '5000', true), set_config('role', :role, true);
SELECT recovery.api_case_get(case_id => :case_id);
\endpipeline
