/*
 * audit.c
 *		The audit trail: a C trigger that writes one hash-chained row to
 *		recovery.audit_log for every insert, update and delete of a business
 *		table, recovery.audit_verify() that walks the chains, and the trigger
 *		that makes audit rows append-only.
 *
 * Concurrency: there are AUDIT_CHAINS independent chains.  A transaction
 * that writes audit rows takes one chain with a transaction-level advisory
 * lock, trying each chain without waiting before it waits for one, and
 * appends all its rows to that chain; the lock is held to commit, so each
 * chain grows one transaction at a time and stays linear, while up to
 * AUDIT_CHAINS writers append at once without waiting on each other.
 *
 * Erasure: a row hash covers the SHA-256 digests of the old and new row,
 * not the row text, so personal data can later be erased from old_row and
 * new_row while the chain still verifies: erasure stores the digests of
 * what it removes in old_digest and new_digest and sets erased_at, and so
 * does the sealing of rows written before encryption (encrypt_existing(),
 * without erased_at).  Other rows store neither digests nor the previous
 * hash, which the walk recomputes: the trail is a large part of every
 * write's WAL.
 */
#include "recovery.h"
#include "audit_append.h"

#include <openssl/evp.h>

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#define AUDIT_CHAINS		16
#define AUDIT_LOCK_CLASS	0x52435652	/* "RCVR": advisory lock key space */
#define AUDIT_VERIFY_BATCH	2000

/*
 * The chain this transaction appends to, the subtransaction that took its
 * lock (an abort of that one releases it), and the chain's last row.
 */
static int	held_chain = -1;
static SubTransactionId held_chain_subid = InvalidSubTransactionId;
static bool tail_known = false;
static int64 tail_seq;
static uint8 tail_hash[AUDIT_HASH_LEN];

static SPIPlanPtr tail_plan = NULL;

static void
forget_chain(void)
{
	held_chain = -1;
	tail_known = false;
}

static void
audit_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			/* every audit row is written by now: triggers have fired */
			audit_append_close();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			audit_append_forget();
			forget_chain();
			break;
		default:
			break;
	}
}

/*
 * Rows of an aborted subtransaction are gone: read the tail again.  The
 * chain goes too only if that subtransaction took it (its lock went with
 * it); taken before, the lock is still ours, and the transaction's rows
 * stay together on it.
 */
static void
audit_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_COMMIT_SUB && held_chain_subid == mySubid)
		held_chain_subid = parentSubid;
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		if (held_chain_subid == mySubid)
			forget_chain();
		tail_known = false;
		audit_append_close();
	}
}

void
recovery_audit_init(void)
{
	RegisterXactCallback(audit_xact_callback, NULL);
	RegisterSubXactCallback(audit_subxact_callback, NULL);
	audit_append_init();
}

static void
hash_field(EVP_MD_CTX *ctx, const void *bytes, int32 len)
{
	uint32		be_len = pg_hton32((uint32) len);

	EVP_DigestUpdate(ctx, &be_len, sizeof(be_len));
	if (len > 0)
		EVP_DigestUpdate(ctx, bytes, len);
}

static void
hash_text(EVP_MD_CTX *ctx, const char *s)
{
	hash_field(ctx, s, s ? (int32) strlen(s) : -1);
}

static void
hash_int64(EVP_MD_CTX *ctx, int64 v, bool isnull)
{
	uint64		be = pg_hton64((uint64) v);

	hash_field(ctx, &be, isnull ? -1 : (int32) sizeof(be));
}

static void
sha256(const char *bytes, size_t len, uint8 *out)
{
	if (EVP_Digest(bytes, len, out, NULL, EVP_sha256(), NULL) != 1)
		elog(ERROR, "SHA-256 failed");
}

/*
 * The row hash: SHA-256 over a version tag, the previous row's hash and
 * every field, each length-prefixed so that no two rows hash alike.
 */
