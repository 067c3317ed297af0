/*
 * statement_reader.h
 *		A CSV statement read into batches of payment lines, on a thread of
 *		its own for large files, so that the backend stores one batch while
 *		the next is read (statement_reader.c).  Plain C.
 *
 *		reader = statement_reader_start(...);
 *		while ((status = statement_reader_next(reader, &batch)) != READER_END)
 *			if (status == READER_BATCH) { use batch; statement_reader_recycle(reader, batch); }
 *			else check for interrupts (READER_WAITING);
 *		statement_reader_finish(reader, &summary, &error);
 */
#ifndef RECOVERY_STATEMENT_READER_H
#define RECOVERY_STATEMENT_READER_H

#include "payment_csv.h"

/* files from this size on are read on a thread */
#define STATEMENT_READER_THREAD_FROM (1024 * 1024)

typedef enum StatementReaderStatus
{
	READER_BATCH,
	READER_WAITING,				/* nothing yet: check for interrupts, ask again */
	READER_END
} StatementReaderStatus;

typedef struct StatementReader StatementReader;

/* NULL when out of memory */
extern StatementReader *statement_reader_start(const char *input, size_t len,
											   const CsvMapping *mapping,
											   const PaymentCurrency *currencies,
											   int n_currencies,
											   const char *default_currency);
extern StatementReaderStatus statement_reader_next(StatementReader *reader,
												   PaymentBatch **batch);
/* gives a batch the backend is done with back for reuse */
extern void statement_reader_recycle(StatementReader *reader, PaymentBatch *batch);
/* waits for the thread; false when the file could not be read (error says why) */
extern bool statement_reader_finish(StatementReader *reader, CsvSummary *summary,
									ExtractError *error);
/* stops the thread and frees what it read; for when the backend gives up */
extern void statement_reader_cancel(StatementReader *reader);

#endif							/* RECOVERY_STATEMENT_READER_H */
