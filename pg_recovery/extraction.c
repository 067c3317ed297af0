/*
 * extraction.c
 *		The parsers of extract_*.c as SQL functions: parse_csv() as a set of
 *		rows (so that a statement of a million lines goes straight into a
 *		table), parse_text() and parse_email() as JSON.  Malformed input is
 *		an error with the reason and the line, SQLSTATE PR004.
 */
#include "recovery.h"
#include "extract.h"

#include <openssl/evp.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/tuplestore.h"

static double reconcile_auto_apply = 0.90;

void
recovery_define_extraction_gucs(void)
{
	DefineCustomRealVariable("recovery.reconcile_auto_apply",
							 "The match score from which a payment found is applied without a person.",
							 "1.00: a case reference; 0.95: an invoice; 0.90: the customer's number and the amount; 0.80: the payer's name and the amount.",
							 &reconcile_auto_apply, 0.90, 0.0, 1.01, PGC_SUSET, 0,
							 NULL, NULL, NULL);
}

/* The parsers allocate in the caller's memory context. */
void *
extract_realloc(void *pointer, size_t size)
{
	return pointer ? repalloc(pointer, size) : palloc(size);
}

void
extract_free(void *pointer)
{
	if (pointer)
		pfree(pointer);
}

static void
report_unreadable(const char *what, const ExtractError *error)
{
	ereport(ERROR,
			(errcode(ERRCODE_RECOVERY_VALIDATION),
			 errmsg("cannot read the %s: %s", what, error->message),
			 error->line ? errdetail("The problem is on line %ld.", error->line) : 0,
			 errhint("Nothing was imported; correct the file or its column mapping and send it again.")));
}

/* mapping ->> key, or NULL */
static const char *
mapping_text(Jsonb *mapping, const char *key)
{
	JsonbValue	value;

	if (mapping == NULL ||
		!getKeyJsonValueFromContainer(&mapping->root, key, strlen(key), &value) ||
		value.type != jbvString)
		return NULL;
	return pnstrdup(value.val.string.val, value.val.string.len);
}

static char
mapping_char(Jsonb *mapping, const char *key)
{
	const char *value = mapping_text(mapping, key);

	if (value == NULL)
		return 0;
	if (strcmp(value, "tab") == 0 || strcmp(value, "\t") == 0)
		return '\t';
	if (strlen(value) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("the mapping's \"%s\" must be one character", key),
				 errhint("For example {\"delimiter\": \";\", \"decimal\": \",\"}.")));
	return value[0];
}

#define MAX_CURRENCIES 256
#define DIGEST_LENGTH 32

typedef struct Currency
{
	char		code[4];
	int			minor_units;
} Currency;

/* how often a record's fields were seen before in this file */
typedef struct SeenRecord
{
	unsigned char digest[DIGEST_LENGTH];
	uint32		count;
} SeenRecord;

typedef struct CsvRows
{
	ReturnSetInfo *rsinfo;
	const char *default_currency;
	Currency	currencies[MAX_CURRENCIES];
	int			n_currencies;
	HTAB	   *seen;
	long		records;
} CsvRows;

/* what the last parse_csv() of this session read, for its caller */
static long last_records = 0;
static const char *last_encoding = "";
static char last_delimiter = 0;

static void
load_currencies(CsvRows *rows)
{
	uint64		i;

	SPI_connect();
	recovery_spi_exec("SELECT code, minor_units FROM recovery.currencies", 0, NULL, NULL, NULL,
					  SPI_OK_SELECT);
	for (i = 0; i < SPI_processed && i < MAX_CURRENCIES; i++)
	{
		strlcpy(rows->currencies[i].code, recovery_spi_text(i, 1), sizeof(rows->currencies[i].code));
		rows->currencies[i].minor_units = atoi(recovery_spi_text(i, 2));
	}
	rows->n_currencies = (int) i;
	SPI_finish();
}