static void
audit_row_hash(const AuditRow *row, uint8 *out)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		elog(ERROR, "could not initialise SHA-256");
	hash_text(ctx, "pg_recovery audit v1");
	hash_field(ctx, row->prev_hash, AUDIT_HASH_LEN);
	hash_int64(ctx, row->chain, false);
	hash_int64(ctx, row->seq, false);
	hash_int64(ctx, row->occurred_at, false);
	hash_text(ctx, row->actor);
	hash_int64(ctx, row->actor_user_id, row->actor_user_id == 0);
	hash_text(ctx, row->db_user);
	hash_text(ctx, row->db_role);
	hash_text(ctx, row->request_id);
	hash_text(ctx, row->action);
	hash_text(ctx, row->table_name);
	hash_text(ctx, row->row_key);
	hash_int64(ctx, row->customer_id, row->customer_id == 0);
	hash_field(ctx, row->old_digest, row->old_digest ? AUDIT_HASH_LEN : -1);
	hash_field(ctx, row->new_digest, row->new_digest ? AUDIT_HASH_LEN : -1);
	if (EVP_DigestFinal_ex(ctx, out, NULL) != 1)
	{
		EVP_MD_CTX_free(ctx);
		elog(ERROR, "SHA-256 failed");
	}
	EVP_MD_CTX_free(ctx);
}

/* Take a chain for this transaction: any free one, else wait for ours. */
static void
claim_chain(void)
{
	int			i;
	int			chain;

	if (held_chain >= 0)
		return;
	for (i = 0; i < AUDIT_CHAINS; i++)
	{
		chain = (MyProcPid + i) % AUDIT_CHAINS;
		if (DatumGetBool(DirectFunctionCall2(pg_try_advisory_xact_lock_int4,
											 Int32GetDatum(AUDIT_LOCK_CLASS),
											 Int32GetDatum(chain))))
		{
			held_chain = chain;
			held_chain_subid = GetCurrentSubTransactionId();
			return;
		}
	}
	chain = MyProcPid % AUDIT_CHAINS;
	DirectFunctionCall2(pg_advisory_xact_lock_int4,
						Int32GetDatum(AUDIT_LOCK_CLASS), Int32GetDatum(chain));
	held_chain = chain;
	held_chain_subid = GetCurrentSubTransactionId();
}

/*
 * Read the last row of our chain.  The latest snapshot, not the
 * transaction's, so that a REPEATABLE READ writer sees the rows committed
 * by the chain's previous holder.
 */
static void
read_chain_tail(void)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1];
	int			rc;

	if (tail_known)
		return;
	SPI_connect();
	if (tail_plan == NULL)
	{
		tail_plan = SPI_prepare("SELECT seq, row_hash FROM recovery.audit_log "
								"WHERE chain = $1 ORDER BY seq DESC LIMIT 1",
								1, argtypes);
		if (tail_plan == NULL)
			elog(ERROR, "could not prepare the audit chain tail query");
		SPI_keepplan(tail_plan);
	}
	values[0] = Int32GetDatum(held_chain);
	rc = SPI_execute_snapshot(tail_plan, values, NULL, GetLatestSnapshot(),
							  InvalidSnapshot, true, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "audit chain tail query failed: %s",
			 SPI_result_code_string(rc));
	if (SPI_processed == 0)
	{
		tail_seq = 0;
		memset(tail_hash, 0, AUDIT_HASH_LEN);
	}
	else
	{
		bool		isnull;
		Datum		hash_datum;
		bytea	   *hash = NULL;

		tail_seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 1, &isnull));
		hash_datum = SPI_getbinval(SPI_tuptable->vals[0],
								   SPI_tuptable->tupdesc, 2, &isnull);
		if (!isnull)
			hash = DatumGetByteaPP(hash_datum);
		if (hash == NULL || VARSIZE_ANY_EXHDR(hash) != AUDIT_HASH_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("audit chain %d ends in a row without a valid hash",
							held_chain),
					 errhint("Run recovery.audit_verify() to find the damaged row.")));
		memcpy(tail_hash, VARDATA_ANY(hash), AUDIT_HASH_LEN);
	}
	SPI_finish();
	tail_known = true;
}

/* Whether the trigger's arguments name this column to leave out. */
static bool
is_redacted(Trigger *trigger, const char *column)
{
	int			i;

	for (i = 0; i < trigger->tgnargs; i++)
		if (strcmp(trigger->tgargs[i], column) == 0)
			return true;
	return false;
}

/*
 * Some columns of a row as JSON text: all of them, or only those listed in
 * "columns" (attribute numbers); redacted columns are null.
 */
