/*
 * reminders.c
 *		run_reminders(): the dunning run that pg_cron calls every minute.
 *		It finds the recovery cases whose next dunning step is due and
 *		writes one notification per case and step into the outbox.
 *
 * The work is set-based, one INSERT ... SELECT per range of case ids, and
 * the procedure commits after every range, so a million open cases never
 * make one long transaction and memory stays bounded.  A unique index on
 * (case_id, step_no) makes it idempotent: running it twice, or in two
 * sessions at once, never queues a step twice.
 */
#include "recovery.h"

#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

/*
 * One range of cases: the latest due step of each case that has not had
 * it (or a later one) yet, in the customer's locale, sent when the quiet
 * hours of the customer's time zone allow.  Disputed and escalated cases,
 * closed ones, cases with a pending promise or instalment, cases on hold
 * and erased customers get nothing.
 */
static const char *const queue_range_sql =
"INSERT INTO recovery.notifications "
"       (case_id, customer_id, channel, template_id, step_no, dunning_policy_id, "
"        send_after, created_by) "
"SELECT c.id, c.customer_id, step.channel, tpl.id, step.step_no, pol.id, "
"       recovery.contact_window_opens(cu.time_zone, $1), 'run_reminders' "
"FROM recovery.recovery_cases c "
"JOIN recovery.customers cu ON cu.id = c.customer_id "
"JOIN recovery.dunning_policies pol ON pol.id = coalesce(c.dunning_policy_id, cu.dunning_policy_id, "
"     (SELECT d.id FROM recovery.dunning_policies d WHERE d.is_default)) "
"CROSS JOIN LATERAL (SELECT min(p.due_date) AS first_due FROM recovery.payments p "
"                     WHERE p.case_id = c.id AND p.outstanding > 0 AND p.kind = 'principal') due "
"CROSS JOIN LATERAL ("
"     SELECT s.ordinality::integer AS step_no, s.value ->> 'channel' AS channel, "
"            s.value ->> 'template' AS template "
"     FROM jsonb_array_elements(pol.steps) WITH ORDINALITY AS s "
"     WHERE due.first_due + (s.value ->> 'offset_days')::integer "
"           <= recovery.local_date(cu.time_zone, $1) "
"     ORDER BY s.ordinality DESC LIMIT 1) step "
"CROSS JOIN LATERAL ("
"     SELECT t.id FROM recovery.templates t "
"     WHERE t.name = step.template AND t.channel = step.channel "
"     ORDER BY t.locale = cu.locale DESC, "
"              split_part(t.locale, '-', 1) = split_part(cu.locale, '-', 1) DESC, t.locale "
"     LIMIT 1) tpl "
"WHERE c.id > $2 AND c.id <= $3 "
"  AND NOT recovery.case_state_is_terminal(c.state) "
"  AND c.state NOT IN ('disputed', 'escalated') "
"  AND cu.erased_at IS NULL "
"  AND NOT EXISTS (SELECT 1 FROM recovery.promises pr "
"                  WHERE pr.case_id = c.id AND pr.outcome = 'pending') "
"  AND NOT EXISTS (SELECT 1 FROM recovery.dunning_holds h "
"                  WHERE h.customer_id = c.customer_id AND (h.case_id IS NULL OR h.case_id = c.id) "
"                    AND h.released_at IS NULL AND $1 >= h.starts_at AND $1 < h.ends_at) "
"  AND step.step_no > coalesce((SELECT max(n.step_no) FROM recovery.notifications n "
"                               WHERE n.case_id = c.id), 0) "
"ON CONFLICT (case_id, step_no) WHERE step_no IS NOT NULL DO NOTHING";

/* the last case id of the next range, NULL after the last case */
static const char *const range_end_sql =
"SELECT max(id) FROM (SELECT id FROM recovery.recovery_cases "
"                     WHERE id > $1 ORDER BY id LIMIT $2) AS next_range";

static int64
queue_range(TimestampTz now, int64 after_case_id, int64 up_to_case_id)
{
	Oid			argtypes[3] = {TIMESTAMPTZOID, INT8OID, INT8OID};
	Datum		values[3];

	values[0] = TimestampTzGetDatum(now);
	values[1] = Int64GetDatum(after_case_id);
	values[2] = Int64GetDatum(up_to_case_id);
	recovery_spi_exec(queue_range_sql, 3, argtypes, values, NULL, SPI_OK_INSERT);
	return (int64) SPI_processed;
}

static bool
next_range_end(int64 after_case_id, int batch_size, int64 *range_end)
{
	Oid			argtypes[2] = {INT8OID, INT4OID};
	Datum		values[2];
	bool		isnull;

	values[0] = Int64GetDatum(after_case_id);
	values[1] = Int32GetDatum(batch_size);
	recovery_spi_exec(range_end_sql, 2, argtypes, values, NULL, SPI_OK_SELECT);
	*range_end = recovery_spi_int64(0, 1, &isnull);
	return !isnull;
}

