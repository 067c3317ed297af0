-- The cases the write mix (audit-overhead.sql) works on: 5000 open cases
-- with large balances, made once; bench/audit-overhead.sh and
-- bench/backup.sh load it.
SET client_min_messages = warning;
CREATE TABLE IF NOT EXISTS bench_cases (n integer PRIMARY KEY, case_id bigint NOT NULL);
GRANT SELECT ON bench_cases TO PUBLIC;
DO $$
DECLARE
    i integer;
    customer bigint;
    payment bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM bench_cases) THEN RETURN; END IF;
    FOR i IN 1 .. 5000 LOOP
        customer := (recovery.customer_create('BENCH-' || i, 'Bench Customer ' || i)).id;
        payment := (recovery.payment_create(customer, 'INV-' || i, 1000000000, 'EUR', current_date - 30)).id;
        INSERT INTO bench_cases VALUES (i, (recovery.payment_fail(payment)).id);
    END LOOP;
END
$$;
SELECT count(recovery.case_transition(case_id, 'contact', version))
FROM bench_cases JOIN recovery.recovery_cases ON id = case_id WHERE state = 'open' \g /dev/null