static const Currency *
find_currency(const CsvRows *rows, const char *code)
{
	int			i;

	for (i = 0; i < rows->n_currencies; i++)
		if (strcmp(rows->currencies[i].code, code) == 0)
			return &rows->currencies[i];
	return NULL;
}

/* "EUR", from " eur " or the mapping's default; "" when none */
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
 * when it has more decimals than that.
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
		value = value * 10 + (*p - '0');
	}
	for (decimals = Max(decimals, 0); decimals < minor_units; decimals++)
		value *= 10;
	*minor = negative ? -value : value;
	return true;
}

static void
lower_into(StringInfo out, const char *text)
{
	for (; text && *text; text++)
		appendStringInfoChar(out, (*text >= 'A' && *text <= 'Z') ? *text + ('a' - 'A') : *text);
}

/*
 * A record's fingerprint: SHA-256 of its normalized fields, then SHA-256 of
 * that and how many identical records came before it in the file, so that
 * two equal lines of one statement stay two payments and a second import of
 * the statement matches the first.
 */
static bytea *
fingerprint(CsvRows *rows, const CsvLine *line, const char *currency)
{
	StringInfoData key;
	unsigned char digest[DIGEST_LENGTH + 4];
	bytea	   *result = palloc(VARHDRSZ + DIGEST_LENGTH);
	SeenRecord *seen;
	bool		found;

	initStringInfo(&key);
	appendStringInfo(&key, "%s|%s|%s|", line->date, line->amount, currency);
	lower_into(&key, line->fields[CSV_REFERENCE]);
	appendStringInfoChar(&key, '|');
	lower_into(&key, line->fields[CSV_PAYER]);
	appendStringInfo(&key, "|%s", line->fields[CSV_IBAN] ? line->fields[CSV_IBAN] : "");
	if (EVP_Digest(key.data, key.len, digest, NULL, EVP_sha256(), NULL) != 1)
		elog(ERROR, "SHA-256 failed");
	pfree(key.data);

	seen = hash_search(rows->seen, digest, HASH_ENTER, &found);
	seen->count = found ? seen->count + 1 : 1;
	digest[DIGEST_LENGTH] = (seen->count >> 24) & 0xFF;
	digest[DIGEST_LENGTH + 1] = (seen->count >> 16) & 0xFF;
	digest[DIGEST_LENGTH + 2] = (seen->count >> 8) & 0xFF;
	digest[DIGEST_LENGTH + 3] = seen->count & 0xFF;
	if (EVP_Digest(digest, sizeof(digest), (unsigned char *) VARDATA(result), NULL,
				   EVP_sha256(), NULL) != 1)
		elog(ERROR, "SHA-256 failed");
	SET_VARSIZE(result, VARHDRSZ + DIGEST_LENGTH);
	return result;
}

static Datum
text_or_null(const char *value, bool *isnull)
{
	*isnull = value == NULL || value[0] == '\0';
	return *isnull ? (Datum) 0 : CStringGetTextDatum(value);
}

