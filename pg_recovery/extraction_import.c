/*
 * extraction_import.c
 *		Payments found in a statement or a text, into extraction_lines: a line
 *		imported before is skipped by its fingerprint, the others are matched
 *		and applied (reconcile.c), then written in bulk (bulk_insert.c).
 *
 * Imports take one transaction-level advisory lock, keyed by the OID of
 * extraction_lines, so that two imports of one statement cannot both find
 * its lines new; the fingerprints they compare with are those of the lines
 * of earlier extractions whose dates overlap (extractions.booked_from,
 * booked_to, has_undated), read through the id range of each
 * (first_line_id, last_line_id) and the table's BRIN index on id.  No
 * btree is kept on a million-line import: each cost more than the import.
 */
#include "recovery.h"
#include "bulk_insert.h"
#include "payment_lines.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"

static const char *const line_columns[] = {
	"id", "extraction_id", "line_no", "span_start", "span_end", "booked_on", "amount",
	"currency", "reference", "payer", "iban", "confidence", "fingerprint", "status",
	"case_id", "customer_id", "score", "reason", "receipt_id"
};

#define N_LINE_COLUMNS lengthof(line_columns)

static void
require_read_committed(void)
{
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("payments are imported at the READ COMMITTED isolation level"),
				 errdetail("An import compares its lines with those imported before it, which a snapshot taken earlier might not show."),
				 errhint("Run it in a transaction of its own, without SET TRANSACTION ISOLATION LEVEL.")));
}

/* Earlier lines of the same dates: their fingerprints, into existing. */
static void
load_existing(PaymentLines *lines, FingerprintSet *existing)
{
	static const char *ranges_sql =
		"SELECT first_line_id, last_line_id FROM recovery.extractions"
		" WHERE first_line_id IS NOT NULL"
		"   AND ((booked_from <= $2 AND booked_to >= $1) OR (has_undated AND $3))";
	static const char *fingerprints_sql =
		"SELECT fingerprint FROM recovery.extraction_lines"
		" WHERE id BETWEEN $1 AND $2"
		"   AND (booked_on BETWEEN $3 AND $4 OR ($5 AND booked_on IS NULL))";
	Oid			range_types[3] = {DATEOID, DATEOID, BOOLOID};
	Oid			types[5] = {INT8OID, INT8OID, DATEOID, DATEOID, BOOLOID};
	Datum		values[5];
	char		nulls[5] = "     ";
	bool		dated = false,
				undated = false;
	DateADT		from = 0,
				to = 0;
	int64		i;
	uint64		r,
				n_ranges;
	int64	   *ranges;

	for (i = 0; i < lines->count; i++)
	{
		PaymentLine *line = &lines->items[i];

		if (!line->has_date)
			undated = true;
		else if (!dated || line->booked_on < from || line->booked_on > to)
		{
			from = dated ? Min(from, line->booked_on) : line->booked_on;
			to = dated ? Max(to, line->booked_on) : line->booked_on;
			dated = true;
		}
	}
	values[0] = DateADTGetDatum(from);
	values[1] = DateADTGetDatum(to);
	values[2] = BoolGetDatum(undated);
	if (!dated)
		nulls[0] = nulls[1] = 'n';

	SPI_connect();
	recovery_spi_exec(ranges_sql, 3, range_types, values, nulls, SPI_OK_SELECT);
	n_ranges = SPI_processed;
	ranges = palloc(sizeof(int64) * 2 * Max(n_ranges, 1));
	for (r = 0; r < n_ranges; r++)
	{
		ranges[2 * r] = recovery_spi_int64(r, 1, NULL);
		ranges[2 * r + 1] = recovery_spi_int64(r, 2, NULL);
	}
	for (r = 0; r < n_ranges; r++)
	{
		uint64		k;

		values[0] = Int64GetDatum(ranges[2 * r]);
		values[1] = Int64GetDatum(ranges[2 * r + 1]);
		values[2] = DateADTGetDatum(from);
		values[3] = DateADTGetDatum(to);
		values[4] = BoolGetDatum(undated);
		nulls[2] = nulls[3] = dated ? ' ' : 'n';
		recovery_spi_exec(fingerprints_sql, 5, types, values, nulls, SPI_OK_SELECT);
		for (k = 0; k < SPI_processed; k++)
		{
			bool		isnull;
			bytea	   *fp = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[k],
														   SPI_tuptable->tupdesc, 1, &isnull));

			if (!isnull && VARSIZE_ANY_EXHDR(fp) == FINGERPRINT_LENGTH)
				fingerprint_set_add(existing, (unsigned char *) VARDATA_ANY(fp));
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_finish();
}