static char *
row_json(TriggerData *trigdata, HeapTuple tuple, AttrNumber *columns,
		 int ncolumns)
{
	Trigger    *trigger = trigdata->tg_trigger;
	TupleDesc	tupdesc = RelationGetDescr(trigdata->tg_relation);
	TupleDesc	out_desc;
	Datum	   *values;
	bool	   *nulls;
	int			i;

	if (columns == NULL)
	{
		ncolumns = tupdesc->natts;
		out_desc = tupdesc;
	}
	else
	{
		out_desc = CreateTemplateTupleDesc(ncolumns);
		for (i = 0; i < ncolumns; i++)
			TupleDescCopyEntry(out_desc, i + 1, tupdesc, columns[i]);
		out_desc = BlessTupleDesc(out_desc);
	}

	values = palloc(sizeof(Datum) * ncolumns);
	nulls = palloc(sizeof(bool) * ncolumns);
	for (i = 0; i < ncolumns; i++)
	{
		AttrNumber	attnum = columns ? columns[i] : i + 1;
		Form_pg_attribute att = TupleDescAttr(tupdesc, attnum - 1);

		values[i] = heap_getattr(tuple, attnum, tupdesc, &nulls[i]);
		if (!att->attisdropped && is_redacted(trigger, NameStr(att->attname)))
			nulls[i] = true;
	}
	tuple = heap_form_tuple(out_desc, values, nulls);
	return text_to_cstring(DatumGetTextPP(
										  DirectFunctionCall1(row_to_json,
															  heap_copy_tuple_as_datum(tuple, out_desc))));
}

/*
 * The columns an UPDATE changed, by attribute number; returns how many.
 * The trail keeps their old and new values only: the INSERT and the
 * UPDATEs before it give the rest of the row, and the trail is a large
 * part of the WAL every write makes.
 */
static int
changed_columns(TriggerData *trigdata, HeapTuple old_tuple,
				HeapTuple new_tuple, AttrNumber *changed)
{
	TupleDesc	tupdesc = RelationGetDescr(trigdata->tg_relation);
	int			nchanged = 0;
	int			i;

	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		bool		old_null;
		bool		new_null;
		Datum		old_value;
		Datum		new_value;

		if (att->attisdropped)
			continue;
		old_value = heap_getattr(old_tuple, i + 1, tupdesc, &old_null);
		new_value = heap_getattr(new_tuple, i + 1, tupdesc, &new_null);
		if (old_null != new_null ||
			(!old_null && !datumIsEqual(old_value, new_value,
										att->attbyval, att->attlen)))
			changed[nchanged++] = i + 1;
	}
	return nchanged;
}

/* The customer a row belongs to: customers.id, else a customer_id column. */
static int64
row_customer_id(TriggerData *trigdata, HeapTuple tuple)
{
	TupleDesc	tupdesc = RelationGetDescr(trigdata->tg_relation);
	const char *column = strcmp(RelationGetRelationName(trigdata->tg_relation),
								"customers") == 0 ? "id" : "customer_id";
	int			attnum = SPI_fnumber(tupdesc, column);
	bool		isnull;
	Datum		d;

	if (attnum <= 0 || TupleDescAttr(tupdesc, attnum - 1)->atttypid != INT8OID)
		return 0;
	d = SPI_getbinval(tuple, tupdesc, attnum, &isnull);
	return isnull ? 0 : DatumGetInt64(d);
}

/* The digest of a row's JSON as hashed into the chain; NULL for no row. */
static const uint8 *
json_digest(const char *json, uint8 *digest)
{
	if (json == NULL)
		return NULL;
	sha256(json, strlen(json), digest);
	return digest;
}

PG_FUNCTION_INFO_V1(recovery_audit_trigger);
PG_FUNCTION_INFO_V1(recovery_audit_log_immutable);
PG_FUNCTION_INFO_V1(recovery_audit_verify);

/*
 * AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW trigger of every business
 * table.  Its arguments name columns to leave out of the trail (password
 * and key hashes).  It writes as the table's owner, so that whoever may
 * change a business row leaves a trail without any right on audit_log.
 */
