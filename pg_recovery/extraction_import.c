/*
 * extraction_import.c
 *		Payments found in a statement or a text, into extraction_lines, a
 *		batch at a time as the statement reader hands them over: lines
 *		imported before are skipped by their fingerprint, the others matched
 *		and applied (reconcile.c), then written in bulk (bulk_insert.c).
 *
 * Imports take one transaction-level advisory lock, keyed by the OID of
 * extraction_lines, so that two imports of one statement cannot both find
 * its lines new.  A fingerprint includes the line's date, so a batch is
 * compared with the earlier lines of its dates only: those of the
 * extractions whose dates overlap (extractions.booked_from, booked_to,
 * has_undated), read through each one's id range (first_line_id,
 * last_line_id) and the BRIN index on id, each date once per import.  No
 * btree is kept that every line enters: each cost more than the import.
 */
#include "recovery.h"
#include "bulk_insert.h"
#include "extraction.h"
#include "payment_tokens.h"
#include "reconcile.h"
#include "pii.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "portability/instr_time.h"
#include "storage/ipc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

/* fingerprints read from earlier lines; SHA-256, so any 4 bytes hash */
typedef struct Fingerprint
{
	unsigned char bytes[FINGERPRINT_LENGTH];
} Fingerprint;

typedef struct FingerprintEntry
{
	Fingerprint key;
	char		status;
} FingerprintEntry;

static inline uint32
fingerprint_hash(const Fingerprint *key)
{
	uint32		hash;

	memcpy(&hash, key->bytes, sizeof(hash));
	return hash;
}

#define SH_PREFIX fingerprints
#define SH_ELEMENT_TYPE FingerprintEntry
#define SH_KEY_TYPE Fingerprint
#define SH_KEY key
#define SH_HASH_KEY(tb, key) fingerprint_hash(&(key))
#define SH_EQUAL(tb, a, b) (memcmp((a).bytes, (b).bytes, FINGERPRINT_LENGTH) == 0)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

static const char *const line_columns[] = {
	"id", "extraction_id", "line_no", "span_start", "span_end", "booked_on", "amount",
	"currency", "reference", "payer", "iban", "confidence", "fingerprint", "status",
	"case_id", "customer_id", "score", "reason", "receipt_id", "iban_index"
};

#define N_LINE_COLUMNS lengthof(line_columns)
#define IBAN_INDEX_COLUMN (N_LINE_COLUMNS - 1)

/* One import into one extraction. */
typedef struct Import
{
	int64		extraction_id;
	int64		case_id;
	double		threshold;

	/* duplicates: the earlier lines of the dates seen so far */
	fingerprints_hash *existing;
	bool		compared_dated;
	DateADT		compared_from;
	DateADT		compared_to;
	bool		compared_undated;

	ReconcileState *reconcile;
	BulkInsert *bulk;			/* open from the first line stored */
	Datum		status_names[PAYMENT_STATUS_COUNT];
	char		currencies[8][4];	/* the currencies met, as text datums */
	Datum		currency_datums[8];
	int			n_currencies;
	MemoryContext context;		/* the import's own */
	Oid			relid;
	AttrNumber	at[N_LINE_COLUMNS];
	bool		sealed;			/* payer and IBAN sealed (0.13 and later) */
	Datum		scores[101];
	MemoryContext batch_context;

	/* what was added */
	int64		records;
	int64		added;
	int64		first_id;
	int64		last_id;
	bool		dated;
	DateADT		from;
	DateADT		to;
	bool		undated;
	int64		by_status[PAYMENT_STATUS_COUNT];
	int64		first_case;
} Import;

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

