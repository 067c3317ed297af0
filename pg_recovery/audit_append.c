/*
 * audit_append.c
 *		Rows appended to recovery.audit_log: the hot path of every audited
 *		write.  The heap tuple and its index entries are inserted directly,
 *		as logical replication's apply does, instead of planning and running
 *		an INSERT per row; constraints are still checked.
 */
#include "recovery.h"
#include "audit_append.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"

/* The columns of recovery.audit_log the trigger sets. */
typedef enum AuditColumn
{
	AUDIT_ID,
	AUDIT_CHAIN,
	AUDIT_SEQ,
	AUDIT_OCCURRED_AT,
	AUDIT_ACTOR,
	AUDIT_ACTOR_USER_ID,
	AUDIT_DB_USER,
	AUDIT_DB_ROLE,
	AUDIT_REQUEST_ID,
	AUDIT_ACTION,
	AUDIT_TABLE_NAME,
	AUDIT_ROW_KEY,
	AUDIT_CUSTOMER_ID,
	AUDIT_OLD_ROW,
	AUDIT_NEW_ROW,
	AUDIT_ROW_HASH,
	AUDIT_NCOLUMNS
} AuditColumn;

static const char *const audit_column_names[AUDIT_NCOLUMNS] = {
	"id", "chain", "seq", "occurred_at", "actor", "actor_user_id", "db_user",
	"db_role", "request_id", "action", "table_name", "row_key", "customer_id",
	"old_row", "new_row", "row_hash"
};

/*
 * What writing to recovery.audit_log needs, built at the transaction's first
 * audit row and kept to its end: the executor state with its compiled
 * constraints, a slot, the columns' numbers and the id sequence.  Built per
 * row they were a third of the trigger's time (the CHECK constraint was
 * compiled for every row).  The relation and its indexes are opened per row,
 * so that nothing holds audit_log between statements (TRUNCATE and ALTER
 * TABLE check that).  Kept in the transaction's memory and resource owner;
 * dropped before commit, when a subtransaction aborts, and when audit_log's
 * definition changes.
 */
typedef struct AuditWriter
{
	Oid			relid;
	Oid			id_seq;
	EState	   *estate;
	ResultRelInfo *result_rel;
	TupleTableSlot *slot;
	AttrNumber	attnums[AUDIT_NCOLUMNS];
} AuditWriter;

static AuditWriter *writer = NULL;
static bool writer_stale = false;

/* audit_log's identity sequence, looked up once (pg_depend) per session */
static Oid	id_seq_relid = InvalidOid;
static Oid	id_seq = InvalidOid;

/* Drops the transaction's writer; its slot's pin is the top owner's. */
void
audit_append_close(void)
{
	ResourceOwner oldowner = CurrentResourceOwner;

	if (writer == NULL)
		return;
	CurrentResourceOwner = TopTransactionResourceOwner;
	ExecResetTupleTable(writer->estate->es_tupleTable, false);
	FreeExecutorState(writer->estate);
	CurrentResourceOwner = oldowner;
	pfree(writer);
	writer = NULL;
}

/* The transaction ended: its memory and resources went with it. */
void
audit_append_forget(void)
{
	writer = NULL;
}

/* audit_log's definition changed (or every relation's): open it again */
static void
audit_relcache_callback(Datum arg, Oid relid)
{
	if (writer != NULL && (relid == InvalidOid || relid == writer->relid))
		writer_stale = true;
	if (relid == InvalidOid || relid == id_seq_relid)
		id_seq_relid = InvalidOid;
}

void
audit_append_init(void)
{
	CacheRegisterRelcacheCallback(audit_relcache_callback, (Datum) 0);
}

static bytea *
bytes_to_bytea(const uint8 *bytes, int len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), bytes, len);
	return b;
}

/*
 * recovery.audit_log opened for one row, and the transaction's writer for
 * it: built at the first row, or again after audit_log's definition changed.
 */