/* Ids for n lines, in one range: nextval() and setval() under the lock. */
static int64
reserve_ids(int64 n)
{
	int64		first;
	Oid			int8oid = INT8OID;
	Datum		last;

	SPI_connect();
	recovery_spi_exec("SELECT nextval(pg_get_serial_sequence('recovery.extraction_lines', 'id'))",
					  0, NULL, NULL, NULL, SPI_OK_SELECT);
	first = recovery_spi_int64(0, 1, NULL);
	if (n > 1)
	{
		last = Int64GetDatum(first + n - 1);
		recovery_spi_exec("SELECT setval(pg_get_serial_sequence('recovery.extraction_lines', 'id'), $1)",
						  1, &int8oid, &last, NULL, SPI_OK_SELECT);
	}
	SPI_finish();
	return first;
}

static Datum
text_datum(const char *value, int max_chars, bool *isnull)
{
	int			len;

	*isnull = value == NULL;
	if (*isnull)
		return (Datum) 0;
	len = strlen(value);
	/* left(value, max_chars), as characters */
	if (pg_mbstrlen_with_len(value, len) > max_chars)
		len = pg_mbcharcliplen(value, len, max_chars);
	return PointerGetDatum(cstring_to_text_with_len(value, len));
}

static void
store_lines(PaymentLines *lines, int64 extraction_id, bool *skip)
{
	Oid			relid = get_relname_relid("extraction_lines", get_namespace_oid("recovery", false));
	AttrNumber	at[N_LINE_COLUMNS];
	Datum		scores[101];
	BulkInsert *bulk;
	int64		i;
	int			c;

	for (c = 0; c < (int) N_LINE_COLUMNS; c++)
	{
		at[c] = get_attnum(relid, line_columns[c]) - 1;
		if (at[c] < 0)
			elog(ERROR, "extraction_lines has no column %s", line_columns[c]);
	}
	for (c = 0; c <= 100; c++)
		scores[c] = DirectFunctionCall3(numeric_in, CStringGetDatum(psprintf("%d.%02d", c / 100, c % 100)),
										ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));

	bulk = bulk_insert_begin(relid);
	for (i = 0; i < lines->count; i++)
	{
		PaymentLine *line = &lines->items[i];
		TupleTableSlot *slot;
		Datum	   *v;
		bool	   *n;
		MemoryContext old;
		bytea	   *fp;

		if (skip[i])
			continue;
		slot = bulk_insert_slot(bulk);
		v = slot->tts_values;
		n = slot->tts_isnull;
		memset(n, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);
		old = MemoryContextSwitchTo(bulk_insert_batch_context(bulk));

		v[at[0]] = Int64GetDatum(line->id), n[at[0]] = false;
		v[at[1]] = Int64GetDatum(extraction_id), n[at[1]] = false;
		v[at[2]] = Int32GetDatum(line->line_no), n[at[2]] = line->line_no == 0;
		v[at[3]] = Int32GetDatum(line->span_start), n[at[3]] = false;
		v[at[4]] = Int32GetDatum(line->span_end), n[at[4]] = false;
		v[at[5]] = DateADTGetDatum(line->booked_on), n[at[5]] = !line->has_date;
		v[at[6]] = Int64GetDatum(line->amount), n[at[6]] = !line->has_amount;
		v[at[7]] = text_datum(line->currency[0] ? line->currency : NULL, 3, &n[at[7]]);
		v[at[8]] = text_datum(line->reference, 1000, &n[at[8]]);
		v[at[9]] = text_datum(line->payer, 500, &n[at[9]]);
		v[at[10]] = text_datum(line->iban, 64, &n[at[10]]);
		v[at[11]] = Float4GetDatum(line->confidence), n[at[11]] = false;
		fp = palloc(VARHDRSZ + FINGERPRINT_LENGTH);
		SET_VARSIZE(fp, VARHDRSZ + FINGERPRINT_LENGTH);
		memcpy(VARDATA(fp), line->fingerprint, FINGERPRINT_LENGTH);
		v[at[12]] = PointerGetDatum(fp), n[at[12]] = false;
		v[at[13]] = text_datum(line->status, 20, &n[at[13]]);
		v[at[14]] = Int64GetDatum(line->case_id), n[at[14]] = line->case_id == 0;
		v[at[15]] = Int64GetDatum(line->customer_id), n[at[15]] = line->customer_id == 0;
		v[at[16]] = line->score >= 0 ? scores[Min(line->score, 100)] : (Datum) 0, n[at[16]] = line->score < 0;
		v[at[17]] = text_datum(line->reason, 1000, &n[at[17]]);
		v[at[18]] = Int64GetDatum(line->receipt_id), n[at[18]] = line->receipt_id == 0;

		MemoryContextSwitchTo(old);
		bulk_insert_add(bulk, slot);
	}
	(void) bulk_insert_end(bulk);
}

