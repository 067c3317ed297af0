/*
 * pg_recovery.c
 *		Entry point of the pg_recovery extension: module magic, settings
 *		and transaction callbacks.  Each concern lives in its own file.
 */
#include "recovery.h"

#include "fmgr.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	recovery_define_context_gucs();
	recovery_define_password_gucs();
	MarkGUCPrefixReserved("recovery");
	recovery_audit_init();
}