static AuditWriter *
open_writer(void)
{
	MemoryContext oldcontext;
	ResourceOwner oldowner;
	AuditWriter *w;
	Oid			relid;
	Relation	rel;
	RangeTblEntry *rte;
	TupleDesc	tupdesc;
	int			i;

	relid = writer ? writer->relid
		: get_relname_relid("audit_log", get_namespace_oid("recovery", false));
	if (!OidIsValid(relid))
		elog(ERROR, "relation recovery.audit_log does not exist");
	rel = table_open(relid, RowExclusiveLock);

	if (writer != NULL && !writer_stale)
	{
		writer->result_rel->ri_RelationDesc = rel;
		ExecOpenIndices(writer->result_rel, false);
		return writer;
	}
	audit_append_close();
	writer_stale = false;

	oldcontext = MemoryContextSwitchTo(TopTransactionContext);
	oldowner = CurrentResourceOwner;
	CurrentResourceOwner = TopTransactionResourceOwner;

	w = palloc0(sizeof(AuditWriter));
	w->relid = relid;
	if (id_seq_relid != relid)
	{
		id_seq = getIdentitySequence(relid, get_attnum(relid, "id"), false);
		id_seq_relid = relid;
	}
	w->id_seq = id_seq;
	w->estate = CreateExecutorState();
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = relid;
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	ExecInitRangeTable(w->estate, list_make1(rte));
	w->result_rel = makeNode(ResultRelInfo);
	InitResultRelInfo(w->result_rel, rel, 1, NULL, 0);
	w->slot = table_slot_create(rel, &w->estate->es_tupleTable);

	tupdesc = RelationGetDescr(rel);
	for (i = 0; i < AUDIT_NCOLUMNS; i++)
	{
		w->attnums[i] = SPI_fnumber(tupdesc, audit_column_names[i]);
		if (w->attnums[i] <= 0)
			elog(ERROR, "recovery.audit_log has no column \"%s\"",
				 audit_column_names[i]);
	}

	CurrentResourceOwner = oldowner;
	MemoryContextSwitchTo(oldcontext);
	writer = w;

	/* the indexes in the row's own memory: they are opened per row */
	ExecOpenIndices(w->result_rel, false);
	return w;
}

/* The row is written: audit_log and its indexes are let go until the next. */
static void
release_writer(AuditWriter *w)
{
	ExecCloseIndices(w->result_rel);
	table_close(w->result_rel->ri_RelationDesc, NoLock);
	w->result_rel->ri_RelationDesc = NULL;
}

/* Set one column of the audit row being built. */
static void
set_column(AuditWriter *w, AuditColumn column, Datum value, bool isnull)
{
	w->slot->tts_values[w->attnums[column] - 1] = value;
	w->slot->tts_isnull[w->attnums[column] - 1] = isnull;
}

static void
set_text_column(AuditWriter *w, AuditColumn column, const char *value)
{
	set_column(w, column, value ? CStringGetTextDatum(value) : (Datum) 0,
			   value == NULL);
}

/*
 * Append the row to recovery.audit_log.  This is the hot path of every
 * audited write, so it inserts the heap tuple and its index entries
 * directly, as logical replication's apply does, instead of planning and
 * running an INSERT per row; constraints are still checked.
 */
void
audit_append(const AuditRow *row, const char *old_json,
			 const char *new_json, const uint8 *row_hash)
{
	AuditWriter *w = open_writer();
	TupleTableSlot *slot = w->slot;

	ExecClearTuple(slot);
	memset(slot->tts_isnull, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);

	set_column(w, AUDIT_ID, Int64GetDatum(nextval_internal(w->id_seq, false)), false);
	set_column(w, AUDIT_CHAIN, Int32GetDatum(row->chain), false);
	set_column(w, AUDIT_SEQ, Int64GetDatum(row->seq), false);
	set_column(w, AUDIT_OCCURRED_AT, TimestampTzGetDatum(row->occurred_at), false);
	set_column(w, AUDIT_ACTOR, CStringGetTextDatum(row->actor), false);
	set_column(w, AUDIT_ACTOR_USER_ID, Int64GetDatum(row->actor_user_id),
			   row->actor_user_id == 0);
	set_column(w, AUDIT_DB_USER, CStringGetTextDatum(row->db_user), false);
	set_column(w, AUDIT_DB_ROLE, CStringGetTextDatum(row->db_role), false);
	set_text_column(w, AUDIT_REQUEST_ID, row->request_id);
	set_column(w, AUDIT_ACTION, CStringGetTextDatum(row->action), false);
	set_column(w, AUDIT_TABLE_NAME, CStringGetTextDatum(row->table_name), false);
	set_column(w, AUDIT_ROW_KEY, CStringGetTextDatum(row->row_key), false);
	set_column(w, AUDIT_CUSTOMER_ID, Int64GetDatum(row->customer_id),
			   row->customer_id == 0);
	set_text_column(w, AUDIT_OLD_ROW, old_json);
	set_text_column(w, AUDIT_NEW_ROW, new_json);
	set_column(w, AUDIT_ROW_HASH,
			   PointerGetDatum(bytes_to_bytea(row_hash, AUDIT_HASH_LEN)), false);
	ExecStoreVirtualTuple(slot);

	w->estate->es_output_cid = GetCurrentCommandId(true);
	AfterTriggerBeginQuery();
	ExecSimpleRelationInsert(w->result_rel, w->estate, slot);
	AfterTriggerEndQuery(w->estate);

	ExecClearTuple(slot);
	ResetPerTupleExprContext(w->estate);
	release_writer(w);
	CommandCounterIncrement();
}
