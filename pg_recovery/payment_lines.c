/*
 * payment_lines.c
 *		From what a parser read to a payment: the currency (the record's or
 *		the mapping's default), the amount exactly in its minor units, the
 *		date, and the fingerprint; the lines themselves in one growable
 *		array, their text in a memory context of its own.
 */
#include "recovery.h"
#include "payment_lines.h"

#include <openssl/evp.h>

#include "common/hashfn.h"
#include "executor/spi.h"
#include "utils/datetime.h"
#include "utils/memutils.h"

#define MAX_CURRENCIES 256

/* fingerprints in a simplehash table: they are SHA-256, so any 4 bytes hash */
typedef struct Fingerprint
{
	unsigned char bytes[FINGERPRINT_LENGTH];
} Fingerprint;

typedef struct FingerprintEntry
{
	Fingerprint key;
	uint32		count;
	char		status;
} FingerprintEntry;

static inline uint32
fingerprint_hash(const Fingerprint *key)
{
	uint32		hash;

	memcpy(&hash, key->bytes, sizeof(hash));
	return hash;
}

#define SH_PREFIX fpset
#define SH_ELEMENT_TYPE FingerprintEntry
#define SH_KEY_TYPE Fingerprint
#define SH_KEY key
#define SH_HASH_KEY(tb, key) fingerprint_hash(&(key))
#define SH_EQUAL(tb, a, b) (memcmp((a).bytes, (b).bytes, FINGERPRINT_LENGTH) == 0)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

struct FingerprintSet
{
	fpset_hash *table;
};

/*
 * Records seen in this file, by the first 8 bytes of their digest: a
 * collision would only number two different records as if they were equal,
 * and their fingerprints still differ by the rest of the digest.  A key of
 * 8 bytes keeps the table of a million-line file in the CPU's caches far
 * more than one of 32.
 */
typedef struct SeenEntry
{
	uint64		key;
	uint32		count;
	char		status;
} SeenEntry;

#define SH_PREFIX seen
#define SH_ELEMENT_TYPE SeenEntry
#define SH_KEY_TYPE uint64
#define SH_KEY key
#define SH_HASH_KEY(tb, key) ((uint32) (key))
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

FingerprintSet *
fingerprint_set_create(int64 expected)
{
	FingerprintSet *set = palloc(sizeof(FingerprintSet));

	set->table = fpset_create(CurrentMemoryContext, (uint32) Min(Max(expected, 256), PG_INT32_MAX / 2),
							  NULL);
	return set;
}

uint32
fingerprint_set_add(FingerprintSet *set, const unsigned char *fingerprint)
{
	Fingerprint key;
	FingerprintEntry *entry;
	bool		found;

	memcpy(key.bytes, fingerprint, FINGERPRINT_LENGTH);
	entry = fpset_insert(set->table, key, &found);
	if (!found)
		entry->count = 0;
	return entry->count++;
}

bool
fingerprint_set_contains(FingerprintSet *set, const unsigned char *fingerprint)
{
	Fingerprint key;

	memcpy(key.bytes, fingerprint, FINGERPRINT_LENGTH);
	return fpset_lookup(set->table, key) != NULL;
}

typedef struct Currency
{
	char		code[4];
	int			minor_units;
} Currency;

struct PaymentReader
{
	const char *default_currency;
	Currency	currencies[MAX_CURRENCIES];
	int			n_currencies;
	seen_hash  *seen;			/* records of this file, by their fields */
	EVP_MD	   *sha256;
	EVP_MD_CTX *digest;
};

static void
free_digest(void *arg)
{
	PaymentReader *reader = arg;

	EVP_MD_CTX_free(reader->digest);
	EVP_MD_free(reader->sha256);
}

PaymentReader *
payment_reader_create(const char *default_currency, int64 expected_lines)
{
	PaymentReader *reader = palloc0(sizeof(PaymentReader));
	MemoryContextCallback *cleanup = palloc(sizeof(MemoryContextCallback));
	uint64		i;

	reader->default_currency = default_currency;
	SPI_connect();
	recovery_spi_exec("SELECT code, minor_units FROM recovery.currencies", 0, NULL, NULL, NULL,
					  SPI_OK_SELECT);
	for (i = 0; i < SPI_processed && i < MAX_CURRENCIES; i++)
	{
		strlcpy(reader->currencies[i].code, recovery_spi_text(i, 1), sizeof(reader->currencies[i].code));
		reader->currencies[i].minor_units = atoi(recovery_spi_text(i, 2));
	}
	reader->n_currencies = (int) i;
	SPI_finish();

	reader->seen = seen_create(CurrentMemoryContext, (uint32) Min(Max(expected_lines, 256), PG_INT32_MAX / 2),
							   NULL);
	/* fetched once: an implicit fetch per digest takes locks in OpenSSL 3 */
	reader->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (reader->sha256 == NULL)
		elog(ERROR, "OpenSSL has no SHA-256");
	reader->digest = EVP_MD_CTX_new();
	if (reader->digest == NULL)
		elog(ERROR, "out of memory for a SHA-256 context");
	cleanup->func = free_digest;
	cleanup->arg = reader;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cleanup);
	return reader;
}

