/*
 * payment_csv.c
 *		From what the CSV parser read to a payment: the currency (the
 *		record's or the mapping's default), the amount exactly in its minor
 *		units, the date, and the fingerprint.  Plain C (malloc, OpenSSL): it
 *		runs on the statement reader's thread, where no PostgreSQL function
 *		may be called.
 */
#include "payment_csv.h"
#include "payment_tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

/*
 * Records seen in this file, by the first 8 bytes of their digest, in an
 * open-addressing table.  A collision would only number two different
 * records as if they were equal, and their fingerprints still differ by the
 * rest of the digest; 8-byte keys keep the table of a million-line file in
 * the CPU's caches far more than 32-byte ones.
 */
typedef struct SeenSlot
{
	uint64_t	key;			/* 0: empty (a digest starting with 8 zero
								 * bytes is stored as 1) */
	uint32_t	count;
} SeenSlot;

struct PaymentReader
{
	const PaymentCurrency *currencies;
	int			n_currencies;
	const char *default_currency;
	SeenSlot   *seen;
	size_t		seen_size;		/* a power of two */
	size_t		seen_used;
	EVP_MD	   *sha256;
	EVP_MD_CTX *digest;
	char		last_code[8];	/* the currency of the record before */
	int			last_minor_units;
};

/*
 * A zeroed table whose pages are all written now.  malloc() and memset()
 * become calloc() in the compiler's hands, whose fresh pages the probes then
 * read first: the zero page is mapped, and the first write to each copies it,
 * with a TLB shootdown to the backend's CPU every time.
 */
static SeenSlot *
seen_table(size_t slots)
{
	size_t		size = slots * sizeof(SeenSlot),
				at;
	char	   *table = malloc(size);

	if (table == NULL)
		return NULL;
	for (at = 0; at < size; at += 4096)
		((volatile char *) table)[at] = 0;
	memset(table, 0, size);
	return (SeenSlot *) table;
}

PaymentReader *
payment_reader_new(const PaymentCurrency *currencies, int n_currencies,
				   const char *default_currency, size_t expected_lines)
{
	PaymentReader *reader = calloc(1, sizeof(PaymentReader));

	if (reader == NULL)
		return NULL;
	reader->currencies = currencies;
	reader->n_currencies = n_currencies;
	reader->default_currency = default_currency;
	reader->seen_size = 1024;
	while (reader->seen_size * 3 < expected_lines * 4)
		reader->seen_size *= 2;
	reader->seen = seen_table(reader->seen_size);
	/* fetched once: an implicit fetch per digest takes locks in OpenSSL 3 */
	reader->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	reader->digest = EVP_MD_CTX_new();
	if (reader->seen == NULL || reader->sha256 == NULL || reader->digest == NULL)
	{
		payment_reader_free(reader);
		return NULL;
	}
	return reader;
}

void
payment_reader_free(PaymentReader *reader)
{
	if (reader == NULL)
		return;
	EVP_MD_CTX_free(reader->digest);
	EVP_MD_free(reader->sha256);
	free(reader->seen);
	free(reader);
}

static bool
seen_grow(PaymentReader *reader)
{
	size_t		size = reader->seen_size * 2,
				i;
	SeenSlot   *slots = seen_table(size);

	if (slots == NULL)
		return false;
	for (i = 0; i < reader->seen_size; i++)
		if (reader->seen[i].key)
		{
			size_t		at = reader->seen[i].key & (size - 1);

			while (slots[at].key)
				at = (at + 1) & (size - 1);
			slots[at] = reader->seen[i];
		}
	free(reader->seen);
	reader->seen = slots;
	reader->seen_size = size;
	return true;
}

/* how many times the record was seen before, this one counted; 0: out of memory */
static uint32_t
seen_count(PaymentReader *reader, const unsigned char *digest)
{
	uint64_t	key;
	size_t		at;

	if (reader->seen_used * 4 >= reader->seen_size * 3 && !seen_grow(reader))
		return 0;
	memcpy(&key, digest, sizeof(key));
	if (key == 0)
		key = 1;
	for (at = key & (reader->seen_size - 1); reader->seen[at].key; at = (at + 1) & (reader->seen_size - 1))
		if (reader->seen[at].key == key)
			return ++reader->seen[at].count;
	reader->seen[at].key = key;
	reader->seen_used++;
	return reader->seen[at].count = 1;
}

