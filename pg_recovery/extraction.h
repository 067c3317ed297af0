/*
 * extraction.h
 *		What extraction.c shares with the import (extraction_import.c): bank
 *		mappings, currencies, and the statement reader driven from a backend.
 */
#ifndef RECOVERY_EXTRACTION_H
#define RECOVERY_EXTRACTION_H

#include "lib/stringinfo.h"
#include "statement_reader.h"
#include "utils/jsonb.h"

extern double recovery_reconcile_auto_apply(void);
extern void recovery_csv_mapping(Jsonb *mapping, CsvMapping *map, const char **default_currency);
extern PaymentCurrency *recovery_currencies(int *count);

/*
 * A statement being read.  Read its batches inside
 *		PG_ENSURE_ERROR_CLEANUP(recovery_statement_reading_cancel, PointerGetDatum(reading))
 * so that an ERROR or FATAL stops the reader's thread before the memory it
 * reads is freed; a reset of the current memory context frees what is left.
 * A batch lasts until the next is asked for.
 */
typedef struct StatementReading StatementReading;

extern StatementReading *recovery_statement_reading_start(bytea *content, Jsonb *mapping);
extern void recovery_statement_reading_cancel(int code, Datum arg);
extern PaymentBatch *recovery_statement_reading_next(StatementReading *reading);
/* reports an unreadable file as PR004; what it was into file_json, if given */
extern void recovery_statement_reading_finish(StatementReading *reading, StringInfo file_json);

#endif							/* RECOVERY_EXTRACTION_H */