/* The extraction's id and date ranges, for the imports after it. */
static void
record_ranges(PaymentLines *lines, bool *skip, int64 extraction_id, int64 first_id, int64 last_id)
{
	static const char *sql =
		"UPDATE recovery.extractions"
		"   SET first_line_id = least(first_line_id, $2), last_line_id = greatest(last_line_id, $3),"
		"       booked_from = least(booked_from, $4), booked_to = greatest(booked_to, $5),"
		"       has_undated = has_undated OR $6"
		" WHERE id = $1";
	Oid			types[6] = {INT8OID, INT8OID, INT8OID, DATEOID, DATEOID, BOOLOID};
	Datum		values[6];
	char		nulls[6] = "      ";
	bool		dated = false,
				undated = false;
	DateADT		from = 0,
				to = 0;
	int64		i;

	for (i = 0; i < lines->count; i++)
	{
		PaymentLine *line = &lines->items[i];

		if (skip[i])
			continue;
		if (!line->has_date)
			undated = true;
		else
		{
			from = dated ? Min(from, line->booked_on) : line->booked_on;
			to = dated ? Max(to, line->booked_on) : line->booked_on;
			dated = true;
		}
	}
	values[0] = Int64GetDatum(extraction_id);
	values[1] = Int64GetDatum(first_id);
	values[2] = Int64GetDatum(last_id);
	values[3] = DateADTGetDatum(from);
	values[4] = DateADTGetDatum(to);
	values[5] = BoolGetDatum(undated);
	if (!dated)
		nulls[3] = nulls[4] = 'n';
	SPI_connect();
	recovery_spi_exec(sql, 6, types, values, nulls, SPI_OK_UPDATE);
	SPI_finish();
}

/*
 * The lines read from one source of an extraction: skip those imported
 * before, match and apply the others, store them.  Returns the outcome as
 * JSON: records, lines added, duplicates, lines by status, the first case
 * a line went to.
 */
static Jsonb *
import_lines(PaymentLines *lines, int64 extraction_id, int64 case_id, const char *file_json)
{
	static const char *lock_sql =
		"SELECT pg_advisory_xact_lock('recovery.extraction_lines'::regclass::oid::bigint)";
	FingerprintSet *existing = fingerprint_set_create(1024);
	bool	   *skip = palloc_extended(sizeof(bool) * Max(lines->count, 1), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	PaymentLines fresh;
	int64		added = 0,
				first_id = 0,
				i;
	int64		counts[4] = {0, 0, 0, 0};
	const char *const statuses[4] = {"applied", "review", "unmatched", "ignored"};
	int64		first_case = 0;
	StringInfoData json;
	int			s;

	require_read_committed();
	SPI_connect();
	recovery_spi_exec(lock_sql, 0, NULL, NULL, NULL, SPI_OK_SELECT);
	SPI_finish();

	load_existing(lines, existing);
	for (i = 0; i < lines->count; i++)
	{
		skip[i] = fingerprint_set_contains(existing, lines->items[i].fingerprint);
		added += !skip[i];
	}

	/* match and apply the new lines only */
	fresh = *lines;
	if (added < lines->count)
	{
		int64		k = 0;

		fresh.items = palloc_extended(sizeof(PaymentLine) * Max(added, 1), MCXT_ALLOC_HUGE);
		for (i = 0; i < lines->count; i++)
			if (!skip[i])
				fresh.items[k++] = lines->items[i];
		fresh.count = added;
		memset(skip, 0, sizeof(bool) * lines->count);
	}
	if (added > 0)
	{
		first_id = reserve_ids(added);
		for (i = 0; i < added; i++)
			fresh.items[i].id = first_id + i;
		reconcile_match(&fresh, case_id);
		reconcile_apply(&fresh, extraction_id, recovery_reconcile_auto_apply());
		store_lines(&fresh, extraction_id, skip);
		record_ranges(&fresh, skip, extraction_id, first_id, first_id + added - 1);
	}

	for (i = 0; i < added; i++)
	{
		for (s = 0; s < 4; s++)
			if (strcmp(fresh.items[i].status, statuses[s]) == 0)
				counts[s]++;
		if (first_case == 0 && fresh.items[i].case_id > 0)
			first_case = fresh.items[i].case_id;
	}
	initStringInfo(&json);
	appendStringInfo(&json, "{\"records\": %lld, \"added\": %lld, \"duplicates\": %lld, \"by_status\": {",
					 (long long) lines->count, (long long) added, (long long) (lines->count - added));
	for (s = 0; s < 4; s++)
		appendStringInfo(&json, "%s\"%s\": %lld", s ? ", " : "", statuses[s], (long long) counts[s]);
	appendStringInfoChar(&json, '}');
	if (first_case > 0)
		appendStringInfo(&json, ", \"case_id\": %lld", (long long) first_case);
	if (file_json)
		appendStringInfo(&json, ", \"file\": %s", file_json);
	appendStringInfoChar(&json, '}');
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json.data)));
}

