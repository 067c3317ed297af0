/*
 * render.c
 *		Message templates rendered for one recovery case: the placeholders
 *		filled in from the case and its customer, amounts and dates written
 *		the way the customer's locale writes them, every value escaped in
 *		HTML bodies.
 *
 * template_save() refuses unknown placeholders when a template is saved;
 * rendering refuses them again, so a template edited behind its back fails
 * loudly instead of sending "{{typo}}" to a customer.
 */
#include "recovery.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/guc.h"

/* How a locale writes money and dates. */
typedef struct LocaleFormat
{
	const char *locale;			/* "en-US" exactly, or a language ("en") */
	const char *decimal;
	const char *group;
	bool		symbol_first;
	const char *symbol_space;	/* between symbol and number */
	char		date_order;		/* 'D' day first, 'M' month first */
	char		date_separator;
} LocaleFormat;

static const LocaleFormat locale_formats[] = {
	{"en-US", ".", ",", true, "", 'M', '/'},
	{"en", ".", ",", true, "", 'D', '/'},
	{"de", ",", ".", false, "\u00a0", 'D', '.'},
	{"fr", ",", "\u202f", false, "\u00a0", 'D', '/'},
	{"nl", ",", ".", true, "\u00a0", 'D', '-'},
	{"es", ",", ".", false, "\u00a0", 'D', '/'},
	{"it", ",", ".", false, "\u00a0", 'D', '/'},
	{"pt", ",", ".", false, "\u00a0", 'D', '/'},
};

/* ISO dates and the currency code for locales not in the table */
static const LocaleFormat default_format = {"", ".", ",", false, "\u00a0", 'I', '-'};

static const struct
{
	const char *code;
	const char *symbol;
}			currency_symbols[] = {
	{"EUR", "\u20ac"}, {"GBP", "\u00a3"}, {"JPY", "\u00a5"}, {"INR", "\u20b9"},
};

static char *payment_link_base = NULL;

void
recovery_define_render_gucs(void)
{
	DefineCustomStringVariable("recovery.payment_link_base",
							   "Where the {{payment_link}} of a message points; the case reference is appended.",
							   NULL,
							   &payment_link_base, "https://pay.example.com/", PGC_SIGHUP, 0,
							   NULL, NULL, NULL);
}

static const LocaleFormat *
format_for_locale(const char *locale)
{
	size_t		language_len = strcspn(locale, "-");
	int			i;

	for (i = 0; i < lengthof(locale_formats); i++)
		if (strcmp(locale_formats[i].locale, locale) == 0)
			return &locale_formats[i];
	for (i = 0; i < lengthof(locale_formats); i++)
		if (strlen(locale_formats[i].locale) == language_len &&
			strncmp(locale_formats[i].locale, locale, language_len) == 0)
			return &locale_formats[i];
	return &default_format;
}

static const char *
currency_symbol(const char *currency, const char *locale)
{
	int			i;

	if (strcmp(currency, "USD") == 0)
		return strcmp(locale, "en-US") == 0 ? "$" : "US$";
	for (i = 0; i < lengthof(currency_symbols); i++)
		if (strcmp(currency_symbols[i].code, currency) == 0)
			return currency_symbols[i].symbol;
	return currency;
}

/*
 * An amount of minor units as the locale writes it: "£1,234.56",
 * "1.234,56 €", "€ 1.234,56".  Exact: integer arithmetic only.
 */
char *
recovery_format_amount(int64 amount, const char *currency, int minor_units,
					   const char *locale)
{
	const LocaleFormat *fmt = format_for_locale(locale);
	const char *symbol = currency_symbol(currency, locale);
	StringInfoData number;
	StringInfoData out;
	char		digits[32];
	uint64		magnitude = amount < 0 ? -(uint64) amount : (uint64) amount;
	uint64		scale = 1;
	int			whole_len;
	int			i;

	for (i = 0; i < minor_units; i++)
		scale *= 10;
	snprintf(digits, sizeof(digits), UINT64_FORMAT, magnitude / scale);
	whole_len = strlen(digits);

	initStringInfo(&number);
	if (amount < 0)
		appendStringInfoChar(&number, '-');
	for (i = 0; i < whole_len; i++)
	{
		if (i > 0 && (whole_len - i) % 3 == 0)
			appendStringInfoString(&number, fmt->group);
		appendStringInfoChar(&number, digits[i]);
	}
	if (minor_units > 0)
		appendStringInfo(&number, "%s%0*llu", fmt->decimal, minor_units,
						 (unsigned long long) (magnitude % scale));

	initStringInfo(&out);
	if (fmt->symbol_first && strlen(symbol) <= 3 && symbol != currency)
		appendStringInfo(&out, "%s%s%s", symbol, fmt->symbol_space, number.data);
	else
		appendStringInfo(&out, "%s\u00a0%s", number.data, symbol);
	pfree(number.data);
	return out.data;
}

