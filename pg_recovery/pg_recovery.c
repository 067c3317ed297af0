/*
 * pg_recovery.c
 *		Entry point of the pg_recovery extension: module magic, settings
 *		and the delivery worker's registration.  Each concern lives in its own file.
 */
#include "recovery.h"
#include "pii.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* read and set by recovery.idempotency_begin() (SQL) */
static int	idempotency_ttl = 86400;
static char *idempotency_replay = NULL;

/* read by recovery.live_events_purge() (SQL) */
static int	live_events_retention = 7 * 86400;

void
_PG_init(void)
{
	recovery_define_context_gucs();
	recovery_define_password_gucs();
	DefineCustomIntVariable("recovery.idempotency_ttl",
							"How long the response to an Idempotency-Key is kept for retries.",
							NULL,
							&idempotency_ttl, 86400, 60, 30 * 86400,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomStringVariable("recovery.idempotency_replay",
							   "The Idempotency-Key whose stored response this transaction replays.",
							   "Set by recovery.idempotency_begin() for the rest of the transaction.",
							   &idempotency_replay, "", PGC_USERSET, GUC_NO_SHOW_ALL,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("recovery.live_events_retention",
							"How long live events are kept for clients that resume a stream.",
							"A client that resumes from an older event is told to reload (a reset event).",
							&live_events_retention, 7 * 86400, 60, 365 * 86400,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	recovery_define_render_gucs();
	recovery_define_contact_gucs();
	recovery_define_delivery_gucs();
	recovery_define_extraction_gucs();
	recovery_define_parse_gucs();
	recovery_define_erasure_gucs();
	recovery_define_pii_gucs();
	MarkGUCPrefixReserved("recovery");
	recovery_audit_init();
	recovery_live_events_init();
	recovery_pii_keys_init();
	/* the delivery worker exists only when loaded at server start */
	if (process_shared_preload_libraries_in_progress)
		recovery_register_delivery_worker();
}