static void
import_begin(Import *import, int64 extraction_id, int64 case_id)
{
	static const char *lock_sql =
		"SELECT pg_advisory_xact_lock('recovery.extraction_lines'::regclass::oid::bigint)";
	int			c;

	require_read_committed();
	memset(import, 0, sizeof(*import));
	import->extraction_id = extraction_id;
	import->case_id = case_id;
	import->threshold = recovery_reconcile_auto_apply();
	import->context = CurrentMemoryContext;
	import->existing = fingerprints_create(CurrentMemoryContext, 1024, NULL);
	import->reconcile = reconcile_begin();
	import->batch_context = AllocSetContextCreate(CurrentMemoryContext, "import batch",
												  ALLOCSET_DEFAULT_SIZES);
	import->relid = get_relname_relid("extraction_lines", get_namespace_oid("recovery", false));
	import->sealed = true;
	for (c = 0; c < (int) N_LINE_COLUMNS; c++)
	{
		import->at[c] = get_attnum(import->relid, line_columns[c]) - 1;
		if (import->at[c] < 0 && c == IBAN_INDEX_COLUMN)
			import->sealed = false; /* a schema before 0.13: stored as read */
		else if (import->at[c] < 0)
			elog(ERROR, "extraction_lines has no column %s", line_columns[c]);
	}
	for (c = 0; c < PAYMENT_STATUS_COUNT; c++)
		import->status_names[c] = CStringGetTextDatum(payment_status_names[c]);
	for (c = 0; c <= 100; c++)
		import->scores[c] = DirectFunctionCall3(numeric_in, CStringGetDatum(psprintf("%d.%02d", c / 100, c % 100)),
												ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	SPI_connect();
	recovery_spi_exec(lock_sql, 0, NULL, NULL, NULL, SPI_OK_SELECT);
	SPI_finish();
}

/* the earliest and latest date of the lines, and whether some have none */
static void
date_range(PaymentLine *lines, int n, bool *dated, DateADT *from, DateADT *to, bool *undated)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		if (!lines[i].has_date)
			*undated = true;
		else
		{
			*from = *dated ? Min(*from, lines[i].booked_on) : lines[i].booked_on;
			*to = *dated ? Max(*to, lines[i].booked_on) : lines[i].booked_on;
			*dated = true;
		}
	}
}

/*
 * The fingerprints of the earlier lines dated from..to (undated: those
 * without a date), into existing: the extractions whose dates overlap are
 * found first, then their lines through their id ranges.
 */
static void
read_earlier_dates(Import *import, bool undated, DateADT from, DateADT to)
{
	static const char *dated_sql =
		"SELECT first_line_id, last_line_id FROM recovery.extractions"
		" WHERE first_line_id IS NOT NULL AND booked_from <= $2 AND booked_to >= $1";
	static const char *undated_sql =
		"SELECT first_line_id, last_line_id FROM recovery.extractions"
		" WHERE first_line_id IS NOT NULL AND has_undated";
	static const char *dated_lines_sql =
		"SELECT fingerprint FROM recovery.extraction_lines"
		" WHERE id BETWEEN $1 AND $2 AND booked_on BETWEEN $3 AND $4";
	static const char *undated_lines_sql =
		"SELECT fingerprint FROM recovery.extraction_lines"
		" WHERE id BETWEEN $1 AND $2 AND booked_on IS NULL";
	Oid			types[4] = {INT8OID, INT8OID, DATEOID, DATEOID};
	Datum		values[4];
	SPITupleTable *ranges;
	uint64		e,
				n_ranges;

	SPI_connect();
	values[0] = DateADTGetDatum(from);
	values[1] = DateADTGetDatum(to);
	if (undated)
		recovery_spi_exec(undated_sql, 0, NULL, NULL, NULL, SPI_OK_SELECT);
	else
		recovery_spi_exec(dated_sql, 2, types + 2, values, NULL, SPI_OK_SELECT);
	ranges = SPI_tuptable;
	n_ranges = SPI_processed;
	for (e = 0; e < n_ranges; e++)
	{
		bool		isnull;
		uint64		f;

		values[0] = SPI_getbinval(ranges->vals[e], ranges->tupdesc, 1, &isnull);
		values[1] = SPI_getbinval(ranges->vals[e], ranges->tupdesc, 2, &isnull);
		values[2] = DateADTGetDatum(from);
		values[3] = DateADTGetDatum(to);
		if (undated)
			recovery_spi_exec(undated_lines_sql, 2, types, values, NULL, SPI_OK_SELECT);
		else
			recovery_spi_exec(dated_lines_sql, 4, types, values, NULL, SPI_OK_SELECT);
		for (f = 0; f < SPI_processed; f++)
		{
			bytea	   *fp = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[f],
														   SPI_tuptable->tupdesc, 1, &isnull));
			Fingerprint key;
			bool		was;

			if (isnull || VARSIZE_ANY_EXHDR(fp) != FINGERPRINT_LENGTH)
				continue;
			memcpy(key.bytes, VARDATA_ANY(fp), FINGERPRINT_LENGTH);
			(void) fingerprints_insert(import->existing, key, &was);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_finish();
}

/*
 * Reads the earlier lines of the batch's dates that no batch before it
 * had: each date is read once an import, and only the dates it has.
 */
