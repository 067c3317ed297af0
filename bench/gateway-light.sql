-- What the gateway sends for GET /api/v1/case-states (a light function: the
-- state machine's table) with a JWT: the request context and the call, as
-- in gateway-context.sql.
\startpipeline
SELECT set_config('recovery.user_id', recovery.token_user(:user_id), true), set_config('recovery.actor', :actor, true), set_config('recovery.request_id', :request_id, true), set_config('recovery.claims', :claims, true), set_config('transaction_read_only', 'on', true), set_config('statement_timeout', '5000', true), set_config('role', :role, true);
SELECT recovery.api_case_states();
\endpipeline
