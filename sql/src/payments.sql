-- Payments owed, money received and how it is allocated.

CREATE TABLE payments (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id    bigint NOT NULL REFERENCES customers,
    external_ref   text NOT NULL CHECK (length(external_ref) BETWEEN 1 AND 200),
    amount         bigint NOT NULL CHECK (amount > 0),
    outstanding    bigint NOT NULL,
    currency       char(3) NOT NULL REFERENCES currencies,
    due_date       date NOT NULL,
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'failed', 'overdue', 'paid')),
    failure_reason text,
    case_id        bigint REFERENCES recovery_cases,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    version        integer NOT NULL DEFAULT 1,
    kind           text NOT NULL DEFAULT 'principal' CHECK (kind IN ('principal', 'fee')),
    UNIQUE (customer_id, external_ref),
    CHECK (outstanding BETWEEN 0 AND amount),
    CHECK ((status = 'paid') = (outstanding = 0))
);
CREATE INDEX payments_case ON payments (case_id) WHERE case_id IS NOT NULL;
CREATE INDEX payments_due ON payments (status, due_date);
CREATE INDEX payments_external_ref ON payments (external_ref);
COMMENT ON TABLE payments IS 'Amounts a customer owes (invoices, instalments, direct debits); failed or overdue ones are recovered in a case.';
COMMENT ON COLUMN payments.outstanding IS 'What is still unpaid, in minor units.';
COMMENT ON COLUMN payments.kind IS 'principal: what the customer owed; fee: a dunning fee, added by a delivered dunning step as its own line.';
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON payments
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
GRANT SELECT ON payments TO recovery_viewer, recovery_auditor;
SELECT pg_catalog.pg_extension_config_dump('payments', '');
SELECT pg_catalog.pg_extension_config_dump('payments_id_seq', '');

CREATE TABLE receipts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id     bigint NOT NULL REFERENCES recovery_cases,
    customer_id bigint NOT NULL REFERENCES customers,
    currency    char(3) NOT NULL REFERENCES currencies,
    amount      bigint NOT NULL CHECK (amount > 0),
    allocated   bigint NOT NULL CHECK (allocated >= 0),
    unallocated bigint NOT NULL CHECK (unallocated >= 0),
    reference   text,
    received_at timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (allocated + unallocated = amount)
);
CREATE INDEX receipts_case ON receipts (case_id);
COMMENT ON TABLE receipts IS 'Money received against a case.';
COMMENT ON COLUMN receipts.unallocated IS 'Overpayment kept as a credit to refund or apply by hand (only with allow_overpayment).';
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON receipts
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
GRANT SELECT ON receipts TO recovery_viewer, recovery_auditor;
SELECT pg_catalog.pg_extension_config_dump('receipts', '');
SELECT pg_catalog.pg_extension_config_dump('receipts_id_seq', '');

CREATE TABLE receipt_allocations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    receipt_id  bigint NOT NULL REFERENCES receipts,
    payment_id  bigint NOT NULL REFERENCES payments,
    customer_id bigint NOT NULL REFERENCES customers,
    amount      bigint NOT NULL CHECK (amount > 0)
);
CREATE INDEX receipt_allocations_receipt ON receipt_allocations (receipt_id);
COMMENT ON TABLE receipt_allocations IS 'How each receipt paid the case''s payments, oldest due first.';
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON receipt_allocations
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
GRANT SELECT ON receipt_allocations TO recovery_viewer, recovery_auditor;
SELECT pg_catalog.pg_extension_config_dump('receipt_allocations', '');
SELECT pg_catalog.pg_extension_config_dump('receipt_allocations_id_seq', '');

CREATE FUNCTION payment_create(customer_id bigint, external_ref text, amount bigint,
                               currency text, due_date date)
    RETURNS payments
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'recovery_payment_create';
COMMENT ON FUNCTION payment_create(bigint, text, bigint, text, date) IS
    'Records a payment a customer owes (amount in minor units).';
GRANT EXECUTE ON FUNCTION payment_create(bigint, text, bigint, text, date) TO recovery_agent, recovery_automation;

CREATE FUNCTION payment_fail(payment_id bigint, reason text DEFAULT NULL,
                             status text DEFAULT 'failed')
    RETURNS recovery_cases
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'recovery_payment_fail';
COMMENT ON FUNCTION payment_fail(bigint, text, text) IS
    'Marks a payment failed (or status => ''overdue'') and opens its customer''s case in its currency, or adds it to the open one; returns the case.';
GRANT EXECUTE ON FUNCTION payment_fail(bigint, text, text) TO recovery_agent, recovery_automation;

CREATE FUNCTION case_record_payment(case_id bigint, amount bigint, currency text,
                                    reference text DEFAULT NULL,
                                    received_at timestamptz DEFAULT NULL,
                                    allow_overpayment boolean DEFAULT false)
    RETURNS receipts
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'recovery_case_record_payment';
COMMENT ON FUNCTION case_record_payment(bigint, bigint, text, text, timestamptz, boolean) IS
    'Records money received against a case, allocated to its payments oldest first; the case resolves at a zero balance.';
GRANT EXECUTE ON FUNCTION case_record_payment(bigint, bigint, text, text, timestamptz, boolean) TO recovery_agent, recovery_automation;