static void
record_run(TimestampTz started, TimestampTz as_of, int64 scanned_up_to,
		   int batches, int64 queued)
{
	Oid			argtypes[5] = {TIMESTAMPTZOID, TIMESTAMPTZOID, INT8OID, INT4OID, INT8OID};
	Datum		values[5];

	values[0] = TimestampTzGetDatum(started);
	values[1] = TimestampTzGetDatum(as_of);
	values[2] = Int64GetDatum(scanned_up_to);
	values[3] = Int32GetDatum(batches);
	values[4] = Int64GetDatum(queued);
	recovery_spi_exec("INSERT INTO recovery.reminder_runs "
					  "(started_at, as_of, last_case_id, batches, queued) "
					  "VALUES ($1, $2, $3, $4, $5)",
					  5, argtypes, values, NULL, SPI_OK_INSERT);
}

/* pg_cron runs as the superuser; automation clients and admins may too */
static void
require_reminders_role(void)
{
	if (!recovery_caller_has_role("recovery_automation") &&
		!recovery_caller_has_role(RECOVERY_ROLE_ADMIN))
		recovery_require_role("recovery_automation", "run the reminders");
}

PG_FUNCTION_INFO_V1(recovery_queue_reminders);
PG_FUNCTION_INFO_V1(recovery_run_reminders);

/*
 * recovery.queue_reminders(now timestamptz, after_case_id bigint,
 *							up_to_case_id bigint) returns bigint
 *
 * One range of the run, in the caller's transaction: the number of
 * notifications queued.
 */
Datum
recovery_queue_reminders(PG_FUNCTION_ARGS)
{
	int64		queued;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("now and the range of case ids are required")));
	require_reminders_role();
	SPI_connect();
	queued = queue_range(PG_GETARG_TIMESTAMPTZ(0), PG_GETARG_INT64(1), PG_GETARG_INT64(2));
	SPI_finish();
	PG_RETURN_INT64(queued);
}

/*
 * CALL recovery.run_reminders(now timestamptz DEFAULT NULL,
 *							   batch_size integer DEFAULT 5000)
 *
 * Every case, batch_size case ids at a time, committing after each range
 * when called with CALL outside a transaction block (pg_cron does); in a
 * transaction block it does the same work in that one transaction.
 */
Datum
recovery_run_reminders(PG_FUNCTION_ARGS)
{
	CallContext *call = (CallContext *) fcinfo->context;
	bool		atomic = !(call && IsA(call, CallContext) && !call->atomic);
	TimestampTz started = GetCurrentTimestamp();
	TimestampTz now = PG_ARGISNULL(0) ? started : PG_GETARG_TIMESTAMPTZ(0);
	int			batch_size = PG_ARGISNULL(1) ? 5000 : PG_GETARG_INT32(1);
	int64		after = 0;
	int64		range_end;
	int64		queued = 0;
	int			batches = 0;
	instr_time	start_time,
				duration;

	if (batch_size < 1 || batch_size > 1000000)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("batch_size must be between 1 and 1000000"),
				 errdetail("It is %d.", batch_size),
				 errhint("A few thousand cases per transaction is the sweet spot.")));
	require_reminders_role();

	INSTR_TIME_SET_CURRENT(start_time);
	SPI_connect_ext(atomic ? 0 : SPI_OPT_NONATOMIC);
	if (recovery_restore_held())
	{
		SPI_finish();
		ereport(NOTICE,
				(errmsg("run_reminders: nothing queued: this database was restored from a dump and holds"),
				 errdetail("A copy must not send reminders its original already sent."),
				 errhint("Once the copy should work on its own, run SELECT recovery.restore_release().")));
		PG_RETURN_VOID();
	}
	while (next_range_end(after, batch_size, &range_end))
	{
		queued += queue_range(now, after, range_end);
		after = range_end;
		batches++;
		if (!atomic)
			SPI_commit();
		if (batches % 100 == 0)
			ereport(NOTICE,
					(errmsg("run_reminders: %d batches, cases up to id %lld, %lld notifications queued",
							batches, (long long) after, (long long) queued)));
	}
	/* the automation contract's reminder tasks that are due */
	{
		Oid			argtypes[1] = {TIMESTAMPTZOID};
		Datum		values[1] = {TimestampTzGetDatum(now)};

		recovery_spi_exec("SELECT recovery.perform_reminder_tasks($1)",
						  1, argtypes, values, NULL, SPI_OK_SELECT);
	}
	record_run(started, now, after, batches, queued);
	if (!atomic)
		SPI_commit();
	SPI_finish();

	INSTR_TIME_SET_CURRENT(duration);
	INSTR_TIME_SUBTRACT(duration, start_time);
	/* quiet when a run finds nothing: pg_cron calls it every minute */
	if (queued > 0 || INSTR_TIME_GET_DOUBLE(duration) > 10.0)
		ereport(LOG,
				(errmsg("run_reminders: queued %lld notifications over %d batches of up to %d cases in %.1f s",
						(long long) queued, batches, batch_size,
						INSTR_TIME_GET_DOUBLE(duration))));
	PG_RETURN_VOID();
}
