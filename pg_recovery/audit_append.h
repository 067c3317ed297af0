/*
 * audit_append.h
 *		Rows appended to recovery.audit_log (audit_append.c), for the audit
 *		trigger and its chains (audit.c).
 */
#ifndef RECOVERY_AUDIT_APPEND_H
#define RECOVERY_AUDIT_APPEND_H

#include "postgres.h"

#include "datatype/timestamp.h"

#define AUDIT_HASH_LEN		32

/* One audit row, as hashed; NULL pointers hash as SQL NULL. */
typedef struct AuditRow
{
	int32		chain;
	int64		seq;
	TimestampTz occurred_at;
	const char *actor;
	int64		actor_user_id;	/* 0: none */
	const char *db_user;
	const char *db_role;
	const char *request_id;
	const char *action;
	const char *table_name;
	const char *row_key;
	int64		customer_id;	/* 0: none */
	const uint8 *old_digest;
	const uint8 *new_digest;
	const uint8 *prev_hash;
} AuditRow;

extern void audit_append_init(void);
extern void audit_append(const AuditRow *row, const char *old_json,
						 const char *new_json, const uint8 *row_hash);
extern void audit_append_close(void);
extern void audit_append_forget(void);

#endif							/* RECOVERY_AUDIT_APPEND_H */
