/*
 * parse.h
 *		The statement parsers of recovery-parse, one file a format, and the
 *		input they read: the bytes already looked at to tell the format, then
 *		the rest of the pipe (or a buffer, under libFuzzer).
 */
#ifndef RECOVERY_PARSE_H
#define RECOVERY_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "extract.h"
#include "statement.h"

/* the most any format reads into memory whole (xlsx, xls, PDF) */
#define PARSE_MAX_WHOLE		(64 * 1024 * 1024)

typedef struct ParseInput
{
	int			fd;				/* -1: the buffer is all there is */
	const char *head;			/* read already */
	size_t		head_len;
	size_t		head_pos;
	unsigned long long total;	/* bytes handed out */
} ParseInput;

/* up to len bytes; 0 at the end, -1 on a read error */
extern ssize_t input_read(ParseInput *in, char *buf, size_t len);
/* the whole input in memory (at most max bytes), or NULL with the error */
extern char *input_read_all(ParseInput *in, size_t max, size_t *len,
							ExtractError *error);

extern bool camt_parse(ParseInput *in, StatementSink *sink, ExtractError *error);
extern bool mt940_parse(ParseInput *in, StatementSink *sink, ExtractError *error);
extern bool xlsx_parse(const char *data, size_t len, StatementSink *sink,
					   ExtractError *error);
/*
 * xls and PDF: the file is opened before the sandbox closes (FreeXL opens
 * a path; poppler reads its data directories when it starts), and read
 * after.
 */
extern bool xls_open(const char *data, size_t len, const void **workbook,
					 ExtractError *error);
extern bool xls_parse(const void *workbook, StatementSink *sink,
					  ExtractError *error);
extern bool pdf_open(const char *data, size_t len, void **document,
					 ExtractError *error);
extern bool pdf_parse(void *document, StatementSink *sink, ExtractError *error);

/* the bank mapping's header names (--column), for sheets and PDF tables */
extern CsvMapping parse_mapping;

/*
 * Spreadsheets (xlsx, xls) hand their rows here: the first row that has
 * the columns of a statement is the header, every row after it an entry.
 * A cell is its text, a number's literal digits ("1234.5", never through a
 * double) or a date as "YYYY-MM-DD".
 */
typedef struct SheetReader SheetReader;
extern SheetReader *sheet_reader_new(StatementSink *sink);
/* number: the cell holds a number (its literal digits), not text */
extern void sheet_cell(SheetReader *reader, int column, const char *text,
					   bool number);
extern void sheet_row_end(SheetReader *reader);
/* false when no row looked like a header */
extern bool sheet_reader_finish(SheetReader *reader, ExtractError *error);
extern void sheet_reader_free(SheetReader *reader);
/*
 * Would the CSV import take this row (CSV, ending in a newline) for its
 * header?  The header rule of sheets and PDF tables; amount_column is set.
 */
extern bool sheet_header_row(const char *row, size_t len, long *amount_column);
/* an Excel day number ("45678" or "45678.5") as "YYYY-MM-DD" */
extern bool sheet_serial_date(const char *serial, bool epoch_1904, char out[11]);

#endif							/* RECOVERY_PARSE_H */
