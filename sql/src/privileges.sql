-- Last: nothing of the extension is PUBLIC's.  Each table, view and function
-- was granted to the roles that need it in its own file; here the default
-- EXECUTE of every function for PUBLIC goes.

REVOKE ALL ON ALL TABLES IN SCHEMA recovery FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA recovery FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA recovery FROM PUBLIC;

-- As 0.6 shipped them: whether the delivery worker can run, and why not,
-- for anyone (they tell nothing of the data).
GRANT EXECUTE ON FUNCTION delivery_worker_preloaded(), delivery_problem() TO PUBLIC;