Datum
recovery_audit_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple	old_tuple = NULL;
	HeapTuple	new_tuple = NULL;
	HeapTuple	key_tuple;
	TupleDesc	tupdesc;
	RecoveryActor actor;
	AuditRow	row;
	char	   *old_json = NULL;
	char	   *new_json = NULL;
	uint8		old_digest[AUDIT_HASH_LEN];
	uint8		new_digest[AUDIT_HASH_LEN];
	uint8		row_hash[AUDIT_HASH_LEN];
	Oid			save_userid;
	int			save_sec_context;
	int			key_attnum;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("recovery.audit_trigger() must be an AFTER ... FOR EACH ROW trigger")));

	/* pg_restore brings the trail with the rows: it gets no second one */
	if (recovery_restoring())
	{
		recovery_restore_hold();
		return PointerGetDatum(NULL);
	}

	memset(&row, 0, sizeof(row));
	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
	{
		row.action = "INSERT";
		new_tuple = trigdata->tg_trigtuple;
	}
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		row.action = "UPDATE";
		old_tuple = trigdata->tg_trigtuple;
		new_tuple = trigdata->tg_newtuple;
	}
	else
	{
		row.action = "DELETE";
		old_tuple = trigdata->tg_trigtuple;
	}
	key_tuple = new_tuple ? new_tuple : old_tuple;
	tupdesc = RelationGetDescr(trigdata->tg_relation);

	recovery_current_actor(&actor);
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(trigdata->tg_relation->rd_rel->relowner,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE);

	if (old_tuple && new_tuple)
	{
		AttrNumber *changed = palloc(sizeof(AttrNumber) * tupdesc->natts);
		int			nchanged = changed_columns(trigdata, old_tuple, new_tuple,
											   changed);

		old_json = row_json(trigdata, old_tuple, changed, nchanged);
		new_json = row_json(trigdata, new_tuple, changed, nchanged);
	}
	else if (old_tuple)
		old_json = row_json(trigdata, old_tuple, NULL, 0);
	else
		new_json = row_json(trigdata, new_tuple, NULL, 0);
	row.old_digest = json_digest(old_json, old_digest);
	row.new_digest = json_digest(new_json, new_digest);

	key_attnum = SPI_fnumber(tupdesc, "id");
	row.row_key = key_attnum > 0 ? SPI_getvalue(key_tuple, tupdesc, key_attnum) : NULL;
	if (row.row_key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("audited table \"%s\" needs a non-null \"id\" column",
						RelationGetRelationName(trigdata->tg_relation))));
	row.table_name = RelationGetRelationName(trigdata->tg_relation);
	row.customer_id = row_customer_id(trigdata, key_tuple);
	row.actor = actor.actor;
	row.actor_user_id = actor.user_id;
	row.db_user = actor.db_user;
	row.db_role = actor.db_role;
	row.request_id = actor.request_id;
	row.occurred_at = GetCurrentTimestamp();

	claim_chain();
	read_chain_tail();
	row.chain = held_chain;
	row.seq = tail_seq + 1;
	row.prev_hash = tail_hash;
	audit_row_hash(&row, row_hash);
	audit_append(&row, old_json, new_json, row_hash);

	tail_seq = row.seq;
	memcpy(tail_hash, row_hash, AUDIT_HASH_LEN);

	SetUserIdAndSecContext(save_userid, save_sec_context);
	return PointerGetDatum(NULL);
}

/* BEFORE UPDATE OR DELETE (row) and BEFORE TRUNCATE trigger of audit_log. */
Datum
recovery_audit_log_immutable(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	const char *what = "changed";

	if (CALLED_AS_TRIGGER(fcinfo))
	{
		if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
			what = "updated";
		else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
			what = "deleted";
		else if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
			what = "truncated";
	}
	ereport(ERROR,
			(errcode(ERRCODE_RECOVERY_AUDIT_IMMUTABLE),
			 errmsg("audit rows cannot be %s", what),
			 errdetail("The audit trail is append-only and hash-chained; "
					   "recovery.audit_verify() checks it."),
			 errhint("Record a correction as a new change to the business row.")));
	PG_RETURN_NULL();
}

/* What audit_verify() found wrong with the first damaged row. */
typedef struct VerifyResult
{
	int64		rows_checked;
	int64		broken_rows;
	int			chains;
	int64		first_broken_id;
	char	   *first_problem;
	bool		missing;		/* business rows without any audit row */
} VerifyResult;