/* a statement's lines share one currency, mostly: the last one is kept */
static int
minor_units_of(PaymentReader *reader, const char *code)
{
	int			i;

	if (strcmp(reader->last_code, code) == 0)
		return reader->last_minor_units;
	for (i = 0; i < reader->n_currencies; i++)
		if (strcmp(reader->currencies[i].code, code) == 0)
		{
			memcpy(reader->last_code, code, strlen(code) + 1);	/* < 8, as code[] */
			return reader->last_minor_units = reader->currencies[i].minor_units;
		}
	return -1;
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
decimal_to_minor(const char *decimal, int minor_units, int64_t *minor)
{
	const char *p = decimal;
	bool		negative = *p == '-';
	int64_t		value = 0;
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
		/* "12.500" is 12.50 exactly; "12.505" is not a EUR amount */
		if (decimals >= 0 && ++decimals > minor_units)
		{
			if (*p != '0')
				return false;
			continue;
		}
		if (value > (INT64_MAX - 9) / 10)
			return false;
		value = value * 10 + (*p - '0');
	}
	for (decimals = decimals < 0 ? 0 : decimals; decimals < minor_units; decimals++)
	{
		if (value > INT64_MAX / 10)
			return false;
		value *= 10;
	}
	*minor = negative ? -value : value;
	return true;
}

static size_t
append(char *out, size_t at, size_t size, const char *text, bool lower)
{
	for (; text && *text && at < size; text++)
		out[at++] = lower && *text >= 'A' && *text <= 'Z' ? *text + ('a' - 'A') : *text;
	return at;
}

static bool
sha256(PaymentReader *reader, const void *data, size_t len, unsigned char *out)
{
	return EVP_DigestInit_ex(reader->digest, reader->sha256, NULL) &&
		EVP_DigestUpdate(reader->digest, data, len) &&
		EVP_DigestFinal_ex(reader->digest, out, NULL);
}

/*
 * A record's fingerprint: SHA-256 of its normalized fields, then SHA-256 of
 * that and how many identical records came before it in the file, so that
 * two equal lines of one statement stay two payments and a second import of
 * the statement matches the first.  (As extension 0.4 computed it, so that
 * the lines imported then are still recognized.)
 */
static bool
fingerprint(PaymentReader *reader, const CsvLine *csv, const char *currency, unsigned char *out)
{
	char		stack_key[1024];
	size_t		size = 64 + strlen(csv->amount);
	char	   *key;
	size_t		n = 0;
	unsigned char digest[FINGERPRINT_LENGTH + 4];
	uint32_t	count;
	int			f;
	bool		ok;

	for (f = CSV_REFERENCE; f <= CSV_IBAN; f++)
		size += csv->fields[f] ? strlen(csv->fields[f]) : 0;
	key = size <= sizeof(stack_key) ? stack_key : malloc(size);
	if (key == NULL)
		return false;
	n = append(key, n, size, csv->date, false);
	n = append(key, n, size, "|", false);
	n = append(key, n, size, csv->amount, false);
	n = append(key, n, size, "|", false);
	n = append(key, n, size, currency, false);
	n = append(key, n, size, "|", false);
	n = append(key, n, size, csv->fields[CSV_REFERENCE], true);
	n = append(key, n, size, "|", false);
	n = append(key, n, size, csv->fields[CSV_PAYER], true);
	n = append(key, n, size, "|", false);
	n = append(key, n, size, csv->fields[CSV_IBAN], false);
	ok = sha256(reader, key, n, digest);
	if (key != stack_key)
		free(key);
	if (!ok || (count = seen_count(reader, digest)) == 0)
		return false;
	digest[FINGERPRINT_LENGTH] = (count >> 24) & 0xFF;
	digest[FINGERPRINT_LENGTH + 1] = (count >> 16) & 0xFF;
	digest[FINGERPRINT_LENGTH + 2] = (count >> 8) & 0xFF;
	digest[FINGERPRINT_LENGTH + 3] = count & 0xFF;
	return sha256(reader, digest, sizeof(digest), out);
}

