/*
 * extraction.c
 *		The parsers of extract_*.c as SQL functions: parse_csv() as a set of
 *		rows (so that a statement of a million lines goes straight into a
 *		table), parse_text() and parse_email() as JSON.  Malformed input is
 *		an error with the reason and the line, SQLSTATE PR004.
 */
#include "recovery.h"
#include "extract.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/guc.h"
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

typedef struct CsvRows
{
	ReturnSetInfo *rsinfo;
	const char *text_currency;	/* the mapping's default currency */
} CsvRows;

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
	Datum		values[11];
	bool		nulls[11] = {false};
	const char *currency = line->fields[CSV_CURRENCY];

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
	if (currency == NULL || currency[0] == '\0')
		currency = rows->text_currency;
	values[5] = text_or_null(currency, &nulls[5]);
	values[6] = text_or_null(line->fields[CSV_REFERENCE], &nulls[6]);
	values[7] = text_or_null(line->fields[CSV_PAYER], &nulls[7]);
	values[8] = text_or_null(line->fields[CSV_IBAN], &nulls[8]);
	values[9] = Float4GetDatum((float4) line->confidence);
	values[10] = text_or_null(line->problem, &nulls[10]);
	tuplestore_putvalues(rows->rsinfo->setResult, rows->rsinfo->setDesc, values, nulls);
	return true;
}

PG_FUNCTION_INFO_V1(recovery_parse_csv);
PG_FUNCTION_INFO_V1(recovery_parse_text);
PG_FUNCTION_INFO_V1(recovery_parse_email);

/*
 * recovery.parse_csv(content bytea, mapping jsonb) returns setof record:
 * one row per record after the header; amounts as plain decimals (the
 * caller knows the currency's minor units), problem says why a record is
 * not a payment.
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

	InitMaterializedSRF(fcinfo, 0);
	rows.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	rows.text_currency = mapping_text(mapping, "default_currency");
	if (!csv_parse(VARDATA_ANY(content), VARSIZE_ANY_EXHDR(content), &map,
				   put_csv_line, &rows, &summary, &error))
		report_unreadable("CSV statement", &error);
	return (Datum) 0;
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