static void
read_earlier_lines(Import *import, PaymentLine *lines, int n)
{
	bool		dated = false,
				undated = false;
	DateADT		from = 0,
				to = 0;

	date_range(lines, n, &dated, &from, &to, &undated);
	if (dated && !import->compared_dated)
		read_earlier_dates(import, false, from, to);
	else if (dated)
	{
		if (from < import->compared_from)
			read_earlier_dates(import, false, from, import->compared_from - 1);
		if (to > import->compared_to)
			read_earlier_dates(import, false, import->compared_to + 1, to);
	}
	if (dated)
	{
		import->compared_from = import->compared_dated ? Min(from, import->compared_from) : from;
		import->compared_to = import->compared_dated ? Max(to, import->compared_to) : to;
		import->compared_dated = true;
	}
	if (undated && !import->compared_undated)
	{
		read_earlier_dates(import, true, 0, 0);
		import->compared_undated = true;
	}
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

/* a currency code as text: the few a statement has are made once */
static Datum
currency_datum(Import *import, const char *code)
{
	int			i;

	for (i = 0; i < import->n_currencies; i++)
		if (strcmp(import->currencies[i], code) == 0)
			return import->currency_datums[i];
	if (i == lengthof(import->currencies))
		return CStringGetTextDatum(code);
	strlcpy(import->currencies[i], code, sizeof(import->currencies[i]));
	import->currency_datums[i] = PointerGetDatum(MemoryContextAlloc(import->context, VARHDRSZ + strlen(code)));
	SET_VARSIZE(DatumGetPointer(import->currency_datums[i]), VARHDRSZ + strlen(code));
	memcpy(VARDATA(DatumGetPointer(import->currency_datums[i])), code, strlen(code));
	import->n_currencies++;
	return import->currency_datums[i];
}

/* left(value, max_chars) as text, or NULL */
static Datum
text_datum(const char *value, int max_chars, bool *isnull)
{
	int			len;

	*isnull = value == NULL;
	if (*isnull)
		return (Datum) 0;
	len = strlen(value);
	/* never more characters than bytes */
	if (len > max_chars && pg_mbstrlen_with_len(value, len) > max_chars)
		len = pg_mbcharcliplen(value, len, max_chars);
	return PointerGetDatum(cstring_to_text_with_len(value, len));
}

/*
 * A payer's name or IBAN as the seal_personal trigger stores it (the bulk
 * insert runs no trigger): sealed for the line's customer, or under the
 * shared key when no case matched it; the IBAN with its blind index.
 */
static Datum
sealed_datum(const PaymentLine *line, const char *column, const char *value,
			 int max_chars, bool *isnull, Datum *index, bool *index_isnull)
{
	Datum		clipped = text_datum(value, max_chars, isnull);
	text	   *plain;
	bytea	   *blind = NULL;
	bytea	   *stored;

	if (*isnull)
		return (Datum) 0;
	plain = DatumGetTextPP(clipped);
	stored = pii_seal_text("extraction_lines", column, line->id,
						   line->customer_id ? line->customer_id : PII_NO_CUSTOMER,
						   VARDATA_ANY(plain), VARSIZE_ANY_EXHDR(plain),
						   index ? column : NULL, &blind);
	if (index != NULL)
	{
		*index = PointerGetDatum(blind);
		*index_isnull = blind == NULL;
	}
	return PointerGetDatum(stored);
}

static void
store_lines(Import *import, PaymentLine *lines, int n)
{
	BulkInsert *bulk;
	AttrNumber *at = import->at;
	int			i;

	if (import->bulk == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(import->context);

		import->bulk = bulk_insert_begin(import->relid);
		MemoryContextSwitchTo(old);
	}
	bulk = import->bulk;

	for (i = 0; i < n; i++)
	{
		PaymentLine *line = &lines[i];
		TupleTableSlot *slot = bulk_insert_slot(bulk);
		Datum	   *v = slot->tts_values;
		bool	   *null = slot->tts_isnull;
		MemoryContext old = MemoryContextSwitchTo(bulk_insert_batch_context(bulk));
		bytea	   *fp = palloc(VARHDRSZ + FINGERPRINT_LENGTH);

		memset(null, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);
		SET_VARSIZE(fp, VARHDRSZ + FINGERPRINT_LENGTH);
		memcpy(VARDATA(fp), line->fingerprint, FINGERPRINT_LENGTH);

		v[at[0]] = Int64GetDatum(line->id), null[at[0]] = false;
		v[at[1]] = Int64GetDatum(import->extraction_id), null[at[1]] = false;
		v[at[2]] = Int32GetDatum(line->line_no), null[at[2]] = line->line_no == 0;
		v[at[3]] = Int32GetDatum(line->span_start), null[at[3]] = false;
		v[at[4]] = Int32GetDatum(line->span_end), null[at[4]] = false;
		v[at[5]] = DateADTGetDatum(line->booked_on), null[at[5]] = !line->has_date;
		v[at[6]] = Int64GetDatum(line->amount), null[at[6]] = !line->has_amount;
		v[at[7]] = line->currency[0] ? currency_datum(import, line->currency) : (Datum) 0;
		null[at[7]] = line->currency[0] == '\0';
		v[at[8]] = text_datum(line->reference, 1000, &null[at[8]]);
		if (import->sealed)
		{
			v[at[9]] = sealed_datum(line, "payer", line->payer, 500, &null[at[9]], NULL, NULL);
			v[at[10]] = sealed_datum(line, "iban", line->iban, 64, &null[at[10]],
									 &v[at[IBAN_INDEX_COLUMN]], &null[at[IBAN_INDEX_COLUMN]]);
		}
		else
		{
			v[at[9]] = text_datum(line->payer, 500, &null[at[9]]);
			v[at[10]] = text_datum(line->iban, 64, &null[at[10]]);
		}
		v[at[11]] = Float4GetDatum(line->confidence), null[at[11]] = false;
		v[at[12]] = PointerGetDatum(fp), null[at[12]] = false;
		v[at[13]] = import->status_names[line->status], null[at[13]] = false;
		v[at[14]] = Int64GetDatum(line->case_id), null[at[14]] = line->case_id == 0;
		v[at[15]] = Int64GetDatum(line->customer_id), null[at[15]] = line->customer_id == 0;
		v[at[16]] = line->score >= 0 ? import->scores[Min(line->score, 100)] : (Datum) 0;
		null[at[16]] = line->score < 0;
		v[at[17]] = text_datum(line->reason, 1000, &null[at[17]]);
		v[at[18]] = Int64GetDatum(line->receipt_id), null[at[18]] = line->receipt_id == 0;

		MemoryContextSwitchTo(old);
		bulk_insert_add(bulk, slot);
	}
}

/* One batch of lines read: the new ones matched, applied and stored. */
static void
import_batch(Import *import, PaymentLine *lines, int n)
{
	MemoryContext old = MemoryContextSwitchTo(import->batch_context);
	int			fresh = 0,
				i;

	import->records += n;
	read_earlier_lines(import, lines, n);
	for (i = 0; i < n; i++)
	{
		Fingerprint key;

		memcpy(key.bytes, lines[i].fingerprint, FINGERPRINT_LENGTH);
		if (fingerprints_lookup(import->existing, key) != NULL)
			continue;
		if (fresh != i)
			lines[fresh] = lines[i];
		fresh++;
	}
	if (fresh > 0)
	{
		int64		first = reserve_ids(fresh);

		for (i = 0; i < fresh; i++)
			lines[i].id = first + i;
		if (import->first_id == 0)
			import->first_id = first;
		import->last_id = first + fresh - 1;
		import->added += fresh;

		reconcile_match(import->reconcile, lines, fresh, import->case_id);
		reconcile_apply(import->reconcile, lines, fresh, import->extraction_id, import->threshold);
		store_lines(import, lines, fresh);

		date_range(lines, fresh, &import->dated, &import->from, &import->to, &import->undated);
		for (i = 0; i < fresh; i++)
		{
			import->by_status[lines[i].status]++;
			if (import->first_case == 0 && lines[i].case_id > 0)
				import->first_case = lines[i].case_id;
		}
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(import->batch_context);
}

/*
 * Records the extraction's id and date ranges, for the imports after it;
 * returns the outcome as JSON: records, lines added, duplicates, lines by
 * status, the first case a line went to, what the file was.
 */
static Jsonb *
import_end(Import *import, const char *file_json)
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
	StringInfoData json;
	int			s;

	reconcile_end(import->reconcile);
	if (import->bulk)
		(void) bulk_insert_end(import->bulk);
	if (import->added > 0)
	{
		values[0] = Int64GetDatum(import->extraction_id);
		values[1] = Int64GetDatum(import->first_id);
		values[2] = Int64GetDatum(import->last_id);
		values[3] = DateADTGetDatum(import->from);
		values[4] = DateADTGetDatum(import->to);
		values[5] = BoolGetDatum(import->undated);
		if (!import->dated)
			nulls[3] = nulls[4] = 'n';
		SPI_connect();
		recovery_spi_exec(sql, 6, types, values, nulls, SPI_OK_UPDATE);
		SPI_finish();
	}

	initStringInfo(&json);
	appendStringInfo(&json, "{\"records\": %lld, \"added\": %lld, \"duplicates\": %lld, \"by_status\": {",
					 (long long) import->records, (long long) import->added,
					 (long long) (import->records - import->added));
	for (s = 0; s < PAYMENT_STATUS_COUNT; s++)
		appendStringInfo(&json, "%s\"%s\": %lld", s ? ", " : "", payment_status_names[s],
						 (long long) import->by_status[s]);
	appendStringInfoChar(&json, '}');
	if (import->first_case > 0)
		appendStringInfo(&json, ", \"case_id\": %lld", (long long) import->first_case);
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
 * statement, imported.  Batches are stored while the next is read.
 */
Datum
recovery_extraction_import_csv(PG_FUNCTION_ARGS)
{
	int64		extraction_id = PG_GETARG_INT64(0);
	bytea	   *content = PG_GETARG_BYTEA_PP(1);
	Jsonb	   *mapping = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	int64		case_id = PG_ARGISNULL(3) ? 0 : PG_GETARG_INT64(3);
	Import		import;
	StatementReading *reading;
	PaymentBatch *batch;
	StringInfoData file;
	instr_time	started,
				finished;

	INSTR_TIME_SET_CURRENT(started);
	import_begin(&import, extraction_id, case_id);
	reading = recovery_statement_reading_start(content, mapping);
	PG_ENSURE_ERROR_CLEANUP(recovery_statement_reading_cancel, PointerGetDatum(reading));
	{
		while ((batch = recovery_statement_reading_next(reading)) != NULL)
			import_batch(&import, batch->lines, batch->count);
	}
	PG_END_ENSURE_ERROR_CLEANUP(recovery_statement_reading_cancel, PointerGetDatum(reading));
	initStringInfo(&file);
	recovery_statement_reading_finish(reading, &file);

	INSTR_TIME_SET_CURRENT(finished);
	INSTR_TIME_SUBTRACT(finished, started);
	elog(DEBUG1, "extraction %lld: %lld records, %lld new, imported in %.0f ms",
		 (long long) extraction_id, (long long) import.records, (long long) import.added,
		 INSTR_TIME_GET_MILLISEC(finished));
	PG_RETURN_JSONB_P(import_end(&import, file.data));
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
	Import		import;
	PaymentLine line;
	PaymentArena arena;
	bytea	   *fp;
	bool		ok;
	int			t;

	if (PG_ARGISNULL(9) || VARSIZE_ANY_EXHDR(PG_GETARG_BYTEA_PP(9)) != FINGERPRINT_LENGTH)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("a payment line needs a SHA-256 fingerprint")));
	memset(&line, 0, sizeof(line));
	line.score = -1;
	line.has_date = !PG_ARGISNULL(2);
	if (line.has_date)
		line.booked_on = PG_GETARG_DATEADT(2);
	line.has_amount = !PG_ARGISNULL(3);
	if (line.has_amount)
		line.amount = PG_GETARG_INT64(3);
	if (!PG_ARGISNULL(4))
		strlcpy(line.currency, text_to_cstring(PG_GETARG_TEXT_PP(4)), sizeof(line.currency));
	line.reference = PG_ARGISNULL(5) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(5));
	line.span_start = PG_ARGISNULL(6) ? 0 : PG_GETARG_INT32(6);
	line.span_end = PG_ARGISNULL(7) ? 0 : PG_GETARG_INT32(7);
	line.confidence = PG_ARGISNULL(8) ? 1.0f : PG_GETARG_FLOAT4(8);
	fp = PG_GETARG_BYTEA_PP(9);
	memcpy(line.fingerprint, VARDATA_ANY(fp), FINGERPRINT_LENGTH);
	line.problem = PG_ARGISNULL(10) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(10));

	/* the tokens are read into malloc'd memory, and kept in palloc'd */
	memset(&arena, 0, sizeof(arena));
	ok = payment_line_tokens(&line, &arena);
	for (t = 0; t < TOKEN_COUNT; t++)
		if (line.tokens[t])
			line.tokens[t] = pstrdup(line.tokens[t]);
	payment_arena_free(&arena);
	if (!ok)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	import_begin(&import, extraction_id, case_id);
	import_batch(&import, &line, 1);
	PG_RETURN_JSONB_P(import_end(&import, NULL));
}
