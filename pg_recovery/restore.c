/*
 * restore.c
 *		A database restored from a dump with pg_restore.  The dump brought
 *		the audit trail, so the restore's own writes add none (the trigger
 *		asks recovery_restoring()); and the copy must not send what its
 *		original already sent, so the first row restored holds reminders,
 *		delivery and the scheduled jobs (recovery.restore_holds) until an
 *		operator calls recovery.restore_release().
 *
 * A restore is a superuser's session whose application_name is pg_restore's
 * own.  A superuser can switch triggers off anyway, so telling the audit
 * trigger to stand aside gives nobody a power they did not have.
 */
#include "recovery.h"

#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/guc.h"

/* the transaction that recorded the hold, so each records it once */
static LocalTransactionId hold_noted_in = InvalidLocalTransactionId;

/* the answer of recovery_restoring(), asked once a transaction: the audit
 * trigger asks for every row */
static LocalTransactionId restoring_asked_in = InvalidLocalTransactionId;
static bool restoring;

bool
recovery_restoring(void)
{
	const char *application;

	if (restoring_asked_in != MyProc->lxid)
	{
		application = GetConfigOption("application_name", true, false);
		restoring = application != NULL && strcmp(application, "pg_restore") == 0
			&& superuser_arg(GetSessionUserId());
		restoring_asked_in = MyProc->lxid;
	}
	return restoring;
}

/* Called by the audit trigger in a restore: the copy holds until released. */
void
recovery_restore_hold(void)
{
	if (hold_noted_in == MyProc->lxid)
		return;

	/* first, or the hold's own audit trigger would come back here */
	hold_noted_in = MyProc->lxid;
	SPI_connect();
	recovery_spi_exec("INSERT INTO recovery.restore_holds DEFAULT VALUES "
					  "ON CONFLICT ((true)) WHERE released_at IS NULL DO NOTHING",
					  0, NULL, NULL, NULL, SPI_OK_INSERT);
	SPI_finish();
}

/* Whether a restore holds this database; needs an SPI connection. */
bool
recovery_restore_held(void)
{
	recovery_spi_exec("SELECT 1 FROM recovery.restore_holds WHERE released_at IS NULL",
					  0, NULL, NULL, NULL, SPI_OK_SELECT);
	return SPI_processed > 0;
}

/*
 * recovery.restoring() returns boolean
 *
 * Whether this session is a pg_restore (for the SQL triggers that, like the
 * audit trigger, must stand aside: live events record changes, and a
 * restore changes nothing).
 */
PG_FUNCTION_INFO_V1(recovery_restoring_sql);

Datum
recovery_restoring_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(recovery_restoring());
}