static bool
put_csv_line(void *arg, const CsvLine *line)
{
	CsvRows    *rows = arg;
	Datum		values[13];
	bool		nulls[13] = {false};
	char		code[8];
	const Currency *currency;
	const char *problem = line->problem;
	int64		minor = 0;

	rows->records++;
	currency_code(line->fields[CSV_CURRENCY], rows->default_currency, code, sizeof(code));
	currency = code[0] ? find_currency(rows, code) : NULL;
	if (!problem && !code[0])
		problem = "no currency: add a currency column or default_currency to the mapping";
	else if (!problem && !currency)
		problem = psprintf("unknown currency %s", code);
	else if (!problem && !decimal_to_minor(line->amount, currency->minor_units, &minor))
		problem = psprintf("more decimals than %s has", code);

	values[0] = Int32GetDatum((int32) line->line);
	values[1] = Int32GetDatum((int32) line->start);
	values[2] = Int32GetDatum((int32) line->end);
	if (line->date[0])
		values[3] = DirectFunctionCall1(date_in, CStringGetDatum(line->date));
	else
		nulls[3] = true;
	if (line->amount[0])
		values[4] = DirectFunctionCall3(numeric_in, CStringGetDatum(line->amount),
										ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	else
		nulls[4] = true;
	values[5] = Int64GetDatum(minor);
	nulls[5] = problem != NULL;
	values[6] = text_or_null(code, &nulls[6]);
	values[7] = text_or_null(line->fields[CSV_REFERENCE], &nulls[7]);
	values[8] = text_or_null(line->fields[CSV_PAYER], &nulls[8]);
	values[9] = text_or_null(line->fields[CSV_IBAN], &nulls[9]);
	values[10] = Float4GetDatum((float4) line->confidence);
	values[11] = PointerGetDatum(fingerprint(rows, line, code));
	values[12] = text_or_null(problem, &nulls[12]);
	tuplestore_putvalues(rows->rsinfo->setResult, rows->rsinfo->setDesc, values, nulls);
	return true;
}

PG_FUNCTION_INFO_V1(recovery_parse_csv);
PG_FUNCTION_INFO_V1(recovery_parse_csv_summary);
PG_FUNCTION_INFO_V1(recovery_parse_text);
PG_FUNCTION_INFO_V1(recovery_parse_email);

/*
 * recovery.parse_csv(content bytea, mapping jsonb) returns setof record:
 * one row per record after the header, the amount as read and in minor
 * units of its currency (exactly, or null with the problem), and the
 * record's fingerprint; problem says why a record is not a payment.
 */
Datum
recovery_parse_csv(PG_FUNCTION_ARGS)
{
	bytea	   *content;
	Jsonb	   *mapping = PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1);
	CsvMapping	map;
	CsvSummary	summary;
	ExtractError error = {0};
	CsvRows		rows;
	int			f;
	const char *order;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("a statement needs its content")));
	content = PG_GETARG_BYTEA_PP(0);
	memset(&map, 0, sizeof(map));
	for (f = 0; f < CSV_FIELD_COUNT; f++)
		map.columns[f] = mapping_text(mapping, csv_field_names[f]);
	map.delimiter = mapping_char(mapping, "delimiter");
	map.decimal = mapping_char(mapping, "decimal");
	order = mapping_text(mapping, "date_order");
	map.date_order = order ? (order[0] == 'M' ? 'M' : 'D') : 0;

	memset(&rows, 0, sizeof(rows));
	load_currencies(&rows);
	{
		HASHCTL		ctl;

		ctl.keysize = DIGEST_LENGTH;
		ctl.entrysize = sizeof(SeenRecord);
		ctl.hcxt = CurrentMemoryContext;
		rows.seen = hash_create("records seen", 1024, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	InitMaterializedSRF(fcinfo, 0);
	rows.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	rows.default_currency = mapping_text(mapping, "default_currency");
	if (!csv_parse(VARDATA_ANY(content), VARSIZE_ANY_EXHDR(content), &map,
				   put_csv_line, &rows, &summary, &error))
		report_unreadable("CSV statement", &error);
	last_records = rows.records;
	last_encoding = summary.encoding == EXTRACT_WINDOWS_1252 ? "windows-1252"
		: summary.encoding == EXTRACT_UTF8_BOM ? "utf-8 with BOM" : "utf-8";
	last_delimiter = summary.delimiter;
	return (Datum) 0;
}

/*
 * recovery.parse_csv_summary() returns jsonb: what the last parse_csv() of
 * this session read (records, encoding, delimiter).
 */
Datum
recovery_parse_csv_summary(PG_FUNCTION_ARGS)
{
	ExtractBuf	json;
	char		records[64];
	char		delimiter = last_delimiter ? last_delimiter : ',';

	xbuf_init(&json);
	snprintf(records, sizeof(records), "{\"records\": %ld, \"encoding\": ", last_records);
	xbuf_appends(&json, records);
	xbuf_json_string(&json, last_encoding, strlen(last_encoding));
	xbuf_appends(&json, ", \"delimiter\": ");
	xbuf_json_string(&json, &delimiter, 1);
	xbuf_appendc(&json, '}');
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(json.data)));
}