/* the Julian day, as PostgreSQL's date2j() counts it */
static int
julian_day(int year, int month, int day)
{
	int			julian,
				century;

	if (month > 2)
	{
		month += 1;
		year += 4800;
	}
	else
	{
		month += 13;
		year += 4799;
	}
	century = year / 100;
	julian = year * 365 - 32167;
	julian += year / 4 - century + century / 4;
	julian += 7834 * month / 256 + day;
	return julian;
}

/* "2026-12-31", checked by the parser: days since 2000-01-01 */
static int32_t
date_of(const char *iso)
{
	int			year = (iso[0] - '0') * 1000 + (iso[1] - '0') * 100 + (iso[2] - '0') * 10 + (iso[3] - '0'),
				month = (iso[5] - '0') * 10 + (iso[6] - '0'),
				day = (iso[8] - '0') * 10 + (iso[9] - '0');

	return julian_day(year, month, day) - julian_day(2000, 1, 1);
}

bool
payment_reader_convert(PaymentReader *reader, const CsvLine *csv, PaymentLine *line,
					   PaymentArena *arena)
{
	char		code[8];
	int			minor_units = -1;

	memset(line, 0, sizeof(*line));
	line->score = -1;
	currency_code(csv->fields[CSV_CURRENCY], reader->default_currency, code, sizeof(code));
	if (code[0])
		minor_units = minor_units_of(reader, code);

	/* the parsers' problems are constants; a problem column is the record's */
	line->problem = csv->problem;
	if (line->problem && line->problem == csv->fields[CSV_PROBLEM] &&
		(line->problem = payment_arena_strdup(arena, csv->problem)) == NULL)
		return false;
	if (!line->problem && !code[0])
		line->problem = "no currency: add a currency column or default_currency to the mapping";
	else if (!line->problem && (minor_units < 0 || !decimal_to_minor(csv->amount, minor_units, &line->amount)))
	{
		char		problem[64];

		snprintf(problem, sizeof(problem), minor_units < 0 ? "unknown currency %s"
				 : "more decimals than %s has", code);
		if ((line->problem = payment_arena_strdup(arena, problem)) == NULL)
			return false;
	}
	line->has_amount = line->problem == NULL;
	if (csv->amount[0])
	{
		const char *p = csv->amount;
		int			scale = -1;

		for (p += *p == '-'; *p && line->amount_read < INT64_MAX / 100; p++)
		{
			if (*p == '.')
				scale = 0;
			else
			{
				line->amount_read = line->amount_read * 10 + (*p - '0');
				scale += scale >= 0;
			}
		}
		line->has_amount_read = *p == '\0';
		line->amount_scale = (int8_t) (scale < 0 ? 0 : scale);
		if (csv->amount[0] == '-')
			line->amount_read = -line->amount_read;
	}

	line->line_no = csv->line > INT32_MAX ? INT32_MAX : (int32_t) csv->line;
	line->span_start = csv->start > INT32_MAX ? INT32_MAX : (int32_t) csv->start;
	line->span_end = csv->end > INT32_MAX ? INT32_MAX : (int32_t) csv->end;
	line->has_date = csv->date[0] != '\0';
	if (line->has_date)
		line->booked_on = date_of(csv->date);
	if (strlen(code) == 3)
		memcpy(line->currency, code, 4);
	line->confidence = (float) csv->confidence;
#define COPY_FIELD(to, f) \
	if (csv->fields[f] && csv->fields[f][0] && \
		(line->to = payment_arena_strdup(arena, csv->fields[f])) == NULL) \
		return false
	COPY_FIELD(reference, CSV_REFERENCE);
	COPY_FIELD(payer, CSV_PAYER);
	COPY_FIELD(iban, CSV_IBAN);
	COPY_FIELD(hold, CSV_HOLD);
#undef COPY_FIELD
	return fingerprint(reader, csv, code, line->fingerprint) &&
		payment_line_tokens(line, arena);
}
