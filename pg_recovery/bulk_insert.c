/*
 * bulk_insert.c
 *		Rows appended to a table the way COPY FROM appends them: a thousand
 *		at a time through table_multi_insert() (one WAL record per page, not
 *		per row), then their index entries, with the table's CHECK and NOT
 *		NULL constraints evaluated on every row.
 *
 * One difference: a BRIN minmax index on a bigint column whose values rise
 * through the batch (extraction_lines' id, taken in one range per import)
 * is given the first and the last row of each run of rows on one heap
 * block, not every row (every row when the batch does not rise).  A block
 * range's summary is the minimum and the maximum of its rows, which those
 * two rows carry; brininsert() reads the range map for every row it is
 * given, and that was an eighth of an import's time in the backend.  The
 * other indexes get every row from ExecInsertIndexTuples(), as COPY's.
 *
 * For tables the extension alone writes (extraction_lines): a table with
 * row triggers on INSERT or row security is refused rather than silently
 * bypassed, because neither would run here.
 */
#include "recovery.h"
#include "bulk_insert.h"

#include "access/brin_internal.h"
#include "access/genam.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "nodes/parsenodes.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_type_d.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"

#define BULK_INSERT_BATCH 1000

struct BulkInsert
{
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	BulkInsertState bistate;
	CommandId	cid;
	TupleTableSlot *slots[BULK_INSERT_BATCH];
	int			used;
	uint64		inserted;
	MemoryContext batch_context;	/* the values of the rows not yet written */
	int			ndense;			/* indexes [0, ndense) get every row */
	AttrNumber *sparse;			/* [ndense, n): their BRIN minmax column */
};

/*
 * The column of a BRIN minmax index on one bigint column of the table, else
 * 0: the indexes whose summary the first and last row of a block give.
 */
static AttrNumber
brin_minmax_bigint(Relation rel, Relation index, IndexInfo *info)
{
	AttrNumber	attnum = info->ii_IndexAttrNumbers[0];

	if (index->rd_rel->relam != BRIN_AM_OID || info->ii_NumIndexAttrs != 1 ||
		attnum <= 0 || info->ii_Predicate != NIL ||
		TupleDescAttr(RelationGetDescr(rel), attnum - 1)->atttypid != INT8OID ||
		index_getprocid(index, 1, BRIN_PROCNUM_OPCINFO) != F_BRIN_MINMAX_OPCINFO)
		return 0;
	return attnum;
}

BulkInsert *
bulk_insert_begin(Oid relid)
{
	BulkInsert *bulk = palloc0(sizeof(BulkInsert));
	RangeTblEntry *rte;
	TriggerDesc *triggers;
	int			i;

	bulk->rel = table_open(relid, RowExclusiveLock);
	triggers = bulk->rel->trigdesc;
	if (triggers && (triggers->trig_insert_before_row || triggers->trig_insert_after_row ||
					 triggers->trig_insert_instead_row || triggers->trig_insert_new_table))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has a row trigger on INSERT", RelationGetRelationName(bulk->rel)),
				 errdetail("Its rows are written in bulk, and the trigger would not run."),
				 errhint("Drop the trigger, or attach it to UPDATE and DELETE only.")));
	if (check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has row security enabled", RelationGetRelationName(bulk->rel)),
				 errdetail("Its rows are written in bulk, and the policies would not be checked.")));

	/* a result relation for the executor's constraint and index code */
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = relid;
	rte->relkind = bulk->rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_INSERT;
	bulk->estate = CreateExecutorState();
	ExecInitRangeTable(bulk->estate, list_make1(rte));
	bulk->rri = makeNode(ResultRelInfo);
	ExecInitResultRelation(bulk->estate, bulk->rri, 1);
	ExecOpenIndices(bulk->rri, false);

	/*
	 * The BRIN minmax indexes go last, so that ExecInsertIndexTuples() is
	 * given the others only.
	 */
	bulk->sparse = palloc0(sizeof(AttrNumber) * Max(bulk->rri->ri_NumIndices, 1));
	bulk->ndense = bulk->rri->ri_NumIndices;
	for (i = bulk->rri->ri_NumIndices - 1; i >= 0; i--)
	{
		Relation   *descs = bulk->rri->ri_IndexRelationDescs;
		IndexInfo **infos = bulk->rri->ri_IndexRelationInfo;
		AttrNumber	attnum = brin_minmax_bigint(bulk->rel, descs[i], infos[i]);
		Relation	desc = descs[i];
		IndexInfo  *info = infos[i];

		if (attnum == 0)
			continue;
		bulk->ndense--;
		descs[i] = descs[bulk->ndense];
		infos[i] = infos[bulk->ndense];
		descs[bulk->ndense] = desc;
		infos[bulk->ndense] = info;
		bulk->sparse[bulk->ndense] = attnum;
	}

	bulk->bistate = GetBulkInsertState();
	bulk->cid = GetCurrentCommandId(true);
	bulk->batch_context = AllocSetContextCreate(CurrentMemoryContext, "bulk insert batch",
												ALLOCSET_DEFAULT_SIZES);
	return bulk;
}

