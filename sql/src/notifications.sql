-- The outbox: messages to customers and their history.

CREATE TABLE notifications (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id             bigint NOT NULL REFERENCES recovery_cases,
    customer_id         bigint NOT NULL REFERENCES customers,
    channel             text NOT NULL CHECK (channel IN ('email', 'sms', 'letter', 'webhook')),
    template_id         bigint REFERENCES templates,
    step_no             integer,
    status              text NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'dead', 'cancelled')),
    send_after          timestamptz NOT NULL DEFAULT now(),
    attempts            integer NOT NULL DEFAULT 0,
    provider_message_id text,
    last_error          text,
    created_by          text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    sent_at             timestamptz,
    dunning_policy_id   bigint REFERENCES dunning_policies,
    message_id          text,
    cancel_reason       text,
    sending_started_at  timestamptz
);
CREATE INDEX notifications_case ON notifications (case_id, id);
CREATE INDEX notifications_customer ON notifications (customer_id, id);
CREATE UNIQUE INDEX notifications_case_step ON notifications (case_id, step_no) WHERE step_no IS NOT NULL;
CREATE INDEX notifications_ready ON notifications (send_after) WHERE status IN ('queued', 'failed');
CREATE INDEX notifications_sent_to ON notifications (customer_id, sent_at) WHERE status = 'sent';
COMMENT ON TABLE notifications IS
    'The outbox and history of messages to customers; the reminders work fills and delivers it.';
COMMENT ON COLUMN notifications.step_no IS 'The dunning step (1-based) that queued it; NULL for a message queued by hand.';
COMMENT ON COLUMN notifications.status IS
    'queued; sending; sent; failed (an attempt failed, retried at send_after); dead (no more attempts); cancelled (cancel_reason says why).';
COMMENT ON COLUMN notifications.message_id IS 'Stable across resends: the email''s Message-ID and the webhook''s Idempotency-Key.';
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON notifications
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();
GRANT SELECT ON notifications TO recovery_viewer, recovery_auditor;
SELECT pg_catalog.pg_extension_config_dump('notifications', '');
SELECT pg_catalog.pg_extension_config_dump('notifications_id_seq', '');

CREATE FUNCTION notifications_wake_worker() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$ BEGIN NOTIFY recovery_outbox; RETURN NULL; END $$;

CREATE TRIGGER wake_worker AFTER INSERT ON notifications
    FOR EACH STATEMENT EXECUTE FUNCTION notifications_wake_worker();

CREATE FUNCTION render_template(template_id bigint, case_id bigint,
                                OUT subject text, OUT body text, OUT html_body text)
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'recovery_render_template';
COMMENT ON FUNCTION render_template(bigint, bigint) IS
    'A template filled in for a case: name, amounts and dates in the customer''s locale, HTML body escaped.';
GRANT EXECUTE ON FUNCTION render_template(bigint, bigint) TO recovery_viewer, recovery_auditor;
