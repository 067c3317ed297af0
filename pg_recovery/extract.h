/*
 * extract.h
 *		The parsers of payment data (CSV statements, free text and SMS,
 *		emails): plain C with no PostgreSQL types, so that the same code runs
 *		in the extension (extraction.c) and under libFuzzer (t/fuzz/).
 *
 * Memory comes from extract_realloc()/extract_free(), which the host
 * provides: palloc in the extension, malloc in the fuzzers.  Parsers never
 * read past the length they are given and report malformed input through
 * ExtractError, never by crashing or by silence.
 */
#ifndef RECOVERY_EXTRACT_H
#define RECOVERY_EXTRACT_H

#include <stdbool.h>
#include <stddef.h>

/* Limits: anything larger is refused with a precise error. */
#define EXTRACT_MAX_INPUT		(256 * 1024 * 1024)
#define EXTRACT_MAX_FIELD		(1024 * 1024)
#define EXTRACT_MAX_COLUMNS		200
#define EXTRACT_MAX_EMAIL		(25 * 1024 * 1024)
#define EXTRACT_MAX_MIME_DEPTH	20
#define EXTRACT_MAX_ATTACHMENTS	50
#define EXTRACT_MAX_TEXT		(1024 * 1024)

/*
 * Provided by the host, with extract_own_thread: true on a thread of the
 * host's own (the statement reader's, statement_reader.c), where memory
 * must come from malloc, never from PostgreSQL.
 */
extern void *extract_realloc(void *pointer, size_t size);
extern void extract_free(void *pointer);
extern __thread bool extract_own_thread;

typedef struct ExtractError
{
	bool		failed;
	long		line;			/* 1-based, 0 when it does not apply */
	char		message[240];
} ExtractError;

extern void extract_fail(ExtractError *error, long line, const char *format,...)
			__attribute__((format(printf, 3, 4)));

/* A growable byte buffer, always NUL-terminated. */
typedef struct ExtractBuf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} ExtractBuf;

extern void xbuf_init(ExtractBuf *buf);
extern void xbuf_append(ExtractBuf *buf, const char *bytes, size_t len);
extern void xbuf_appendc(ExtractBuf *buf, char c);
extern void xbuf_appends(ExtractBuf *buf, const char *text);
extern void xbuf_json_string(ExtractBuf *buf, const char *text, size_t len);
extern void xbuf_free(ExtractBuf *buf);

/* Text as UTF-8: a BOM is dropped; not UTF-8 is read as Windows-1252. */
typedef enum ExtractEncoding
{
	EXTRACT_UTF8,
	EXTRACT_UTF8_BOM,
	EXTRACT_WINDOWS_1252
} ExtractEncoding;

extern char *extract_to_utf8(const char *input, size_t len, size_t *out_len,
							 ExtractEncoding *encoding);
extern bool extract_valid_utf8(const char *text, size_t len);

/*
 * Amounts and dates as people write them.  An amount becomes a plain
 * decimal ("-1234.56") in out; decimal is '.' or ',' when known, else 0
 * and the number decides.  A date becomes "YYYY-MM-DD"; order is 'D' (day
 * first), 'M' (month first) or 0 (day first unless the numbers say
 * otherwise).
 */
extern bool extract_parse_amount(const char *text, size_t len, char decimal,
								 char *out, size_t out_size);
extern bool extract_parse_date(const char *text, size_t len, char order,
							   char out[11]);

/* CSV statements */
typedef enum CsvField
{
	CSV_DATE,
	CSV_AMOUNT,
	CSV_CURRENCY,
	CSV_REFERENCE,
	CSV_PAYER,
	CSV_IBAN,
	CSV_PROBLEM,				/* recovery-parse's: why not money received */
	CSV_HOLD,					/* recovery-parse's: why a person must look */
	CSV_FIELD_COUNT
} CsvField;

extern const char *const csv_field_names[CSV_FIELD_COUNT];

typedef struct CsvMapping
{
	const char *columns[CSV_FIELD_COUNT];	/* header names; NULL: guess */
	char		delimiter;		/* 0: detect */
	char		decimal;		/* 0: detect per amount */
	char		date_order;		/* 0: detect */
} CsvMapping;

typedef struct CsvLine
{
	long		line;			/* line number of the record's start */
	size_t		start;			/* byte span of the record in the UTF-8 text */
	size_t		end;
	char		date[11];		/* "" when none or unreadable */
	char		amount[40];		/* "" when unreadable */
	const char *fields[CSV_FIELD_COUNT];	/* raw values, NULL when absent */
	double		confidence;
	const char *problem;		/* why the record is not a payment, or NULL */
	const char *hold;			/* why it waits for a person, or NULL */
} CsvLine;

typedef struct CsvSummary
{
	ExtractEncoding encoding;
	char		delimiter;
	long		records;
	long		columns_found[CSV_FIELD_COUNT];	/* column index, -1 */
} CsvSummary;

/* return false from the callback to stop */
typedef bool (*CsvLineCallback) (void *arg, const CsvLine *line);

extern bool csv_parse(const char *input, size_t len, const CsvMapping *mapping,
					  CsvLineCallback callback, void *arg,
					  CsvSummary *summary, ExtractError *error);

/* Free text and SMS: amounts with currency, references, dates, intents */
typedef struct TextItem
{
	const char *kind;			/* amount, case_reference, invoice_reference,
								 * date, intent */
	char		value[64];		/* normalized */
	char		currency[4];	/* amounts */
	size_t		start;			/* byte span in the text */
	size_t		end;
	double		confidence;
} TextItem;

typedef bool (*TextItemCallback) (void *arg, const TextItem *item);

extern bool text_parse(const char *text, size_t len, TextItemCallback callback,
					   void *arg, ExtractError *error);

/* Emails (GMime): the result as JSON in out */
extern bool email_parse(const char *input, size_t len, ExtractBuf *out,
						ExtractError *error);

#endif							/* RECOVERY_EXTRACT_H */
