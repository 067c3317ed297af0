-- Demo data for make run (and the tests): deterministic and realistic.
-- 2,000 customers, 6,000 payments, about 1,500 recovery cases spread over
-- every state with their history.  Loaded once: a second run changes nothing.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

-- The REST gateway's login; a real deployment sets its own password.
ALTER ROLE recovery_authenticator PASSWORD 'authenticator';

DO $demo$
DECLARE
    admin_id   bigint;
    manager_id bigint;
    agent_id   bigint;
    c          record;
    v          integer;
    third      bigint;
    n          integer := 0;
    first_names text[] := ARRAY['Amelia', 'Noah', 'Olivia', 'Liam', 'Emma', 'Lukas',
        'Sofia', 'Mateo', 'Chloé', 'Jan', 'Zoë', 'Björn', 'Aoife', 'Søren', 'Inès',
        'Marek', 'Ana', 'Pieter', 'Giulia', 'Tomás'];
    last_names text[] := ARRAY['Smith', 'Müller', 'Dubois', 'Jansen', 'García',
        'Rossi', 'Nowak', 'O''Brien', 'Kowalski', 'Andersen', 'Martin', 'Schmidt',
        'Bernard', 'de Vries', 'López', 'Ferrari', 'Novák', 'Murphy', 'Larsen', 'Weber'];
BEGIN
    IF EXISTS (SELECT 1 FROM recovery.users WHERE email = 'admin@demo.example') THEN
        RAISE NOTICE 'demo data is already loaded';
        RETURN;
    END IF;
    RAISE NOTICE 'loading demo data';
    PERFORM setseed(0.20261125);

    admin_id := recovery.user_create('admin@demo.example', 'Ada Admin', 'recovery_admin', 'admin-demo-pass');
    manager_id := recovery.user_create('manager@demo.example', 'Max Manager', 'recovery_manager', 'manager-demo-pass');
    agent_id := recovery.user_create('agent@demo.example', 'Alex Agent', 'recovery_agent', 'agent-demo-pass');
    PERFORM recovery.user_create('auditor@demo.example', 'Aud Itor', 'recovery_auditor', 'auditor-demo-pass');
    PERFORM recovery.user_create('viewer@demo.example', 'Vi Ewer', 'recovery_viewer', 'viewer-demo-pass');
    PERFORM recovery.set_request_context(agent_id, 'demo-load');

    INSERT INTO recovery.customers (external_ref, name, email, phone, locale, time_zone)
    SELECT format('CUST-%s', lpad(i::text, 6, '0')),
           convert_to(first_names[1 + i % 20] || ' ' || last_names[1 + (i / 20) % 20], 'UTF8'),
           convert_to(format('customer%s@example.com', i), 'UTF8'),
           convert_to('+44' || (7700900000 + i)::text, 'UTF8'),
           (ARRAY['en-GB', 'de-DE', 'fr-FR', 'en-US', 'nl-NL'])[1 + i % 5],
           (ARRAY['Europe/London', 'Europe/Berlin', 'Europe/Paris',
                  'America/New_York', 'Europe/Amsterdam'])[1 + i % 5]
    FROM generate_series(1, 2000) AS i;

    INSERT INTO recovery.payments (customer_id, external_ref, amount, outstanding,
                                   currency, due_date)
    SELECT id, reference, amount, amount, currency, due_date
    FROM (SELECT cu.id, format('INV-2026-%s', lpad((cu.id * 3 + k)::text, 6, '0')) AS reference,
                 (1500 + floor(random() * 248500))::bigint AS amount,
                 CASE cu.locale WHEN 'en-GB' THEN 'GBP' WHEN 'en-US' THEN 'USD' ELSE 'EUR' END AS currency,
                 current_date - ((cu.id * 37 + k * 29) % 200)::integer AS due_date
          FROM recovery.customers cu, generate_series(1, 3) AS k
          WHERE cu.external_ref LIKE 'CUST-%'
          ORDER BY cu.id, k) AS demo_payments;

    -- Three customers in four have failed or overdue payments.
    FOR c IN SELECT p.id, p.due_date FROM recovery.payments p
             WHERE p.customer_id % 4 <> 0 AND (p.id % 3 <> 0 OR p.customer_id % 7 = 0)
             ORDER BY p.id
    LOOP
        IF c.due_date < current_date - 30 THEN
            PERFORM recovery.payment_fail(c.id, 'not paid 30 days after due date', 'overdue');
        ELSE
            PERFORM recovery.payment_fail(c.id,
                (ARRAY['insufficient funds', 'card expired', 'direct debit returned',
                       'account closed'])[1 + c.id % 4]);
        END IF;
    END LOOP;

    -- Work the cases into every state, with their history.
    FOR c IN SELECT id, balance, currency FROM recovery.recovery_cases ORDER BY id LOOP
        n := n + 1;
        SELECT version INTO v FROM recovery.recovery_cases WHERE id = c.id;
        CASE n % 20
        WHEN 0, 1, 2 THEN
            NULL;                                   -- open
        WHEN 3, 4, 5, 6 THEN
            PERFORM recovery.case_transition(c.id, 'contact', v, '{"reason": "reminder email delivered"}');
        WHEN 7, 8, 9 THEN
            PERFORM recovery.case_transition(c.id, 'contact', v, '{"reason": "called the customer"}');
            PERFORM recovery.case_transition(c.id, 'promise', v + 1,
                jsonb_build_object('amount', greatest(c.balance / 2, 1),
                                   'due_date', current_date + 7 + n % 21,
                                   'reason', 'promised on the phone'));
        WHEN 10, 11 THEN
            third := c.balance / 3;
            PERFORM recovery.case_transition(c.id, 'contact', v);
            PERFORM recovery.case_transition(c.id, 'plan', v + 1,
                jsonb_build_object('instalments', jsonb_build_array(
                    jsonb_build_object('amount', third, 'due_date', current_date + 30),
                    jsonb_build_object('amount', third, 'due_date', current_date + 60),
                    jsonb_build_object('amount', c.balance - 2 * third, 'due_date', current_date + 90))));
        WHEN 12 THEN
            PERFORM recovery.case_transition(c.id, 'contact', v);
            PERFORM recovery.case_transition(c.id, 'dispute', v + 1,
                '{"reason": "customer says the goods never arrived"}');
        WHEN 13 THEN
            PERFORM recovery.case_transition(c.id, 'contact', v);
            PERFORM recovery.case_transition(c.id, 'escalate', v + 1,
                '{"reason": "no answer after three reminders"}');
        WHEN 14, 15, 16 THEN
            PERFORM recovery.case_transition(c.id, 'contact', v);
            IF n % 2 = 0 AND c.balance > 1 THEN
                PERFORM recovery.case_record_payment(c.id, c.balance / 2, c.currency,
                                                     'BANK-' || c.id || '-1');
            END IF;
            PERFORM recovery.case_record_payment(c.id,
                (SELECT balance FROM recovery.recovery_cases WHERE id = c.id),
                c.currency, 'BANK-' || c.id || '-2');
        WHEN 17, 18 THEN
            PERFORM recovery.set_request_context(manager_id, 'demo-load');
            PERFORM recovery.case_transition(c.id, 'contact', v);
            PERFORM recovery.case_transition(c.id, 'escalate', v + 1);
            PERFORM recovery.case_transition(c.id, 'write_off', v + 2,
                '{"reason": "agency could not collect"}');
            PERFORM recovery.set_request_context(agent_id, 'demo-load');
        ELSE
            PERFORM recovery.set_request_context(admin_id, 'demo-load');
            PERFORM recovery.case_transition(c.id, 'cancel', v, '{"reason": "opened in error"}');
            PERFORM recovery.set_request_context(agent_id, 'demo-load');
        END CASE;
        IF n % 6 = 1 THEN
            UPDATE recovery.recovery_cases SET assigned_user_id = agent_id,
                   next_action_at = date_trunc('day', now()) + interval '9 hours' + (n % 5) * interval '1 day',
                   version = version + 1
            WHERE id = c.id AND NOT recovery.case_state_is_terminal(state);
        END IF;
    END LOOP;