/* minor units of a currency, -1 when it is not one we know */
int
payment_minor_units(PaymentReader *reader, const char *code)
{
	int			i;

	for (i = 0; i < reader->n_currencies; i++)
		if (strcmp(reader->currencies[i].code, code) == 0)
			return reader->currencies[i].minor_units;
	return -1;
}

void
payment_lines_init(PaymentLines *lines, int64 expected)
{
	lines->capacity = Max(expected, 16);
	lines->count = 0;
	lines->items = palloc_extended(lines->capacity * sizeof(PaymentLine), MCXT_ALLOC_HUGE);
	lines->strings = AllocSetContextCreate(CurrentMemoryContext, "payment line text",
										   ALLOCSET_DEFAULT_SIZES);
}

PaymentLine *
payment_lines_add(PaymentLines *lines)
{
	PaymentLine *line;

	if (lines->count == lines->capacity)
	{
		lines->capacity *= 2;
		lines->items = repalloc_huge(lines->items, lines->capacity * sizeof(PaymentLine));
	}
	line = &lines->items[lines->count++];
	memset(line, 0, sizeof(*line));
	line->score = -1;
	return line;
}

const char *
payment_lines_strdup(PaymentLines *lines, const char *text)
{
	return text && text[0] ? MemoryContextStrdup(lines->strings, text) : NULL;
}

/* "EUR", from " eur " or the default; "" when none */
static void
currency_code(const char *written, const char *fallback, char *code, size_t size)
{
	const char *from = written && written[0] ? written : (fallback ? fallback : "");
	size_t		n = 0;

	while (*from == ' ' || *from == '\t')
		from++;
	for (; *from && *from != ' ' && *from != '\t' && n + 1 < size; from++)
		code[n++] = (*from >= 'a' && *from <= 'z') ? *from - ('a' - 'A') : *from;
	code[n] = '\0';
}

/*
 * "-1234.56" in minor units of a currency with minor_units decimals; false
 * when it has more decimals than that or does not fit.
 */
static bool
decimal_to_minor(const char *decimal, int minor_units, int64 *minor)
{
	const char *p = decimal;
	bool		negative = *p == '-';
	int64		value = 0;
	int			decimals = -1;

	if (negative)
		p++;
	for (; *p; p++)
	{
		if (*p == '.')
		{
			decimals = 0;
			continue;
		}
		if (decimals >= 0 && ++decimals > minor_units)
			return false;
		if (value > (PG_INT64_MAX - 9) / 10)
			return false;
		value = value * 10 + (*p - '0');
	}
	for (decimals = Max(decimals, 0); decimals < minor_units; decimals++)
	{
		if (value > PG_INT64_MAX / 10)
			return false;
		value *= 10;
	}
	*minor = negative ? -value : value;
	return true;
}

static size_t
append_lower(char *out, size_t at, size_t size, const char *text)
{
	for (; text && *text && at < size; text++)
		out[at++] = (*text >= 'A' && *text <= 'Z') ? *text + ('a' - 'A') : *text;
	return at;
}

static size_t
append(char *out, size_t at, size_t size, const char *text)
{
	size_t		n = text ? strlen(text) : 0;

	n = Min(n, size - at);
	memcpy(out + at, text, n);
	return at + n;
}

/*
 * A record's fingerprint: SHA-256 of its normalized fields, then SHA-256 of
 * that and how many identical records came before it in the file, so that
 * two equal lines of one statement stay two payments and a second import of
 * the statement matches the first.  (The same as in extension 0.4, so that
 * lines imported then are still recognized.)
 */
