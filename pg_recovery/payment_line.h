/*
 * payment_line.h
 *		Payments found in a statement or a text, as the extension carries
 *		them from parsing to storing: exact minor units, the date, the
 *		fingerprint that makes a second import add nothing, the tokens that
 *		matching looks up, and what matching (reconcile.c) made of them;
 *		and the memory they live in, freed a batch at a time.
 *
 * Plain C with no PostgreSQL calls (payment_line.c), because statements
 * are read on a thread of their own (statement_reader.c) while the backend
 * stores what was read before.
 */
#ifndef RECOVERY_PAYMENT_LINE_H
#define RECOVERY_PAYMENT_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FINGERPRINT_LENGTH 32
#define PAYMENT_BATCH_LINES 4096

typedef enum PaymentStatus
{
	PAYMENT_APPLIED,
	PAYMENT_REVIEW,
	PAYMENT_UNMATCHED,
	PAYMENT_IGNORED,
	PAYMENT_STATUS_COUNT
} PaymentStatus;

/* as extraction_lines.status says them */
extern const char *const payment_status_names[PAYMENT_STATUS_COUNT];

/* what matching looks up (payment_tokens.c, reconcile.c) */
typedef enum MatchToken
{
	TOKEN_CASE,					/* RC-000042: "42" */
	TOKEN_INVOICE,				/* INV-2026-000123 */
	TOKEN_CUSTOMER,				/* CUST-17 */
	TOKEN_PAYER,				/* the payer's name, lower case */
	TOKEN_COUNT
} MatchToken;

typedef struct PaymentLine
{
	int32_t		line_no;		/* line of the record in its file, 0: a text */
	int32_t		span_start;		/* byte span it was read from */
	int32_t		span_end;
	bool		has_date;
	bool		has_amount;		/* amount read and exact in its currency */
	int32_t		booked_on;		/* days since 2000-01-01, as DateADT */
	int64_t		amount;			/* minor units */
	bool		has_amount_read;	/* the number as written, even when */
	int8_t		amount_scale;	/* its currency is unknown: amount_read */
	int64_t		amount_read;	/* / 10^amount_scale */
	char		currency[4];	/* "" when none */
	float		confidence;
	const char *reference;		/* NULL when none */
	const char *payer;
	const char *iban;
	const char *problem;		/* why it is not a payment, NULL when it is */
	const char *hold;			/* why a person must look first, or NULL */
	unsigned char fingerprint[FINGERPRINT_LENGTH];
	const char *tokens[TOKEN_COUNT];	/* NULL when none */
	uint32_t	token_hashes[TOKEN_COUNT];
	bool		payer_unlowered;	/* a name that is not ASCII: the backend
									 * lowers it as SQL does */

	/* what became of it (the backend) */
	int64_t		id;
	PaymentStatus status;
	int			score;			/* hundredths, -1 without a candidate */
	const char *reason;
	int64_t		case_id;
	int64_t		customer_id;
	int64_t		receipt_id;
} PaymentLine;

/* Text of the lines, in blocks freed together. */
typedef struct PaymentArena
{
	struct PaymentArenaBlock *blocks;
	char	   *next;
	size_t		left;
} PaymentArena;

typedef struct PaymentBatch
{
	PaymentLine lines[PAYMENT_BATCH_LINES];
	int			count;
	PaymentArena arena;
	struct PaymentBatch *next;
} PaymentBatch;

typedef struct PaymentCurrency
{
	char		code[4];
	int			minor_units;
} PaymentCurrency;

extern char *payment_arena_strdup(PaymentArena *arena, const char *text);
extern void payment_arena_free(PaymentArena *arena);
extern PaymentBatch *payment_batch_new(void);
/* empties a batch for reuse, keeping one block of its arena */
extern void payment_batch_clear(PaymentBatch *batch);
extern void payment_batch_free(PaymentBatch *batch);

#endif							/* RECOVERY_PAYMENT_LINE_H */
