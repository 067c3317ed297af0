/*
 * bulk_insert.h
 *		Rows appended to a table as COPY FROM appends them (bulk_insert.c).
 *
 *		bulk = bulk_insert_begin(relid);
 *		for each row:
 *			slot = bulk_insert_slot(bulk);
 *			fill slot->tts_values and slot->tts_isnull, allocating in
 *			bulk_insert_batch_context(bulk);
 *			bulk_insert_add(bulk, slot);
 *		n = bulk_insert_end(bulk);
 */
#ifndef RECOVERY_BULK_INSERT_H
#define RECOVERY_BULK_INSERT_H

#include "executor/tuptable.h"

typedef struct BulkInsert BulkInsert;

extern BulkInsert *bulk_insert_begin(Oid relid);
extern MemoryContext bulk_insert_batch_context(BulkInsert *bulk);
extern TupleTableSlot *bulk_insert_slot(BulkInsert *bulk);
extern void bulk_insert_add(BulkInsert *bulk, TupleTableSlot *slot);
extern uint64 bulk_insert_end(BulkInsert *bulk);

#endif							/* RECOVERY_BULK_INSERT_H */
