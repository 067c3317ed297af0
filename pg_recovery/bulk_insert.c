/*
 * bulk_insert.c
 *		Rows appended to a table the way COPY FROM appends them: a thousand
 *		at a time through table_multi_insert() (one WAL record per page, not
 *		per row), then their index entries, with the table's CHECK and NOT
 *		NULL constraints evaluated on every row.
 *
 * For tables the extension alone writes (extraction_lines): a table with
 * row triggers on INSERT or row security is refused rather than silently
 * bypassed, because neither would run here.
 */
#include "recovery.h"
#include "bulk_insert.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "nodes/parsenodes.h"
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
};

BulkInsert *
bulk_insert_begin(Oid relid)
{
	BulkInsert *bulk = palloc0(sizeof(BulkInsert));
	RangeTblEntry *rte;
	TriggerDesc *triggers;

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

static void
flush(BulkInsert *bulk)
{
	int			i;

	if (bulk->used == 0)
		return;
	table_multi_insert(bulk->rel, bulk->slots, bulk->used, bulk->cid, 0, bulk->bistate);
	if (bulk->rri->ri_NumIndices > 0)
		for (i = 0; i < bulk->used; i++)
		{
			List	   *recheck = ExecInsertIndexTuples(bulk->rri, bulk->slots[i], bulk->estate,
														false, false, NULL, NIL);

			list_free(recheck);
			ResetPerTupleExprContext(bulk->estate);
		}
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
