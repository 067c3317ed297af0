-- One realistic transaction of the mix: money received on a case, then a
-- transition of it (dispute <-> dispute_rejected, so that it can repeat).
\set n random(1, 5000)
SELECT case_id AS cid FROM bench_cases WHERE n = :n \gset
BEGIN;
SELECT 1 FROM recovery.case_record_payment(:cid, 100, 'EUR');
SELECT 1 FROM recovery.recovery_cases c,
    recovery.case_transition(c.id, CASE WHEN c.state = 'disputed' THEN 'dispute_rejected' ELSE 'dispute' END,
                             c.version, '{"reason": "bench"}')
WHERE c.id = :cid;
END;