MemoryContext
bulk_insert_batch_context(BulkInsert *bulk)
{
	return bulk->batch_context;
}

/* whether the column's values rise (or stay) through the batch, none null */
static bool
batch_rises(BulkInsert *bulk, AttrNumber attnum)
{
	int64		last = PG_INT64_MIN;
	int			r;

	for (r = 0; r < bulk->used; r++)
	{
		bool		isnull;
		Datum		d = slot_getattr(bulk->slots[r], attnum, &isnull);

		if (isnull || DatumGetInt64(d) < last)
			return false;
		last = DatumGetInt64(d);
	}
	return true;
}

/* the batch's entries in BRIN index i: the ends of each block's run of rows */
static void
insert_block_ends(BulkInsert *bulk, int i)
{
	AttrNumber	attnum = bulk->sparse[i];
	bool		every = !batch_rises(bulk, attnum);
	int			r;

	for (r = 0; r < bulk->used; r++)
	{
		TupleTableSlot *slot = bulk->slots[r];
		BlockNumber block = ItemPointerGetBlockNumber(&slot->tts_tid);
		Datum		value;
		bool		isnull;

		if (every || r == 0 || r == bulk->used - 1 ||
			block != ItemPointerGetBlockNumber(&bulk->slots[r - 1]->tts_tid) ||
			block != ItemPointerGetBlockNumber(&bulk->slots[r + 1]->tts_tid))
		{
			value = slot_getattr(slot, attnum, &isnull);
			index_insert(bulk->rri->ri_IndexRelationDescs[i], &value, &isnull,
						 &slot->tts_tid, bulk->rel, UNIQUE_CHECK_NO, false,
						 bulk->rri->ri_IndexRelationInfo[i]);
		}
	}
}

static void
flush(BulkInsert *bulk)
{
	int			n = bulk->rri->ri_NumIndices;
	int			i;

	if (bulk->used == 0)
		return;
	table_multi_insert(bulk->rel, bulk->slots, bulk->used, bulk->cid, 0, bulk->bistate);
	if (bulk->ndense > 0)
	{
		/* the executor's own insertion, checks included, for every row */
		bulk->rri->ri_NumIndices = bulk->ndense;
		for (i = 0; i < bulk->used; i++)
		{
			List	   *recheck = ExecInsertIndexTuples(bulk->rri, bulk->slots[i], bulk->estate,
														false, false, NULL, NIL);

			list_free(recheck);
			ResetPerTupleExprContext(bulk->estate);
		}
		bulk->rri->ri_NumIndices = n;
	}
	for (i = bulk->ndense; i < n; i++)
		insert_block_ends(bulk, i);
	for (i = 0; i < bulk->used; i++)
		ExecClearTuple(bulk->slots[i]);
	bulk->inserted += bulk->used;
	bulk->used = 0;
	MemoryContextReset(bulk->batch_context);
}

TupleTableSlot *
bulk_insert_slot(BulkInsert *bulk)
{
	TupleTableSlot *slot;

	if (bulk->used == BULK_INSERT_BATCH)
		flush(bulk);
	if (bulk->slots[bulk->used] == NULL)
	{
		/* slots live as long as the bulk insert, whatever the caller's context */
		MemoryContext old = MemoryContextSwitchTo(bulk->estate->es_query_cxt);

		bulk->slots[bulk->used] = table_slot_create(bulk->rel, &bulk->estate->es_tupleTable);
		MemoryContextSwitchTo(old);
	}
	slot = bulk->slots[bulk->used];
	ExecClearTuple(slot);
	return slot;
}

void
bulk_insert_add(BulkInsert *bulk, TupleTableSlot *slot)
{
	Assert(slot == bulk->slots[bulk->used]);
	ExecStoreVirtualTuple(slot);
	if (bulk->rel->rd_att->constr)
		ExecConstraints(bulk->rri, slot, bulk->estate);
	bulk->used++;
}

uint64
bulk_insert_end(BulkInsert *bulk)
{
	uint64		inserted;

	flush(bulk);
	inserted = bulk->inserted;
	FreeBulkInsertState(bulk->bistate);
	ExecResetTupleTable(bulk->estate->es_tupleTable, false);
	ExecCloseResultRelations(bulk->estate);
	ExecCloseRangeTableRelations(bulk->estate);
	FreeExecutorState(bulk->estate);
	MemoryContextDelete(bulk->batch_context);
	table_close(bulk->rel, NoLock);
	/* what was written is seen by the statements that follow */
	CommandCounterIncrement();
	pfree(bulk);
	return inserted;
}
