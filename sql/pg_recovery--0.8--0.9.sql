-- pg_recovery 0.8 -> 0.9: live events.  Changes people watch (a case, a
-- reminder's outcome, an extraction, payments to review, a dead task) are
-- recorded in recovery.live_events in the changing transaction, whose commit
-- wakes the readers waiting in live_events_read(); the gateway streams them
-- as server-sent events (GET /api/v1/events), resuming without gaps from the
-- last event a client saw.  caller_role() names the request's role inside SECURITY DEFINER
-- functions; the nightly retention job purges old events too.
\echo Use "ALTER EXTENSION pg_recovery UPDATE TO '0.9'" to load this file. \quit

CREATE FUNCTION restoring() RETURNS boolean
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'recovery_restoring_sql';
COMMENT ON FUNCTION restoring() IS
    'Whether this session is a superuser''s pg_restore: its rows bring their trail and record no live events.';
REVOKE ALL ON FUNCTION restoring() FROM PUBLIC;

CREATE FUNCTION caller_role() RETURNS name
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'recovery_caller_role_sql';
COMMENT ON FUNCTION caller_role() IS
    'The role the request runs as (after SET ROLE), also inside SECURITY DEFINER functions.';
REVOKE ALL ON FUNCTION caller_role() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION caller_role() TO recovery_viewer, recovery_auditor;

CREATE OR REPLACE FUNCTION job_definitions(OUT name text, OUT schedule text, OUT command text)
    RETURNS SETOF record
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$ VALUES ('recovery-reminders', '* * * * *', 'CALL recovery.run_reminders()'),
                 ('recovery-promises', '*/15 * * * *', 'SELECT recovery.check_promises()'),
                 ('recovery-extractions', '* * * * *', 'SELECT recovery.perform_extraction_tasks()'),
                 ('recovery-retention', '17 3 * * *', 'SELECT recovery.idempotency_purge(), recovery.live_events_purge()') $$;

-- Live events: what the people working cases watch, recorded in the same
-- transaction as the change; its commit wakes the readers (live_events.c:
-- not NOTIFY, which serializes commits); the gateway streams them to the
-- web app (GET /api/v1/events, server-sent events).
--
-- Order without gaps.  Ids come from a sequence, and transactions commit in
-- another order than they took their ids: a reader that went by id alone
-- would pass over an event whose transaction commits after a later id was
-- read.  So each event keeps its transaction's id (xid), and an event is
-- read only once every transaction that could still write one before it
-- has ended: its xid is below the oldest running transaction's (the
-- snapshot's xmin).  Readers go in (xid, id) order from a position; what
-- they have passed can never change.  An open transaction holds events
-- back until it ends.

-- Who may receive each type: whoever may execute the function that reads
-- what the event is about (the same grants the REST routes go through).
CREATE TABLE live_event_types (
    type        text PRIMARY KEY,
    reader      regprocedure NOT NULL,
    description text NOT NULL
);
COMMENT ON TABLE live_event_types IS
    'The kinds of live event; a role receives a kind when it may execute its reader function.';
INSERT INTO live_event_types VALUES
    ('case.changed', 'recovery.api_case_get(bigint)',
     'A case changed: opened, a transition, money received, an assignment, a note or a document (data.change says which).'),
    ('notification.sent', 'recovery.api_notifications_list(bigint, bigint, text, text, integer)',
     'A reminder or message was delivered.'),
    ('notification.failed', 'recovery.api_notifications_list(bigint, bigint, text, text, integer)',
     'A delivery attempt failed; it will be retried.'),
    ('notification.dead', 'recovery.api_notifications_list(bigint, bigint, text, text, integer)',
     'A message will not be delivered: no attempts left, or it cannot be sent.'),
    ('notification.cancelled', 'recovery.api_notifications_list(bigint, bigint, text, text, integer)',
     'A queued message was cancelled (data.reason says why).'),
    ('extraction.finished', 'recovery.api_extraction_get(bigint)',
     'A statement, email, SMS or text was read: its lines by outcome.'),
    ('reconciliation.review', 'recovery.api_reconciliation_queue(text, text, integer, bigint)',
     'Payments found by an extraction wait for a person to confirm or reject them.'),
    ('task.dead', 'recovery.api_tasks_dead(text, integer)',
     'An automation task failed its last attempt and was dead-lettered.');

CREATE TABLE live_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    type        text NOT NULL REFERENCES live_event_types,
    case_id     bigint,
    customer_id bigint,
    data        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX live_events_position ON live_events (xid, id);
COMMENT ON TABLE live_events IS
    'Changes announced to the web app as they commit; no personal data beyond ids, states and amounts. Purged after recovery.live_events_retention.';
COMMENT ON COLUMN live_events.xid IS
    'The writing transaction''s id: events are read in (xid, id) order once no running transaction is older (see sql/src/live_events.sql).';

-- Waking the readers (C, live_events.c): a transaction that wrote events
-- counts its commit and wakes whoever waits in live_events_wait().
CREATE FUNCTION live_events_announce() RETURNS void
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'recovery_live_events_announce';
COMMENT ON FUNCTION live_events_announce() IS
    'This transaction wrote live events: its commit wakes the readers waiting in live_events_wait().';

CREATE FUNCTION live_events_commits() RETURNS bigint
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'recovery_live_events_commits';
COMMENT ON FUNCTION live_events_commits() IS
    'How many transactions that wrote live events have committed since the server started (-1 without pg_recovery in shared_preload_libraries).';
GRANT EXECUTE ON FUNCTION live_events_commits() TO recovery_authenticator, recovery_admin;

CREATE FUNCTION live_events_wait(seen bigint, timeout_ms integer) RETURNS bigint
    LANGUAGE c VOLATILE STRICT
    AS 'MODULE_PATHNAME', 'recovery_live_events_wait';
COMMENT ON FUNCTION live_events_wait(bigint, integer) IS
    'Sleeps until live_events_commits() is no longer seen, or timeout_ms; returns it. Without pg_recovery preloaded: 50 ms at most, -1 (poll).';
GRANT EXECUTE ON FUNCTION live_events_wait(bigint, integer) TO recovery_authenticator, recovery_admin;

-- An event of the current transaction; its commit wakes the readers.
CREATE FUNCTION live_event(type text, case_id bigint, customer_id bigint, data jsonb) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    -- a restore replays rows, it changes nothing: no events
    IF recovery.restoring() THEN
        RETURN;
    END IF;
    INSERT INTO recovery.live_events (type, case_id, customer_id, data)
    VALUES (live_event.type, live_event.case_id, live_event.customer_id,
            live_event.data || jsonb_build_object('actor',
                coalesce(nullif(current_setting('recovery.actor', true), ''), session_user)));
    PERFORM recovery.live_events_announce();
END
$$;
COMMENT ON FUNCTION live_event(text, bigint, bigint, jsonb) IS
    'Records a live event in the current transaction; its commit wakes the readers (live_events_wait).';

-- The triggers that record them
CREATE FUNCTION live_event_case() RETURNS trigger
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    change text;
BEGIN
    change := CASE WHEN TG_OP = 'INSERT' THEN 'opened'
                   WHEN NEW.balance < OLD.balance THEN 'payment'
                   WHEN NEW.balance > OLD.balance THEN 'balance'
                   WHEN NEW.state <> OLD.state THEN 'transition'
                   WHEN NEW.assigned_user_id IS DISTINCT FROM OLD.assigned_user_id THEN 'assignment'
                   ELSE 'updated' END;
    PERFORM recovery.live_event('case.changed', NEW.id, NEW.customer_id,
        jsonb_build_object('change', change, 'state', NEW.state,
                           'from_state', CASE WHEN TG_OP = 'UPDATE' THEN OLD.state END,
                           'balance', NEW.balance, 'currency', NEW.currency,
                           'assigned_user_id', NEW.assigned_user_id, 'version', NEW.version));
    RETURN NULL;
END
$$;
CREATE TRIGGER live_event AFTER INSERT OR UPDATE ON recovery_cases
    FOR EACH ROW EXECUTE FUNCTION live_event_case();

-- a note or a document: the case changed, though its row did not
CREATE FUNCTION live_event_case_child() RETURNS trigger
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM recovery.live_event('case.changed', NEW.case_id, NEW.customer_id,
        jsonb_build_object('change', TG_ARGV[0], TG_ARGV[0] || '_id', NEW.id));
    RETURN NULL;
END
$$;
CREATE TRIGGER live_event AFTER INSERT ON case_notes
    FOR EACH ROW EXECUTE FUNCTION live_event_case_child('note');
CREATE TRIGGER live_event AFTER INSERT ON documents
    FOR EACH ROW EXECUTE FUNCTION live_event_case_child('document');

CREATE FUNCTION live_event_notification() RETURNS trigger
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM recovery.live_event('notification.' || NEW.status, NEW.case_id, NEW.customer_id,
        jsonb_build_object('notification_id', NEW.id, 'channel', NEW.channel,
                           'attempts', NEW.attempts, 'step_no', NEW.step_no,
                           'reason', NEW.cancel_reason));
    RETURN NULL;
END
$$;
CREATE TRIGGER live_event AFTER UPDATE OF status ON notifications
    FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM OLD.status
                       AND NEW.status IN ('sent', 'failed', 'dead', 'cancelled'))
    EXECUTE FUNCTION live_event_notification();

