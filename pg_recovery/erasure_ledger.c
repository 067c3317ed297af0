/*
 * erasure_ledger.c
 *		The erasure ledger: a file outside the cluster with one line per
 *		erased customer (when, and the customer's id: nothing personal).
 *
 * A restore to a time before an erasure brings the customer's personal
 * data back, and so does a backup taken before it.  The ledger is what a
 * restore cannot roll back: recovery.erasure_ledger_replay() erases again
 * every customer it names, and scripts/backup.sh runs it after every
 * restore, before the cluster takes traffic.
 *
 * customer_erase() calls recovery.erasure_ledger_record(); the lines are
 * written and flushed to disk just before the transaction commits, so that
 * a committed erasure is always in the ledger.  Should the commit fail
 * after that (a crash at that very moment), the ledger names an erasure
 * the database does not have, and the next restore carries it out: the
 * error is on the side of erasing, which an administrator asked for.
 */
#include "recovery.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/xact.h"
#include "fmgr.h"
#include "nodes/pg_list.h"
#include "pgtime.h"
#include "storage/fd.h"
#include "utils/guc.h"
#include "utils/memutils.h"

/* recovery.erasure_ledger: the file; empty, no ledger */
static char *erasure_ledger_path = NULL;

/* an erasure of this transaction, and the subtransaction that made it */
typedef struct PendingErasure
{
	int64		customer_id;
	SubTransactionId subid;
} PendingErasure;

/* in TopTransactionContext, so gone at the end of the transaction */
static List *pending = NIL;

/*
 * The errors are the server's (58030, io_error), whatever errno says: the
 * administrator who erases may do so, the file is what is wrong.
 */
static void ledger_failed(const char *action) pg_attribute_noreturn();

static void
ledger_failed(const char *action)
{
	ereport(ERROR,
			(errcode(ERRCODE_IO_ERROR),
			 errmsg("could not %s the erasure ledger \"%s\": %m",
					action, erasure_ledger_path),
			 errdetail("The erasure is not committed: a restore from an older "
					   "backup would bring the customer's personal data back."),
			 errhint("Check that the postgres user can write the file that "
					 "recovery.erasure_ledger names.")));
}

static void
write_all(int fd, const char *data, size_t len)
{
	while (len > 0)
	{
		ssize_t		n;

		errno = 0;
		n = write(fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
		{
			/* a write that wrote nothing and said nothing: the disk is full */
			if (errno == 0)
				errno = ENOSPC;
			ledger_failed("write");
		}
		data += n;
		len -= n;
	}
}

/*
 * The pending erasures as ledger lines: "42<TAB>2026-12-06T05:10:00Z".  The
 * id comes first so that a line cut short by a failed write can never pass
 * for a whole one naming another customer: it lacks its time.
 */
static char *
ledger_lines(void)
{
	StringInfoData lines;
	pg_time_t	now = timestamptz_to_time_t(GetCurrentTransactionStartTimestamp());
	char		when[32];
	ListCell   *lc;

	pg_strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", pg_gmtime(&now));
	initStringInfo(&lines);
	foreach(lc, pending)
	{
		PendingErasure *erasure = lfirst(lc);

		appendStringInfo(&lines, INT64_FORMAT "\t%s\n", erasure->customer_id, when);
	}
	return lines.data;
}

static void
ledger_write(void)
{
	char	   *lines = ledger_lines();
	bool		created = access(erasure_ledger_path, F_OK) != 0;
	struct stat st;
	char		last = '\n';
	int			fd;

	fd = OpenTransientFilePerm(erasure_ledger_path,
							   O_RDWR | O_APPEND | O_CREAT | PG_BINARY,
							   S_IRUSR | S_IWUSR);
	if (fd < 0)
		ledger_failed("open");
	/* a line cut short by a failed write is ended, never continued */
	if (fstat(fd, &st) == 0 && st.st_size > 0 &&
		pg_pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n')
		write_all(fd, "\n", 1);
	write_all(fd, lines, strlen(lines));
	if (pg_fsync(fd) != 0)
		ledger_failed("flush");
	CloseTransientFile(fd);
	/* a new file's name must survive a crash too */
	if (created)
	{
		char	   *dir = pstrdup(erasure_ledger_path);

		get_parent_directory(dir);
		fsync_fname(dir[0] ? dir : ".", true);
	}
}

static void
ledger_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (pending != NIL && erasure_ledger_path[0] != '\0')
				ledger_write();
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (pending != NIL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that erased a customer"),
						 errdetail("The erasure ledger is written at commit.")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			pending = NIL;
			break;
		default:
			break;
	}
}

/* An erasure rolled back with its subtransaction leaves no line. */
static void
ledger_subxact_callback(SubXactEvent event, SubTransactionId subid,
						SubTransactionId parent, void *arg)
{
	ListCell   *lc;

	foreach(lc, pending)
	{
		PendingErasure *erasure = lfirst(lc);

		if (erasure->subid != subid)
			continue;
		if (event == SUBXACT_EVENT_COMMIT_SUB)
			erasure->subid = parent;
		else if (event == SUBXACT_EVENT_ABORT_SUB)
			pending = foreach_delete_current(pending, lc);
	}
}

void
recovery_define_erasure_gucs(void)
{
	DefineCustomStringVariable("recovery.erasure_ledger",
							   "The file where every customer erasure is recorded, outside the cluster.",
							   "scripts/backup.sh erases them again after a restore. Empty: no ledger.",
							   &erasure_ledger_path, "", PGC_SUSET, 0,
							   NULL, NULL, NULL);
	RegisterXactCallback(ledger_xact_callback, NULL);
	RegisterSubXactCallback(ledger_subxact_callback, NULL);
}

/*
 * recovery.erasure_ledger_record(customer_id bigint) returns void
 *
 * Called by customer_erase(): the customer goes into the ledger when the
 * transaction commits.
 */
PG_FUNCTION_INFO_V1(recovery_erasure_ledger_record);

Datum
recovery_erasure_ledger_record(PG_FUNCTION_ARGS)
{
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
	PendingErasure *erasure = palloc(sizeof(PendingErasure));

	erasure->customer_id = PG_GETARG_INT64(0);
	erasure->subid = GetCurrentSubTransactionId();
	pending = lappend(pending, erasure);
	MemoryContextSwitchTo(old);
	PG_RETURN_VOID();
}