static char *
format_date(DateADT date, const char *locale)
{
	const LocaleFormat *fmt = format_for_locale(locale);
	int			year,
				month,
				day;

	j2date(date + POSTGRES_EPOCH_JDATE, &year, &month, &day);
	if (fmt->date_order == 'M')
		return psprintf("%02d%c%02d%c%04d", month, fmt->date_separator, day,
						fmt->date_separator, year);
	if (fmt->date_order == 'D')
		return psprintf("%02d%c%02d%c%04d", day, fmt->date_separator, month,
						fmt->date_separator, year);
	return psprintf("%04d-%02d-%02d", year, month, day);
}

static void
append_escaped_html(StringInfo out, const char *value)
{
	const char *p;

	for (p = value; *p; p++)
	{
		switch (*p)
		{
			case '&':
				appendStringInfoString(out, "&amp;");
				break;
			case '<':
				appendStringInfoString(out, "&lt;");
				break;
			case '>':
				appendStringInfoString(out, "&gt;");
				break;
			case '"':
				appendStringInfoString(out, "&quot;");
				break;
			case '\'':
				appendStringInfoString(out, "&#39;");
				break;
			default:
				appendStringInfoChar(out, *p);
		}
	}
}

/* The values of the placeholders for one case, by name. */
typedef struct CaseValues
{
	const char *names[8];
	char	   *values[8];
	int			count;
} CaseValues;

static void
add_value(CaseValues *cv, const char *name, char *value)
{
	cv->names[cv->count] = name;
	cv->values[cv->count] = value;
	cv->count++;
}

static const char *
lookup_value(const CaseValues *cv, const char *name, int len)
{
	int			i;

	for (i = 0; i < cv->count; i++)
		if (strlen(cv->names[i]) == len && strncmp(cv->names[i], name, len) == 0)
			return cv->values[i];
	return NULL;
}

/* {{ name }} replaced by its value; text outside placeholders is kept. */
static char *
render_text(const char *text, const CaseValues *cv, bool html,
			const char *template_name)
{
	StringInfoData out;
	const char *p = text;

	initStringInfo(&out);
	while (*p)
	{
		const char *open = strstr(p, "{{");
		const char *close;
		const char *name;
		const char *name_end;
		const char *value;

		if (open == NULL || (close = strstr(open + 2, "}}")) == NULL)
		{
			appendStringInfoString(&out, p);
			break;
		}
		appendBinaryStringInfo(&out, p, open - p);
		name = open + 2;
		name_end = close;
		while (name < name_end && isspace((unsigned char) *name))
			name++;
		while (name_end > name && isspace((unsigned char) name_end[-1]))
			name_end--;
		value = lookup_value(cv, name, name_end - name);
		if (value == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_RECOVERY_VALIDATION),
					 errmsg("template \"%s\" has an unknown placeholder \"%.*s\"",
							template_name, (int) (name_end - name), name),
					 errhint("Save the template again with recovery.template_save(), which lists the placeholders.")));
		if (html)
			append_escaped_html(&out, value);
		else
			appendStringInfoString(&out, value);
		p = close + 2;
	}
	return out.data;
}

PG_FUNCTION_INFO_V1(recovery_format_amount_sql);
PG_FUNCTION_INFO_V1(recovery_render_template);

/*
 * recovery.format_amount(amount bigint, currency text, locale text)
 */
Datum
recovery_format_amount_sql(PG_FUNCTION_ARGS)
{
	char	   *currency = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *locale = text_to_cstring(PG_GETARG_TEXT_PP(2));
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(currency)};
	int			minor_units;

	SPI_connect();
	recovery_spi_exec("SELECT minor_units FROM recovery.currencies WHERE code = $1",
					  1, argtypes, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("unknown currency \"%s\"", currency),
				 errhint("Currencies are ISO 4217 codes listed in recovery.currencies.")));
	minor_units = atoi(recovery_spi_text(0, 1));
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(recovery_format_amount(PG_GETARG_INT64(0), currency,
															 minor_units, locale)));
}