END
$demo$;

-- Templates and the default dunning policy (what the reminders will send).
DO $templates$
BEGIN
    IF EXISTS (SELECT 1 FROM recovery.templates) THEN
        RETURN;
    END IF;
    PERFORM recovery.template_save('payment-upcoming', 'email', 'en-GB',
        E'Dear {{customer_name}},\n\nyour payment of {{amount}} is due on {{due_date}}. '
        'You can pay here: {{payment_link}}\n\nReference: {{case_reference}}',
        'Your payment of {{amount}} is due on {{due_date}}');
    PERFORM recovery.template_save('payment-overdue', 'email', 'en-GB',
        E'Dear {{customer_name}},\n\nwe have not received {{amount}}, due on {{due_date}}. '
        'Please pay now: {{payment_link}}\n\nReference: {{case_reference}}',
        'Overdue: {{amount}}');
    PERFORM recovery.template_save('payment-overdue', 'email', 'de-DE',
        E'Guten Tag {{customer_name}},\n\nwir haben {{amount}}, fällig am {{due_date}}, nicht erhalten. '
        'Bitte zahlen Sie hier: {{payment_link}}\n\nReferenz: {{case_reference}}',
        'Überfällig: {{amount}}');
    PERFORM recovery.template_save('payment-overdue', 'sms', 'en-GB',
        '{{amount}} is overdue (ref {{case_reference}}). Pay: {{payment_link}}');
    PERFORM recovery.template_save('final-notice', 'letter', 'en-GB',
        E'Dear {{customer_name}},\n\nthe balance of {{balance}} remains unpaid. Unless it is paid '
        'within 14 days we will pass the matter on.\n\nReference: {{case_reference}}');
    PERFORM recovery.dunning_policy_save('standard',
        '[{"offset_days": -3, "channel": "email", "template": "payment-upcoming"},
          {"offset_days": 3, "channel": "email", "template": "payment-overdue"},
          {"offset_days": 10, "channel": "sms", "template": "payment-overdue"},
          {"offset_days": 21, "channel": "email", "template": "payment-overdue", "fee": {"fixed": 500}},
          {"offset_days": 35, "channel": "letter", "template": "final-notice", "action": "escalate"}]',
        'Courtesy email before the due date, then email, SMS, a fee, and a final letter that escalates.',
        true);
END
$templates$;