static void
note_broken(VerifyResult *result, int64 id, int32 chain, int64 seq,
			const char *problem)
{
	result->broken_rows++;
	if (result->first_problem == NULL || id < result->first_broken_id)
	{
		result->first_broken_id = id;
		result->first_problem = MemoryContextStrdup(TopTransactionContext,
													psprintf("chain %d, seq " INT64_FORMAT ": %s",
															 chain, seq, problem));
	}
}

/*
 * No audit row at all is only right where nothing was ever written: a
 * database with business rows and no trail lost it (a data-only restore
 * of the business tables, say), and is not "ok".
 */
static void
note_missing_trail(VerifyResult *result)
{
	recovery_spi_exec("SELECT (SELECT count(*) FROM recovery.customers) "
					  "+ (SELECT count(*) FROM recovery.payments) "
					  "+ (SELECT count(*) FROM recovery.recovery_cases) "
					  "+ (SELECT count(*) FROM recovery.users)",
					  0, NULL, NULL, NULL, SPI_OK_SELECT);
	if (strcmp(recovery_spi_text(0, 1), "0") == 0)
		return;
	result->missing = true;
	result->first_problem = MemoryContextStrdup(TopTransactionContext,
												psprintf("the audit trail is empty, but there are %s customers, payments, cases and users: the rows it should record are not there",
														 recovery_spi_text(0, 1)));
}

static const uint8 *
bytea_hash(HeapTuple tuple, TupleDesc tupdesc, int col)
{
	bool		isnull;
	Datum		d;
	bytea	   *b;

	d = SPI_getbinval(tuple, tupdesc, col, &isnull);
	if (isnull)
		return NULL;
	b = DatumGetByteaPP(d);
	if (VARSIZE_ANY_EXHDR(b) != AUDIT_HASH_LEN)
		return NULL;
	return (const uint8 *) VARDATA_ANY(b);
}


/* Check one audit row against the chain so far; see audit_verify(). */
static void
verify_row(HeapTuple tuple, TupleDesc tupdesc, int32 *chain,
		   int64 *last_seq, uint8 *last_hash, VerifyResult *result)
{
	static const uint8 zero_hash[AUDIT_HASH_LEN] = {0};
	AuditRow	row;
	int64		id;
	bool		isnull;
	bool		erased;
	const uint8 *stored_hash;
	uint8		computed[AUDIT_HASH_LEN];
	uint8		old_digest[AUDIT_HASH_LEN];
	uint8		new_digest[AUDIT_HASH_LEN];
	char	   *old_json;
	char	   *new_json;

	memset(&row, 0, sizeof(row));
	id = DatumGetInt64(SPI_getbinval(tuple, tupdesc, 1, &isnull));
	row.chain = DatumGetInt32(SPI_getbinval(tuple, tupdesc, 2, &isnull));
	row.seq = DatumGetInt64(SPI_getbinval(tuple, tupdesc, 3, &isnull));
	row.occurred_at = DatumGetTimestampTz(SPI_getbinval(tuple, tupdesc, 4, &isnull));
	row.actor = SPI_getvalue(tuple, tupdesc, 5);
	row.actor_user_id = DatumGetInt64(SPI_getbinval(tuple, tupdesc, 6, &isnull));
	if (isnull)
		row.actor_user_id = 0;
	row.db_user = SPI_getvalue(tuple, tupdesc, 7);
	row.db_role = SPI_getvalue(tuple, tupdesc, 8);
	row.request_id = SPI_getvalue(tuple, tupdesc, 9);
	row.action = SPI_getvalue(tuple, tupdesc, 10);
	row.table_name = SPI_getvalue(tuple, tupdesc, 11);
	row.row_key = SPI_getvalue(tuple, tupdesc, 12);
	row.customer_id = DatumGetInt64(SPI_getbinval(tuple, tupdesc, 13, &isnull));
	if (isnull)
		row.customer_id = 0;
	old_json = SPI_getvalue(tuple, tupdesc, 14);
	new_json = SPI_getvalue(tuple, tupdesc, 15);
	stored_hash = bytea_hash(tuple, tupdesc, 18);
	erased = DatumGetBool(SPI_getbinval(tuple, tupdesc, 19, &isnull));
	if (erased)
	{
		/* Erasure or sealing kept the digests of what it rewrote. */
		row.old_digest = bytea_hash(tuple, tupdesc, 16);
		row.new_digest = bytea_hash(tuple, tupdesc, 17);
	}
	else
	{
		row.old_digest = json_digest(old_json, old_digest);
		row.new_digest = json_digest(new_json, new_digest);
	}

	if (row.chain != *chain)
	{
		*chain = row.chain;
		*last_seq = 0;
		memcpy(last_hash, zero_hash, AUDIT_HASH_LEN);
		result->chains++;
	}
	result->rows_checked++;

	row.prev_hash = last_hash;
	audit_row_hash(&row, computed);
	if (row.seq != *last_seq + 1)
		note_broken(result, id, row.chain, row.seq,
					psprintf("rows are missing before it: the previous row is seq " INT64_FORMAT,
							 *last_seq));
	else if (stored_hash == NULL || memcmp(computed, stored_hash, AUDIT_HASH_LEN) != 0)
		note_broken(result, id, row.chain, row.seq,
					"row_hash does not match the row and the previous row's hash");

	/* Go on from what is stored, so that only damaged rows are reported. */
	*last_seq = row.seq;
	if (stored_hash)
		memcpy(last_hash, stored_hash, AUDIT_HASH_LEN);
	else
		memset(last_hash, 0xff, AUDIT_HASH_LEN);
}