/*
 * recovery.render_template(template_id bigint, case_id bigint,
 *		OUT subject text, OUT body text, OUT html_body text)
 *
 * amount is what is due by today (or the next payment's amount when
 * nothing is due yet, for a courtesy reminder), balance all that is owed.
 */
Datum
recovery_render_template(PG_FUNCTION_ARGS)
{
	Oid			argtypes[2] = {INT8OID, INT8OID};
	Datum		values[2];
	TupleDesc	tupdesc;
	Datum		result[3];
	bool		nulls[3] = {false, false, false};
	CaseValues	cv = {0};
	char	   *name;
	char	   *locale;
	char	   *currency;
	int			minor_units;
	char	   *subject;
	char	   *body;
	char	   *html_body;
	char	   *reference;
	bool		isnull;
	HeapTuple	tuple;
	MemoryContext caller_context = CurrentMemoryContext;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("a template and a recovery case are required")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "render_template must return a record");
	tupdesc = BlessTupleDesc(tupdesc);

	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	SPI_connect();
	recovery_spi_exec("SELECT t.name, t.subject, t.body, t.html_body, cu.name, cu.locale, "
					  "       c.currency, cur.minor_units, c.balance, "
					  "       coalesce(nullif(due.now_due, 0), due.next_amount)::bigint, "
					  "       due.first_due, recovery.case_reference(c.id) "
					  "FROM recovery.templates t, recovery.recovery_cases c "
					  "JOIN recovery.customers_decrypted cu ON cu.id = c.customer_id "
					  "JOIN recovery.currencies cur ON cur.code = c.currency "
					  "CROSS JOIN LATERAL ("
					  "  SELECT min(p.due_date) AS first_due, "
					  "         sum(p.outstanding) FILTER (WHERE p.due_date <= current_date) AS now_due, "
					  "         (array_agg(p.outstanding ORDER BY p.due_date, p.id))[1] AS next_amount "
					  "  FROM recovery.payments p WHERE p.case_id = c.id AND p.outstanding > 0) due "
					  "WHERE t.id = $1 AND c.id = $2",
					  2, argtypes, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_NOT_FOUND),
				 errmsg("template %lld or recovery case %lld does not exist",
						(long long) PG_GETARG_INT64(0), (long long) PG_GETARG_INT64(1))));

	name = recovery_spi_text(0, 1);
	subject = recovery_spi_text(0, 2);
	body = recovery_spi_text(0, 3);
	html_body = recovery_spi_text(0, 4);
	locale = recovery_spi_text(0, 6);
	currency = recovery_spi_text(0, 7);
	minor_units = atoi(recovery_spi_text(0, 8));
	reference = recovery_spi_text(0, 12);

	add_value(&cv, "customer_name", recovery_spi_text(0, 5));
	add_value(&cv, "currency", currency);
	add_value(&cv, "balance",
			  recovery_format_amount(recovery_spi_int64(0, 9, NULL), currency,
									 minor_units, locale));
	add_value(&cv, "amount",
			  recovery_format_amount(recovery_spi_int64(0, 10, NULL), currency,
									 minor_units, locale));
	{
		Datum		due = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
										11, &isnull);

		add_value(&cv, "due_date", isnull ? "" : format_date(DatumGetDateADT(due), locale));
	}
	add_value(&cv, "case_reference", reference);
	add_value(&cv, "payment_link", psprintf("%s%s", payment_link_base, reference));

	/* the result lives in the caller's memory; SPI_finish frees SPI's */
	MemoryContextSwitchTo(caller_context);
	result[0] = 0;
	if (subject)
		result[0] = CStringGetTextDatum(render_text(subject, &cv, false, name));
	else
		nulls[0] = true;
	result[1] = CStringGetTextDatum(render_text(body, &cv, false, name));
	if (html_body)
		result[2] = CStringGetTextDatum(render_text(html_body, &cv, true, name));
	else
		nulls[2] = true;
	tuple = heap_form_tuple(tupdesc, result, nulls);
	SPI_finish();
	PG_RETURN_DATUM(HeapTupleGetDatum(tuple));
}
