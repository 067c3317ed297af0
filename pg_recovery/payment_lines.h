/*
 * payment_lines.h
 *		Payments found in a statement or a text, as the extension keeps them
 *		in memory between parsing and storing: exact minor units, the date,
 *		the fingerprint that makes a second import add nothing, and what
 *		matching (reconcile.c) made of them.
 */
#ifndef RECOVERY_PAYMENT_LINES_H
#define RECOVERY_PAYMENT_LINES_H

#include "extract.h"
#include "lib/stringinfo.h"
#include "utils/date.h"
#include "utils/jsonb.h"

#define FINGERPRINT_LENGTH 32

typedef struct PaymentLine
{
	int32		line_no;		/* line of the record in its file, 0: a text */
	int32		span_start;		/* byte span it was read from */
	int32		span_end;
	bool		has_date;
	DateADT		booked_on;
	bool		has_amount;		/* amount read and exact in its currency */
	int64		amount;			/* minor units */
	char		currency[4];	/* "" when none */
	const char *reference;		/* NULL when none */
	const char *payer;
	const char *iban;
	float4		confidence;
	unsigned char fingerprint[FINGERPRINT_LENGTH];
	const char *problem;		/* why it is not a payment, NULL when it is */

	/* what became of it */
	int64		id;
	const char *status;			/* applied, review, unmatched, ignored */
	int			score;			/* hundredths, -1 without a candidate */
	const char *reason;
	int64		case_id;
	int64		customer_id;
	int64		receipt_id;
} PaymentLine;

typedef struct PaymentLines
{
	PaymentLine *items;
	int64		count;
	int64		capacity;
	MemoryContext strings;		/* the lines' text, freed with them */
} PaymentLines;

/* A set of fingerprints, each with a count (fingerprint_set.c, simplehash) */
typedef struct FingerprintSet FingerprintSet;

extern FingerprintSet *fingerprint_set_create(int64 expected);
/* adds it; returns how many times it was added before */
extern uint32 fingerprint_set_add(FingerprintSet *set, const unsigned char *fingerprint);
extern bool fingerprint_set_contains(FingerprintSet *set, const unsigned char *fingerprint);

/* Reading: currencies, and how often each record was seen in this file. */
typedef struct PaymentReader PaymentReader;

extern PaymentReader *payment_reader_create(const char *default_currency, int64 expected_lines);
extern void payment_lines_init(PaymentLines *lines, int64 expected);
extern PaymentLine *payment_lines_add(PaymentLines *lines);
extern const char *payment_lines_strdup(PaymentLines *lines, const char *text);

/* A CSV record as a payment line, its fingerprint included. */
extern void payment_line_from_csv(PaymentReader *reader, PaymentLines *lines,
								  const CsvLine *csv);
extern int	payment_minor_units(PaymentReader *reader, const char *currency);

/* extraction.c: a CSV statement read into lines, or line by line to a hook */
typedef void (*CsvLineHook) (void *arg, const CsvLine *csv, PaymentLine *line);

extern void recovery_csv_read(PaymentLines *lines, CsvLineHook hook, void *hook_arg,
							  bytea *content, Jsonb *mapping, StringInfo file_json);
extern double recovery_reconcile_auto_apply(void);

/* reconcile.c */
extern void reconcile_match(PaymentLines *lines, int64 case_id);
extern void reconcile_apply(PaymentLines *lines, int64 extraction_id, double threshold);

#endif							/* RECOVERY_PAYMENT_LINES_H */