PG_FUNCTION_INFO_V1(recovery_extraction_import_csv);
PG_FUNCTION_INFO_V1(recovery_extraction_import_line);

/*
 * recovery.extraction_import_csv(extraction_id bigint, content bytea,
 * mapping jsonb, case_id bigint) returns jsonb: the payments of a CSV
 * statement, imported.
 */
Datum
recovery_extraction_import_csv(PG_FUNCTION_ARGS)
{
	int64		extraction_id = PG_GETARG_INT64(0);
	bytea	   *content = PG_GETARG_BYTEA_PP(1);
	Jsonb	   *mapping = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	int64		case_id = PG_ARGISNULL(3) ? 0 : PG_GETARG_INT64(3);
	PaymentLines lines;
	StringInfoData file;

	payment_lines_init(&lines, VARSIZE_ANY_EXHDR(content) / 64);
	initStringInfo(&file);
	recovery_csv_read(&lines, NULL, NULL, content, mapping, &file);
	PG_RETURN_JSONB_P(import_lines(&lines, extraction_id, case_id, file.data));
}

/*
 * recovery.extraction_import_line(extraction_id bigint, case_id bigint,
 * booked_on date, amount bigint, currency text, reference text, span_start
 * integer, span_end integer, confidence real, fingerprint bytea, problem
 * text) returns jsonb: one payment read from a text, imported.
 */
Datum
recovery_extraction_import_line(PG_FUNCTION_ARGS)
{
	int64		extraction_id = PG_GETARG_INT64(0);
	int64		case_id = PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1);
	PaymentLines lines;
	PaymentLine *line;
	bytea	   *fp;

	if (PG_ARGISNULL(9) || VARSIZE_ANY_EXHDR(PG_GETARG_BYTEA_PP(9)) != FINGERPRINT_LENGTH)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("a payment line needs a SHA-256 fingerprint")));
	payment_lines_init(&lines, 1);
	line = payment_lines_add(&lines);
	line->has_date = !PG_ARGISNULL(2);
	if (line->has_date)
		line->booked_on = PG_GETARG_DATEADT(2);
	line->has_amount = !PG_ARGISNULL(3);
	if (line->has_amount)
		line->amount = PG_GETARG_INT64(3);
	if (!PG_ARGISNULL(4))
		strlcpy(line->currency, text_to_cstring(PG_GETARG_TEXT_PP(4)), sizeof(line->currency));
	line->reference = PG_ARGISNULL(5) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(5));
	line->span_start = PG_ARGISNULL(6) ? 0 : PG_GETARG_INT32(6);
	line->span_end = PG_ARGISNULL(7) ? 0 : PG_GETARG_INT32(7);
	line->confidence = PG_ARGISNULL(8) ? 1.0f : PG_GETARG_FLOAT4(8);
	fp = PG_GETARG_BYTEA_PP(9);
	memcpy(line->fingerprint, VARDATA_ANY(fp), FINGERPRINT_LENGTH);
	line->problem = PG_ARGISNULL(10) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(10));
	PG_RETURN_JSONB_P(import_lines(&lines, extraction_id, case_id, NULL));
}