-- an extraction has finished when its outcome is written
CREATE FUNCTION live_event_extraction() RETURNS trigger
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    review bigint := coalesce((NEW.summary #>> '{by_status,review}')::bigint, 0);
BEGIN
    PERFORM recovery.live_event('extraction.finished', NEW.case_id, NULL,
        jsonb_build_object('extraction_id', NEW.id, 'source', NEW.source,
                           'lines', NEW.summary -> 'lines', 'by_status', NEW.summary -> 'by_status'));
    IF review > 0 THEN
        PERFORM recovery.live_event('reconciliation.review', NEW.case_id, NULL,
            jsonb_build_object('extraction_id', NEW.id, 'source', NEW.source, 'lines', review));
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER live_event AFTER UPDATE OF summary ON extractions
    FOR EACH ROW WHEN (OLD.summary = '{}' AND NEW.summary <> '{}')
    EXECUTE FUNCTION live_event_extraction();

CREATE FUNCTION live_event_task() RETURNS trigger
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM recovery.live_event('task.dead', NULL, NULL,
        jsonb_build_object('task_id', NEW.id, 'kind', NEW.kind, 'attempts', NEW.attempts));
    RETURN NULL;
END
$$;
CREATE TRIGGER live_event AFTER UPDATE OF state ON tasks
    FOR EACH ROW WHEN (NEW.state = 'dead' AND OLD.state <> 'dead')
    EXECUTE FUNCTION live_event_task();

-- An event as a client receives it: one JSON object.
CREATE FUNCTION live_event_json(e live_events) RETURNS text
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT (jsonb_build_object('id', e.id, 'type', e.type, 'at', e.at,
                                     'case_id', e.case_id, 'customer_id', e.customer_id)
                  || e.data)::text $$;

-- The gateway's reader (one connection per nginx worker, always waiting
-- here): the events after a position, up to max, in order, once there are
-- some or wait_ms have passed; then one last row with id 0 that gives the
-- new horizon in xid and, in type, 'more' (max was reached: read again from
-- the last event), 'held' (committed events wait for an older transaction
-- to end) or 'idle'.  While it waits it sleeps until a transaction that
-- wrote events commits (live_events_wait), or 20 ms when events are held.
CREATE FUNCTION live_events_read(after_xid xid8, after_id bigint, max integer DEFAULT 1000,
                                 wait_ms integer DEFAULT 0)
    RETURNS TABLE (xid xid8, id bigint, type text, case_id bigint, customer_id bigint, event text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    horizon xid8;
    n bigint;
    seen bigint;
    state text;
    deadline timestamptz := clock_timestamp() + make_interval(secs => greatest(wait_ms, 0) / 1000.0);
    left_ms integer;
BEGIN
    LOOP
        -- counted first: a commit after this wakes the wait below at once
        seen := recovery.live_events_commits();
        horizon := pg_snapshot_xmin(pg_current_snapshot());
        RETURN QUERY
            SELECT e.xid, e.id, e.type, e.case_id, e.customer_id, recovery.live_event_json(e)
              FROM recovery.live_events e
             WHERE (e.xid, e.id) > (after_xid, after_id) AND e.xid < horizon
             ORDER BY e.xid, e.id
             LIMIT max;
        GET DIAGNOSTICS n = ROW_COUNT;
        state := CASE WHEN n >= max THEN 'more'
                      WHEN EXISTS (SELECT FROM recovery.live_events e WHERE e.xid >= horizon) THEN 'held'
                      ELSE 'idle' END;
        left_ms := floor(extract(epoch FROM deadline - clock_timestamp()) * 1000);
        EXIT WHEN n > 0 OR left_ms <= 0;
        PERFORM recovery.live_events_wait(seen, CASE WHEN state = 'held' THEN least(left_ms, 20) ELSE left_ms END);
    END LOOP;
    RETURN QUERY SELECT horizon, 0::bigint, state, NULL::bigint, NULL::bigint, NULL::text;
END
$$;
COMMENT ON FUNCTION live_events_read(xid8, bigint, integer, integer) IS
    'The gateway''s reader: events after the position (after_xid, after_id) whose transactions are older than every running one, in order, waiting up to wait_ms for some; then a row with id 0: the horizon (xid) and more, held or idle (type).';
GRANT EXECUTE ON FUNCTION live_events_read(xid8, bigint, integer, integer) TO recovery_authenticator;

-- The kinds of event the calling role may receive, narrowed to a list.
CREATE FUNCTION live_event_types_for_caller(wanted text) RETURNS text[]
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    asked text[];
    unknown text;
    allowed text[];
BEGIN
    asked := CASE WHEN nullif(btrim(wanted), '') IS NOT NULL
                  THEN (SELECT array_agg(btrim(w)) FROM unnest(string_to_array(wanted, ',')) w) END;
    SELECT a INTO unknown FROM unnest(asked) a
     WHERE a NOT IN (SELECT t.type FROM recovery.live_event_types t) LIMIT 1;
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION 'unknown event type "%"', left(unknown, 100) USING ERRCODE = 'PR004',
            HINT = 'Ask for some of: ' || (SELECT string_agg(t.type, ', ' ORDER BY t.type)
                                            FROM recovery.live_event_types t) || '.';
    END IF;
    SELECT coalesce(array_agg(t.type ORDER BY t.type), '{}') INTO allowed
      FROM recovery.live_event_types t
     WHERE has_function_privilege(recovery.caller_role(), t.reader, 'EXECUTE')
       AND (asked IS NULL OR t.type = ANY (asked));
    RETURN allowed;
END
$$;

-- Where a client resumes: after the event it names, or from now.
CREATE FUNCTION live_events_start(after text, OUT xid xid8, OUT id bigint, OUT reset boolean)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    reset := false;
    IF nullif(after, '') IS NULL THEN
        xid := pg_snapshot_xmin(pg_current_snapshot());
        id := 0;
        RETURN;
    END IF;
    IF after !~ '^[0-9]{1,18}$' THEN
        RAISE EXCEPTION 'the event id to resume after is not a number' USING ERRCODE = 'PR004',
            DETAIL = 'Last-Event-ID or after was "' || left(after, 40) || '".',
            HINT = 'Send the id of the last event received, or nothing to start from now.';
    END IF;
    SELECT e.xid, e.id INTO xid, id FROM recovery.live_events e WHERE e.id = after::bigint;
    IF NOT FOUND THEN
        -- purged, or never was: the client must reload what it shows
        xid := pg_snapshot_xmin(pg_current_snapshot());
        id := 0;
        reset := true;
    END IF;
END
$$;

-- GET /api/v1/events: what the stream of the caller carries, and what it
-- missed since the event it names (at most 10,000, else it must reload).
-- position: where the gateway's fan-out takes over, in (xid, id) order.
CREATE FUNCTION api_events_open(after text, last_event_id text, types text, case_id bigint) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    allowed text[] := recovery.live_event_types_for_caller(types);
    start record;
    horizon xid8;
    backlog jsonb := '[]';
    missed bigint := 0;
    backlog_max constant integer := 10000;
BEGIN
    start := recovery.live_events_start(coalesce(nullif(last_event_id, ''), after));
    horizon := pg_snapshot_xmin(pg_current_snapshot());
    IF horizon > start.xid THEN
        SELECT count(*), coalesce(jsonb_agg(b.event::jsonb ORDER BY b.xid, b.id), '[]')
          INTO missed, backlog
          FROM (SELECT e.xid, e.id, recovery.live_event_json(e) AS event
                  FROM recovery.live_events e
                 WHERE (e.xid, e.id) > (start.xid, start.id) AND e.xid < horizon
                   AND e.type = ANY (allowed)
                   AND (api_events_open.case_id IS NULL OR e.case_id = api_events_open.case_id)
                 ORDER BY e.xid, e.id
                 LIMIT backlog_max + 1) b;
        start.xid := horizon;
        start.id := 0;
    END IF;
    IF missed > backlog_max THEN
        start.reset := true;
        backlog := '[]';
    END IF;
    RETURN jsonb_build_object(
        'types', to_jsonb(allowed),
        'case_id', api_events_open.case_id,
        'position', jsonb_build_object('xid', start.xid::text, 'id', start.id),
        'reset', start.reset,
        'backlog', backlog);
END
$$;
COMMENT ON FUNCTION api_events_open(text, text, text, bigint) IS
    'GET /api/v1/events: the event types the caller receives (those whose reader it may execute, narrowed by types), the events it missed after the one it names (Last-Event-ID or after; reset when they are purged or over 10,000), and the position the live stream continues from.';
GRANT EXECUTE ON FUNCTION api_events_open(text, text, text, bigint) TO recovery_viewer, recovery_auditor;

-- POST /api/v1/events/ticket: who the gateway mints a short-lived ticket
-- for, since a browser's EventSource cannot send an Authorization header.
CREATE FUNCTION api_events_ticket() RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    u recovery.users;
BEGIN
    SELECT * INTO u FROM recovery.users
     WHERE id = nullif(current_setting('recovery.user_id', true), '')::bigint AND NOT disabled;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'a ticket is for a signed-in user' USING ERRCODE = 'PR003',
            HINT = 'API keys open the event stream themselves: send the key in X-API-Key.';
    END IF;
    RETURN jsonb_build_object('user_id', u.id, 'role', recovery.caller_role(), 'email', u.email);
END
$$;
COMMENT ON FUNCTION api_events_ticket() IS
    'POST /api/v1/events/ticket: the signed-in user the gateway mints an event-stream ticket for.';
GRANT EXECUTE ON FUNCTION api_events_ticket() TO recovery_viewer, recovery_auditor;

-- Retention: events are for what is open on screens now.
CREATE FUNCTION live_events_purge() RETURNS bigint
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$ WITH gone AS (DELETE FROM recovery.live_events
                         WHERE at < now() - make_interval(secs => recovery.setting_int('recovery.live_events_retention', 604800))
                        RETURNING 1)
          SELECT count(*) FROM gone $$;
COMMENT ON FUNCTION live_events_purge() IS
    'Deletes live events older than recovery.live_events_retention (7 days); a client that resumes from one gets a reset event. Returns how many.';
GRANT EXECUTE ON FUNCTION live_events_purge() TO recovery_admin;

REVOKE ALL ON FUNCTION live_events_announce(), live_events_commits(), live_events_wait(bigint, integer),
    live_event(text, bigint, bigint, jsonb), live_event_case(),
    live_event_case_child(), live_event_notification(), live_event_extraction(),
    live_event_task(), live_event_json(live_events), live_events_read(xid8, bigint, integer, integer),
    live_event_types_for_caller(text), live_events_start(text),
    api_events_open(text, text, text, bigint), api_events_ticket(), live_events_purge()
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION live_events_read(xid8, bigint, integer, integer) TO recovery_authenticator;
GRANT EXECUTE ON FUNCTION live_events_commits(), live_events_wait(bigint, integer)
    TO recovery_authenticator, recovery_admin;
GRANT EXECUTE ON FUNCTION api_events_open(text, text, text, bigint), api_events_ticket()
    TO recovery_viewer, recovery_auditor;
GRANT EXECUTE ON FUNCTION live_events_purge() TO recovery_admin;
