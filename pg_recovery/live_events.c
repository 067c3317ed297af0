/*
 * live_events.c
 *		Waking the readers of live events when a transaction that wrote
 *		some commits, without NOTIFY.
 *
 * NOTIFY would do it, but PostgreSQL serializes the commits of notifying
 * transactions (PreCommit_Notify holds a lock until the commit record is
 * flushed): with an event in every case change, the write mix fell to a
 * third of its throughput (660 against 2,020 transactions a second on the
 * benchmark machine).  Instead, a transaction that recorded an event
 * (recovery.live_events_announce(), called by recovery.live_event())
 * counts its commit in shared memory and broadcasts a condition variable,
 * after the commit is visible; readers sleep on it in
 * recovery.live_events_wait().  Nothing is serialized.
 *
 * The shared memory needs the library in shared_preload_libraries (as the
 * delivery worker does).  Without it, live_events_wait() sleeps 50 ms and
 * the readers poll.
 */
#include "recovery.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#define POLL_WITHOUT_PRELOAD_MS 50

typedef struct LiveEventsShared
{
	pg_atomic_uint64 commits;	/* of transactions that wrote events */
	ConditionVariable committed;
} LiveEventsShared;

static LiveEventsShared *shared = NULL;
static bool wrote_events = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
live_events_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(LiveEventsShared)));
}

static void
live_events_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("pg_recovery live events", sizeof(LiveEventsShared), &found);
	if (!found)
	{
		pg_atomic_init_u64(&shared->commits, 0);
		ConditionVariableInit(&shared->committed);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* after the commit is visible to everyone (ProcArrayEndTransaction) */
static void
live_events_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (wrote_events && shared)
			{
				pg_atomic_fetch_add_u64(&shared->commits, 1);
				ConditionVariableBroadcast(&shared->committed);
			}
			wrote_events = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* a prepared transaction's events wake nobody: readers poll */
			wrote_events = false;
			break;
		default:
			break;
	}
}

void
recovery_live_events_init(void)
{
	if (process_shared_preload_libraries_in_progress)
	{
		prev_shmem_request_hook = shmem_request_hook;
		shmem_request_hook = live_events_shmem_request;
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = live_events_shmem_startup;
	}
	RegisterXactCallback(live_events_xact_callback, NULL);
}

/*
 * recovery.live_events_announce() returns void
 *
 * This transaction wrote live events: wake the readers when it commits.
 */
PG_FUNCTION_INFO_V1(recovery_live_events_announce);

Datum
recovery_live_events_announce(PG_FUNCTION_ARGS)
{
	wrote_events = true;
	PG_RETURN_VOID();
}

/*
 * recovery.live_events_commits() returns bigint
 *
 * How many transactions that wrote events have committed since the server
 * started; -1 without the shared memory (not preloaded).
 */
PG_FUNCTION_INFO_V1(recovery_live_events_commits);

Datum
recovery_live_events_commits(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(shared ? (int64) pg_atomic_read_u64(&shared->commits) : -1);
}

/*
 * recovery.live_events_wait(seen bigint, timeout_ms integer) returns bigint
 *
 * Sleeps until the count of live_events_commits() is no longer seen, or
 * timeout_ms have passed; returns the count.  Without the shared memory it
 * sleeps 50 ms at most and returns -1: the caller polls.
 */
PG_FUNCTION_INFO_V1(recovery_live_events_wait);

Datum
recovery_live_events_wait(PG_FUNCTION_ARGS)
{
	int64		seen = PG_GETARG_INT64(0);
	int32		timeout_ms = PG_GETARG_INT32(1);
	TimestampTz deadline;
	long		left_ms;

	if (timeout_ms < 0 || timeout_ms > 3600 * 1000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout_ms must be between 0 and 3600000, not %d", timeout_ms)));

	if (shared == NULL)
	{
		pg_usleep(1000L * Min(timeout_ms, POLL_WITHOUT_PRELOAD_MS));
		CHECK_FOR_INTERRUPTS();
		PG_RETURN_INT64(-1);
	}

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	ConditionVariablePrepareToSleep(&shared->committed);
	for (;;)
	{
		if ((int64) pg_atomic_read_u64(&shared->commits) != seen)
			break;
		left_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (left_ms <= 0)
			break;
		(void) ConditionVariableTimedSleep(&shared->committed, left_ms, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();

	PG_RETURN_INT64((int64) pg_atomic_read_u64(&shared->commits));
}
