/*
 * extraction.c
 *		The parsers of extract_*.c as SQL functions: parse_csv() as a set of
 *		rows (so that a statement of a million lines goes straight into a
 *		table), parse_text() and parse_email() as JSON.  Malformed input is
 *		an error with the reason and the line, SQLSTATE PR004.
 */
#include "recovery.h"
#include "extract.h"
#include "extraction.h"
#include "statement_reader.h"


#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
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

/* what the last parse_csv() of this session read, for its caller */
static long last_records = 0;
static const char *last_encoding = "";
static char last_delimiter = 0;

double
recovery_reconcile_auto_apply(void)
{
	return reconcile_auto_apply;
}

/* A bank mapping (jsonb) as the parser takes it. */
void
recovery_csv_mapping(Jsonb *mapping, CsvMapping *map, const char **default_currency)
{
	const char *order;
	int			f;

	memset(map, 0, sizeof(*map));
	for (f = 0; f < CSV_FIELD_COUNT; f++)
		map->columns[f] = mapping_text(mapping, csv_field_names[f]);
	map->delimiter = mapping_char(mapping, "delimiter");
	map->decimal = mapping_char(mapping, "decimal");
	order = mapping_text(mapping, "date_order");
	map->date_order = order ? (order[0] == 'M' ? 'M' : 'D') : 0;
	*default_currency = mapping_text(mapping, "default_currency");
}