/*
 * recovery.audit_verify() returns (ok, rows_checked, chains, broken_rows,
 *									 first_broken_id, problem)
 *
 * Walks every chain in order through a cursor, in batches, and reports
 * the damaged row with the lowest id.
 */
Datum
recovery_audit_verify(PG_FUNCTION_ARGS)
{
	TupleDesc	result_desc;
	Portal		cursor;
	SPIPlanPtr	plan;
	VerifyResult result;
	MemoryContext batch_context;
	MemoryContext old_context;
	int32		chain = -1;
	int64		last_seq = 0;
	uint8		last_hash[AUDIT_HASH_LEN];
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &result_desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "audit_verify must return a composite type");
	result_desc = BlessTupleDesc(result_desc);
	memset(&result, 0, sizeof(result));

	batch_context = AllocSetContextCreate(CurrentMemoryContext,
										  "audit_verify batch",
										  ALLOCSET_DEFAULT_SIZES);
	SPI_connect();
	plan = SPI_prepare("SELECT id, chain, seq, occurred_at, actor, actor_user_id, "
					   "db_user, db_role, request_id, action, table_name, row_key, "
					   "customer_id, old_row::text, new_row::text, old_digest, "
					   "new_digest, row_hash, "
					   "erased_at IS NOT NULL OR old_digest IS NOT NULL OR new_digest IS NOT NULL "
					   "FROM recovery.audit_log ORDER BY chain, seq",
					   0, NULL);
	if (plan == NULL)
		elog(ERROR, "could not prepare the audit walk");
	cursor = SPI_cursor_open("audit_verify", plan, NULL, NULL, true);

	for (;;)
	{
		uint64		i;

		SPI_cursor_fetch(cursor, true, AUDIT_VERIFY_BATCH);
		if (SPI_processed == 0)
			break;
		old_context = MemoryContextSwitchTo(batch_context);
		for (i = 0; i < SPI_processed; i++)
			verify_row(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
					   &chain, &last_seq, last_hash, &result);
		MemoryContextSwitchTo(old_context);
		MemoryContextReset(batch_context);
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(cursor);
	if (result.rows_checked == 0)
		note_missing_trail(&result);
	SPI_finish();
	MemoryContextDelete(batch_context);

	values[0] = BoolGetDatum(result.broken_rows == 0 && !result.missing);
	values[1] = Int64GetDatum(result.rows_checked);
	values[2] = Int32GetDatum(result.chains);
	values[3] = Int64GetDatum(result.broken_rows);
	if (result.first_problem)
	{
		values[4] = Int64GetDatum(result.first_broken_id);
		values[5] = CStringGetTextDatum(result.first_problem);
		nulls[4] = result.missing;
	}
	else
		nulls[4] = nulls[5] = true;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(result_desc, values, nulls)));
}