static void
fingerprint(PaymentReader *reader, const CsvLine *csv, const char *currency,
			unsigned char *out)
{
	char		stack_key[1024];
	size_t		size = 64 + 2 * (csv->fields[CSV_REFERENCE] ? strlen(csv->fields[CSV_REFERENCE]) : 0)
		+ (csv->fields[CSV_PAYER] ? strlen(csv->fields[CSV_PAYER]) : 0)
		+ (csv->fields[CSV_IBAN] ? strlen(csv->fields[CSV_IBAN]) : 0) + strlen(csv->amount);
	char	   *key = size <= sizeof(stack_key) ? stack_key : palloc(size);
	size_t		n = 0;
	unsigned char digest[FINGERPRINT_LENGTH + 4];
	uint32		count;
	uint64		seen_key;
	SeenEntry  *seen;
	bool		found;

	n = append(key, n, size, csv->date);
	n = append(key, n, size, "|");
	n = append(key, n, size, csv->amount);
	n = append(key, n, size, "|");
	n = append(key, n, size, currency);
	n = append(key, n, size, "|");
	n = append_lower(key, n, size, csv->fields[CSV_REFERENCE]);
	n = append(key, n, size, "|");
	n = append_lower(key, n, size, csv->fields[CSV_PAYER]);
	n = append(key, n, size, "|");
	n = append(key, n, size, csv->fields[CSV_IBAN]);

	if (!EVP_DigestInit_ex(reader->digest, reader->sha256, NULL) ||
		!EVP_DigestUpdate(reader->digest, key, n) ||
		!EVP_DigestFinal_ex(reader->digest, digest, NULL))
		elog(ERROR, "SHA-256 failed");
	if (key != stack_key)
		pfree(key);

	memcpy(&seen_key, digest, sizeof(seen_key));
	seen = seen_insert(reader->seen, seen_key, &found);
	count = seen->count = found ? seen->count + 1 : 1;
	digest[FINGERPRINT_LENGTH] = (count >> 24) & 0xFF;
	digest[FINGERPRINT_LENGTH + 1] = (count >> 16) & 0xFF;
	digest[FINGERPRINT_LENGTH + 2] = (count >> 8) & 0xFF;
	digest[FINGERPRINT_LENGTH + 3] = count & 0xFF;
	if (!EVP_DigestInit_ex(reader->digest, reader->sha256, NULL) ||
		!EVP_DigestUpdate(reader->digest, digest, sizeof(digest)) ||
		!EVP_DigestFinal_ex(reader->digest, out, NULL))
		elog(ERROR, "SHA-256 failed");
}

/* "2026-12-31", checked by the parser */
static DateADT
date_of(const char *iso)
{
	int			year = (iso[0] - '0') * 1000 + (iso[1] - '0') * 100 + (iso[2] - '0') * 10 + (iso[3] - '0'),
				month = (iso[5] - '0') * 10 + (iso[6] - '0'),
				day = (iso[8] - '0') * 10 + (iso[9] - '0');

	return date2j(year, month, day) - POSTGRES_EPOCH_JDATE;
}

void
payment_line_from_csv(PaymentReader *reader, PaymentLines *lines, const CsvLine *csv)
{
	PaymentLine *line = payment_lines_add(lines);
	char		code[8];
	int			minor_units = -1;

	currency_code(csv->fields[CSV_CURRENCY], reader->default_currency, code, sizeof(code));
	if (code[0])
		minor_units = payment_minor_units(reader, code);

	line->problem = csv->problem;
	if (!line->problem && !code[0])
		line->problem = "no currency: add a currency column or default_currency to the mapping";
	else if (!line->problem && minor_units < 0)
		line->problem = psprintf("unknown currency %s", code);
	else if (!line->problem && !decimal_to_minor(csv->amount, minor_units, &line->amount))
		line->problem = psprintf("more decimals than %s has", code);
	line->has_amount = line->problem == NULL;

	line->line_no = (int32) Min(csv->line, PG_INT32_MAX);
	line->span_start = (int32) Min(csv->start, PG_INT32_MAX);
	line->span_end = (int32) Min(csv->end, PG_INT32_MAX);
	line->has_date = csv->date[0] != '\0';
	if (line->has_date)
		line->booked_on = date_of(csv->date);
	if (strlen(code) == 3)
		memcpy(line->currency, code, 4);
	line->reference = payment_lines_strdup(lines, csv->fields[CSV_REFERENCE]);
	line->payer = payment_lines_strdup(lines, csv->fields[CSV_PAYER]);
	line->iban = payment_lines_strdup(lines, csv->fields[CSV_IBAN]);
	line->confidence = (float4) csv->confidence;
	fingerprint(reader, csv, code, line->fingerprint);
}