/* The currencies we know, for reading amounts exactly. */
PaymentCurrency *
recovery_currencies(int *count)
{
	PaymentCurrency *currencies;
	uint64		i;

	SPI_connect();
	recovery_spi_exec("SELECT code, minor_units FROM recovery.currencies", 0, NULL, NULL, NULL,
					  SPI_OK_SELECT);
	currencies = SPI_palloc(sizeof(PaymentCurrency) * Max(SPI_processed, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		strlcpy(currencies[i].code, recovery_spi_text(i, 1), sizeof(currencies[i].code));
		currencies[i].minor_units = atoi(recovery_spi_text(i, 2));
	}
	*count = (int) SPI_processed;
	SPI_finish();
	return currencies;
}

struct StatementReading
{
	StatementReader *reader;
	PaymentBatch *current;
};

/* The reader is stopped if the backend gives up on it (an error, a cancel). */
static void
cancel_reading(void *arg)
{
	StatementReading *reading = arg;

	payment_batch_free(reading->current);
	reading->current = NULL;
	if (reading->reader)
		statement_reader_cancel(reading->reader);
	reading->reader = NULL;
}

/*
 * For PG_ENSURE_ERROR_CLEANUP around the reading: on ERROR or FATAL the
 * thread is stopped before anything it reads (the statement, the mapping)
 * can be freed.
 */
void
recovery_statement_reading_cancel(int code, Datum arg)
{
	cancel_reading(DatumGetPointer(arg));
}

StatementReading *
recovery_statement_reading_start(bytea *content, Jsonb *mapping)
{
	StatementReading *reading = palloc0(sizeof(StatementReading));
	MemoryContextCallback *cleanup = palloc(sizeof(MemoryContextCallback));
	CsvMapping	map;
	const char *default_currency;
	PaymentCurrency *currencies;
	int			n_currencies;

	recovery_csv_mapping(mapping, &map, &default_currency);
	currencies = recovery_currencies(&n_currencies);
	cleanup->func = cancel_reading;
	cleanup->arg = reading;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cleanup);
	reading->reader = statement_reader_start(VARDATA_ANY(content), VARSIZE_ANY_EXHDR(content), &map,
											 currencies, n_currencies, default_currency);
	if (reading->reader == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory for reading a statement")));
	return reading;
}

/* The next batch, NULL at the end; waits for the reader's thread. */
PaymentBatch *
recovery_statement_reading_next(StatementReading *reading)
{
	statement_reader_recycle(reading->reader, reading->current);
	reading->current = NULL;
	for (;;)
	{
		switch (statement_reader_next(reading->reader, &reading->current))
		{
			case READER_BATCH:
				return reading->current;
			case READER_END:
				return NULL;
			case READER_WAITING:
				CHECK_FOR_INTERRUPTS();
				break;
		}
	}
}

/* What the file was (records, encoding, delimiter); its error, if any. */
void
recovery_statement_reading_finish(StatementReading *reading, StringInfo file_json)
{
	CsvSummary	summary;
	ExtractError error;
	bool		ok;

	payment_batch_free(reading->current);
	reading->current = NULL;
	ok = statement_reader_finish(reading->reader, &summary, &error);
	reading->reader = NULL;
	if (!ok)
		report_unreadable("CSV statement", &error);
	last_records = summary.records;
	last_encoding = summary.encoding == EXTRACT_WINDOWS_1252 ? "windows-1252"
		: summary.encoding == EXTRACT_UTF8_BOM ? "utf-8 with BOM" : "utf-8";
	last_delimiter = summary.delimiter;
	if (file_json)
	{
		ExtractBuf	json;

		xbuf_init(&json);
		xbuf_appends(&json, "{\"encoding\": ");
		xbuf_json_string(&json, last_encoding, strlen(last_encoding));
		xbuf_appends(&json, ", \"delimiter\": ");
		xbuf_json_string(&json, &summary.delimiter, 1);
		xbuf_appendc(&json, '}');
		appendStringInfoString(file_json, json.data);
	}
}

static Datum
text_or_null(const char *value, bool *isnull)
{
	*isnull = value == NULL || value[0] == '\0';
	return *isnull ? (Datum) 0 : CStringGetTextDatum(value);
}

/* parse_csv(): one row */
static void
put_csv_row(ReturnSetInfo *rsinfo, const PaymentLine *line)
{
	Datum		values[13];
	bool		nulls[13] = {false};
	bytea	   *fp = palloc(VARHDRSZ + FINGERPRINT_LENGTH);

	values[0] = Int32GetDatum(line->line_no);
	values[1] = Int32GetDatum(line->span_start);
	values[2] = Int32GetDatum(line->span_end);
	values[3] = DateADTGetDatum(line->booked_on);
	nulls[3] = !line->has_date;
	values[4] = NumericGetDatum(int64_div_fast_to_numeric(line->amount_read, line->amount_scale));
	nulls[4] = !line->has_amount_read;
	values[5] = Int64GetDatum(line->amount);
	nulls[5] = !line->has_amount;
	values[6] = text_or_null(line->currency, &nulls[6]);
	values[7] = text_or_null(line->reference, &nulls[7]);
	values[8] = text_or_null(line->payer, &nulls[8]);
	values[9] = text_or_null(line->iban, &nulls[9]);
	values[10] = Float4GetDatum(line->confidence);
	SET_VARSIZE(fp, VARHDRSZ + FINGERPRINT_LENGTH);
	memcpy(VARDATA(fp), line->fingerprint, FINGERPRINT_LENGTH);
	values[11] = PointerGetDatum(fp);
	values[12] = text_or_null(line->problem, &nulls[12]);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
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
	Jsonb	   *mapping = PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1);
	ReturnSetInfo *rsinfo;
	StatementReading *reading;
	PaymentBatch *batch;
	int			i;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("a statement needs its content")));
	InitMaterializedSRF(fcinfo, 0);
	rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	reading = recovery_statement_reading_start(PG_GETARG_BYTEA_PP(0), mapping);
	PG_ENSURE_ERROR_CLEANUP(recovery_statement_reading_cancel, PointerGetDatum(reading));
	{
		while ((batch = recovery_statement_reading_next(reading)) != NULL)
			for (i = 0; i < batch->count; i++)
				put_csv_row(rsinfo, &batch->lines[i]);
	}
	PG_END_ENSURE_ERROR_CLEANUP(recovery_statement_reading_cancel, PointerGetDatum(reading));
	recovery_statement_reading_finish(reading, NULL);
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
