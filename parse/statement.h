/*
 * statement.h
 *		What every statement parser of recovery-parse hands on: entries with
 *		exact amounts, written out as they are read as the canonical CSV that
 *		the extension's CSV import reads (so that fingerprints, duplicates
 *		and matching are the same whatever the format), and statements whose
 *		opening and closing balances are checked against the sum of their
 *		entries.  The lines of a statement that does not add up are listed
 *		in the summary ("held"), and the extension holds them before it
 *		imports: memory stays flat however long a statement is.
 *
 * Plain C with no library of its own, so that the fuzzers link it too.
 */
#ifndef RECOVERY_STATEMENT_H
#define RECOVERY_STATEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "extract.h"

/* more is refused: a bank amount has at most 18 digits, 5 after the point */
#define STATEMENT_MAX_DECIMALS 5

typedef struct StatementEntry
{
	char		date[11];		/* "YYYY-MM-DD", "" when none */
	char		amount[48];		/* a plain signed decimal: "-1234.5" */
	char		currency[4];
	const char *reference;		/* NULL when none */
	const char *payer;
	const char *iban;
	const char *problem;		/* not money received: "pending", ... */
	const char *hold;			/* a person must look at it first */
} StatementEntry;

typedef struct StatementSink
{
	/* the statement being read */
	bool		in_statement;
	char		id[64];
	bool		has_opening;
	bool		has_closing;
	__int128	opening;		/* in 10^-5 of the currency */
	__int128	closing;
	__int128	sum;			/* of its booked entries */
	char		currency[4];
	bool		mixed_currency;
	bool		sum_unknown;	/* an entry without a readable amount */
	long		first_line;		/* its first line in the CSV (1: the header) */

	/* the whole file */
	int			out_fd;
	char		format[40];
	long		statements;
	long		entries;
	long		unbalanced;
	long		lines;			/* written, the header included */
	ExtractBuf	held;			/* JSON: the statements that do not add up */
	ExtractBuf	out;			/* pending output, written in large blocks */
	bool		header_written; /* the canonical CSV's */
	bool		raw;			/* a spreadsheet's own columns instead */
	bool		text;			/* or a document's text (a PDF without a table) */
	bool		write_failed;
} StatementSink;

extern void sink_init(StatementSink *sink, int out_fd, const char *format);
extern void sink_format(StatementSink *sink, const char *format);
extern void sink_begin(StatementSink *sink, const char *id);
/* kind: 'O' opening, 'C' closing; amount as written, debit negative */
extern bool sink_balance(StatementSink *sink, char kind, const char *amount,
						 const char *currency, ExtractError *error);
extern void sink_entry(StatementSink *sink, const StatementEntry *entry);
extern void sink_end(StatementSink *sink);
/* a spreadsheet's rows, as CSV of its own columns (sheet.c) */
extern void sink_raw(StatementSink *sink, const char *csv, size_t len);
/* flushes; the summary as JSON into summary */
extern bool sink_finish(StatementSink *sink, ExtractBuf *summary);
extern void sink_free(StatementSink *sink);

/*
 * "1234,5" or "1234.50" (a bank's plain decimal, no thousands separator)
 * into out as "1234.5", with minus when negative; false when it is not one.
 */
extern bool statement_decimal(const char *text, size_t len, bool negative,
							  char *out, size_t out_size);
/* value as a quoted CSV field: quotes doubled, line breaks and controls as spaces */
extern void csv_quote(ExtractBuf *buf, const char *value);
/* an ISO 11649 creditor reference ("RF18 5390 0754 7034"), checked */
extern bool statement_rf_valid(const char *text);
/* whitespace runs as one space, none at the ends; in place */
extern void statement_squeeze(char *text);

#endif							/* RECOVERY_STATEMENT_H */