static Jsonb *
json_to_jsonb(const ExtractBuf *json)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json->data)));
}

typedef struct TextItems
{
	ExtractBuf *out;
	const char *text;
	int			count;
} TextItems;

static bool
put_text_item(void *arg, const TextItem *item)
{
	TextItems  *items = arg;
	char		numbers[96];

	if (items->count++)
		xbuf_appendc(items->out, ',');
	xbuf_appends(items->out, "{\"kind\":");
	xbuf_json_string(items->out, item->kind, strlen(item->kind));
	xbuf_appends(items->out, ",\"value\":");
	xbuf_json_string(items->out, item->value, strlen(item->value));
	if (item->currency[0])
	{
		xbuf_appends(items->out, ",\"currency\":");
		xbuf_json_string(items->out, item->currency, strlen(item->currency));
	}
	snprintf(numbers, sizeof(numbers), ",\"start\":%zu,\"end\":%zu,\"confidence\":%.2f,\"text\":",
			 item->start, item->end, item->confidence);
	xbuf_appends(items->out, numbers);
	xbuf_json_string(items->out, items->text + item->start, item->end - item->start);
	xbuf_appendc(items->out, '}');
	return items->count < 1000;
}

/* the items of a text as a JSON array into out */
static void
text_items(const char *text, size_t len, ExtractBuf *out)
{
	TextItems	items = {out, text, 0};
	ExtractError error = {0};

	xbuf_appendc(out, '[');
	if (!text_parse(text, len, put_text_item, &items, &error))
		report_unreadable("text", &error);
	xbuf_appendc(out, ']');
}

/*
 * recovery.parse_text(content text) returns jsonb: {"items": [{kind, value,
 * currency, start, end, confidence, text}]}, spans in bytes.
 */
Datum
recovery_parse_text(PG_FUNCTION_ARGS)
{
	text	   *content = PG_GETARG_TEXT_PP(0);
	ExtractBuf	out;

	xbuf_init(&out);
	xbuf_appends(&out, "{\"items\":");
	text_items(VARDATA_ANY(content), VARSIZE_ANY_EXHDR(content), &out);
	xbuf_appendc(&out, '}');
	PG_RETURN_JSONB_P(json_to_jsonb(&out));
}

/*
 * recovery.parse_email(content bytea) returns jsonb: subject, from, date,
 * message_id, text and text_source, the text's items, attachments.
 */
Datum
recovery_parse_email(PG_FUNCTION_ARGS)
{
	bytea	   *content = PG_GETARG_BYTEA_PP(0);
	ExtractBuf	out;
	ExtractError error = {0};
	Jsonb	   *email;
	JsonbValue	text;

	xbuf_init(&out);
	if (!email_parse(VARDATA_ANY(content), VARSIZE_ANY_EXHDR(content), &out, &error))
		report_unreadable("email", &error);
	email = json_to_jsonb(&out);

	/* and what its text says */
	if (getKeyJsonValueFromContainer(&email->root, "text", 4, &text) &&
		text.type == jbvString)
	{
		ExtractBuf	with_items;

		xbuf_init(&with_items);
		xbuf_append(&with_items, out.data, out.len - 1);	/* without the '}' */
		xbuf_appends(&with_items, ",\"items\":");
		text_items(text.val.string.val, Min(text.val.string.len, EXTRACT_MAX_TEXT), &with_items);
		xbuf_appendc(&with_items, '}');
		email = json_to_jsonb(&with_items);
	}
	PG_RETURN_JSONB_P(email);
}
