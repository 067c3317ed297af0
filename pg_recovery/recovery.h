/*
 * recovery.h
 *		Shared declarations of the pg_recovery extension: our SQLSTATEs,
 *		the request context and the helpers every concern uses.
 *
 * The SQLSTATE table is documented in README.md; the REST gateway maps
 * it to HTTP statuses, so a code once shipped never changes meaning.
 */
#ifndef RECOVERY_H
#define RECOVERY_H

#include "postgres.h"
#include "access/htup_details.h"
#include "utils/timestamp.h"

#include "utils/jsonb.h"

/* Class PR: payment recovery business errors. */
#define ERRCODE_RECOVERY_ILLEGAL_TRANSITION	MAKE_SQLSTATE('P','R','0','0','1')
#define ERRCODE_RECOVERY_STALE_VERSION		MAKE_SQLSTATE('P','R','0','0','2')
#define ERRCODE_RECOVERY_NOT_FOUND			MAKE_SQLSTATE('P','R','0','0','3')
#define ERRCODE_RECOVERY_VALIDATION			MAKE_SQLSTATE('P','R','0','0','4')
#define ERRCODE_RECOVERY_CURRENCY_MISMATCH	MAKE_SQLSTATE('P','R','0','0','5')
#define ERRCODE_RECOVERY_OVERPAYMENT		MAKE_SQLSTATE('P','R','0','0','6')
#define ERRCODE_RECOVERY_AUTH_FAILED		MAKE_SQLSTATE('P','R','0','0','7')
#define ERRCODE_RECOVERY_AUDIT_IMMUTABLE	MAKE_SQLSTATE('P','R','0','0','8')
#define ERRCODE_RECOVERY_CONFLICT			MAKE_SQLSTATE('P','R','0','0','9')
/* raised by recovery.idempotency_begin() (SQL) */
#define ERRCODE_RECOVERY_IDEMPOTENCY_REUSED	MAKE_SQLSTATE('P','R','0','1','0')

/* Roles created by the install script; see sql/src/roles.sql. */
#define RECOVERY_ROLE_ADMIN			"recovery_admin"
#define RECOVERY_ROLE_MANAGER		"recovery_manager"

/* context.c: who is acting, for case events and the audit trail */
typedef struct RecoveryActor
{
	const char *actor;			/* application user, else session_user */
	int64		user_id;		/* application user id, 0 when none */
	const char *db_user;		/* session_user */
	const char *db_role;		/* the role in effect (SET ROLE) */
	const char *request_id;		/* request id, NULL when none */
} RecoveryActor;

extern void recovery_define_context_gucs(void);
extern void recovery_current_actor(RecoveryActor *actor);
extern void recovery_require_role(const char *rolename, const char *action);
extern bool recovery_caller_has_role(const char *rolename);

/* currencies.c: amounts checked, and written for messages a person reads */
extern char *recovery_format_money(int64 amount, const char *currency);
extern void recovery_check_currency(const char *currency);
extern void recovery_check_amount(int64 amount, const char *what);

/* A recovery case as read, locked, before a change. */
typedef struct RecoveryCase
{
	char	   *state;
	int32		version;
	int64		balance;
	char	   *currency;
	int64		customer_id;
} RecoveryCase;

/* state_machine.c: the case as money.c changes it too */
extern void recovery_lock_case(int64 case_id, RecoveryCase *rcase);
extern bool recovery_state_is_terminal(const char *state);
extern int64 recovery_insert_case_event(int64 case_id, int64 customer_id,
										const char *event,
										const char *from_state,
										const char *to_state,
										const char *reason,
										Jsonb *details);
extern HeapTupleHeader recovery_case_row(int64 case_id);

/* audit.c */
extern void recovery_audit_init(void);

/* restore.c: a database restored from a dump */
extern bool recovery_restoring(void);
extern void recovery_restore_hold(void);
extern bool recovery_restore_held(void);

/* render.c, contact_rules.c, delivery.c: settings and the worker */
extern void recovery_define_render_gucs(void);
extern void recovery_define_contact_gucs(void);
extern void recovery_define_delivery_gucs(void);
extern void recovery_define_extraction_gucs(void);
extern void recovery_define_parse_gucs(void);
extern void recovery_register_delivery_worker(void);
extern char *recovery_format_amount(int64 amount, const char *currency,
									int minor_units, const char *locale);

/* live_events.c: readers woken when events commit */
extern void recovery_live_events_init(void);

/* erasure_ledger.c: erasures recorded outside the cluster */
extern void recovery_define_erasure_gucs(void);

/* password.c */
extern void recovery_define_password_gucs(void);

/* SPI helpers (spi_util.c) */
extern void recovery_spi_exec(const char *sql, int nargs, Oid *argtypes,
							  Datum *values, const char *nulls,
							  int expected);
extern char *recovery_spi_text(int row, int col);
extern int64 recovery_spi_int64(int row, int col, bool *isnull);

#endif							/* RECOVERY_H */
