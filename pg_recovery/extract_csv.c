/*
 * extract_csv.c
 *		Bank statements and remittance files as CSV (RFC 4180): quoted
 *		fields with doubled quotes and line breaks inside, comma, semicolon
 *		or tab detected from the header, UTF-8 with or without a BOM or
 *		Windows-1252, CRLF or LF.  The header row is matched to the fields
 *		we need by a mapping (saved once per bank) or by the usual names.
 */
#include "extract.h"

#include <string.h>

const char *const csv_field_names[CSV_FIELD_COUNT] = {
	"date", "amount", "currency", "reference", "payer", "iban", "problem", "hold"
};

/* Header names banks use, lower case, for when no mapping is given. */
static const char *const usual_names[CSV_FIELD_COUNT][16] = {
	{"date", "booking date", "value date", "transaction date", "buchungstag", "datum",
	"valuta", "date de valeur", "date opération", "fecha", "boekdatum", NULL},
	{"amount", "betrag", "montant", "importe", "bedrag", "credit", "amount (eur)",
	"umsatz", "value", NULL},
	{"currency", "währung", "waehrung", "devise", "moneda", "valuta code", "ccy", NULL},
	{"reference", "verwendungszweck", "description", "memo", "payment reference",
		"libellé", "libelle", "concepto", "omschrijving", "remittance information",
	"details", NULL},
	{"payer", "name", "payer name", "counterparty", "auftraggeber", "beguenstigter/zahlungspflichtiger",
	"zahlungspflichtiger", "auftraggeber/empfänger", "empfänger/auftraggeber", "tiers",
	"ordenante", "naam tegenpartij", "from", NULL},
	{"iban", "account", "counterparty iban", "kontonummer/iban", "iban tegenpartij",
	"compte", NULL},
	/* only through a mapping: the columns recovery-parse adds */
	{NULL},
	{NULL},
};

/* One record: its fields as offsets into a buffer of unquoted bytes. */
typedef struct CsvRecord
{
	ExtractBuf	bytes;
	size_t		offsets[EXTRACT_MAX_COLUMNS + 1];
	size_t		count;
	long		line;
	size_t		start;
	size_t		end;
} CsvRecord;

static char
detect_delimiter(const char *text, size_t len)
{
	const char	candidates[] = {',', ';', '\t', '|'};
	size_t		counts[4] = {0, 0, 0, 0};
	bool		quoted = false;
	size_t		i,
				c,
				best = 0;

	for (i = 0; i < len; i++)
	{
		if (text[i] == '"')
			quoted = !quoted;
		else if (!quoted && (text[i] == '\n' || text[i] == '\r'))
			break;
		else if (!quoted)
			for (c = 0; c < 4; c++)
				if (text[i] == candidates[c])
					counts[c]++;
	}
	for (c = 1; c < 4; c++)
		if (counts[c] > counts[best])
			best = c;
	return candidates[best];
}

/*
 * Reads the record at *pos; false at the end of the text or on an error
 * (error->failed tells which).
 */
static bool
read_record(const char *text, size_t len, size_t *pos, long *line, char delimiter,
			CsvRecord *record, ExtractError *error)
{
	size_t		i = *pos;
	size_t		field_start;

	if (i >= len)
		return false;
	record->bytes.len = 0;
	record->count = 0;
	record->line = *line;
	record->start = i;
	for (;;)
	{
		if (record->count >= EXTRACT_MAX_COLUMNS)
		{
			extract_fail(error, record->line, "line %ld has more than %d fields",
						 record->line, EXTRACT_MAX_COLUMNS);
			return false;
		}
		record->offsets[record->count++] = record->bytes.len;
		field_start = record->bytes.len;
		if (i < len && text[i] == '"')
		{
			long		opened_on = *line;

			i++;
			for (;;)
			{
				const char *quote = i < len ? memchr(text + i, '"', len - i) : NULL;
				size_t		upto = quote ? (size_t) (quote - text) : len;
				size_t		k;

				for (k = i; k < upto; k++)
					if (text[k] == '\n')
						(*line)++;
				if (record->bytes.len - field_start + (upto - i) > EXTRACT_MAX_FIELD)
				{
					extract_fail(error, opened_on, "a field on line %ld is longer than %d bytes",
								 opened_on, EXTRACT_MAX_FIELD);
					return false;
				}
				xbuf_append(&record->bytes, text + i, upto - i);
				if (quote == NULL)
				{
					extract_fail(error, opened_on,
								 "the quoted field that starts on line %ld is never closed",
								 opened_on);
					return false;
				}
				i = upto + 1;
				if (i < len && text[i] == '"')
				{
					xbuf_appendc(&record->bytes, '"');
					i++;
					continue;
				}
				break;
			}
			if (i < len && text[i] != delimiter && text[i] != '\n' && text[i] != '\r')
			{
				extract_fail(error, *line,
							 "line %ld has text after the closing quote of a field", *line);
				return false;
			}
		}
		else
		{
			size_t		k = i;

			while (k < len && text[k] != delimiter && text[k] != '\n' && text[k] != '\r')
				k++;
			if (k - i > EXTRACT_MAX_FIELD)
			{
				extract_fail(error, *line, "a field on line %ld is longer than %d bytes",
							 *line, EXTRACT_MAX_FIELD);
				return false;
			}
			xbuf_append(&record->bytes, text + i, k - i);
			i = k;
		}
		xbuf_appendc(&record->bytes, '\0');
		if (i < len && text[i] == delimiter)
		{
			i++;
			continue;
		}
		break;
	}
	record->end = i;
	/* CRLF, LF or a lone CR end the record */
	if (i < len && text[i] == '\r')
		i++;
	if (i < len && text[i] == '\n')
		i++;
	(*line)++;
	record->offsets[record->count] = record->bytes.len;
	*pos = i;
	return true;
}

static const char *
field_value(const CsvRecord *record, long column)
{
	if (column < 0 || (size_t) column >= record->count)
		return NULL;
	return record->bytes.data + record->offsets[column];
}

static bool
blank_record(const CsvRecord *record)
{
	size_t		i;

	for (i = 0; i < record->bytes.len; i++)
		if (record->bytes.data[i] != '\0' && record->bytes.data[i] != ' ' &&
			record->bytes.data[i] != '\t')
			return false;
	return true;
}

/* trimmed, case-insensitive (ASCII) equality */
static bool
same_name(const char *a, const char *b)
{
	size_t		la,
				lb,
				i;

	while (*a == ' ' || *a == '\t')
		a++;
	la = strlen(a);
	while (la > 0 && (a[la - 1] == ' ' || a[la - 1] == '\t'))
		la--;
	lb = strlen(b);
	if (la != lb)
		return false;
	for (i = 0; i < la; i++)
	{
		char		x = a[i],
					y = b[i];

		if (x >= 'A' && x <= 'Z')
			x += 'a' - 'A';
		if (y >= 'A' && y <= 'Z')
			y += 'a' - 'A';
		if (x != y)
			return false;
	}
	return true;
}

static bool
match_header(const CsvRecord *header, const CsvMapping *mapping,
			 CsvSummary *summary, ExtractError *error)
{
	int			f;
	size_t		c;

	for (f = 0; f < CSV_FIELD_COUNT; f++)
	{
		summary->columns_found[f] = -1;
		for (c = 0; c < header->count && summary->columns_found[f] < 0; c++)
		{
			const char *name = field_value(header, (long) c);
			int			u;

			if (mapping && mapping->columns[f])
			{
				if (same_name(name, mapping->columns[f]))
					summary->columns_found[f] = (long) c;
				continue;
			}
			for (u = 0; usual_names[f][u]; u++)
				if (same_name(name, usual_names[f][u]))
					summary->columns_found[f] = (long) c;
		}
		if (mapping && mapping->columns[f] && summary->columns_found[f] < 0)
		{
			extract_fail(error, header->line, "the header has no column \"%.60s\" for the %s",
						 mapping->columns[f], csv_field_names[f]);
			return false;
		}
	}
	if (summary->columns_found[CSV_AMOUNT] < 0)
	{
		extract_fail(error, header->line,
					 "the header on line %ld has no amount column", header->line);
		return false;
	}
	if (summary->columns_found[CSV_REFERENCE] < 0 && summary->columns_found[CSV_PAYER] < 0)
	{
		extract_fail(error, header->line,
					 "the header on line %ld has neither a reference nor a payer column",
					 header->line);
		return false;
	}
	return true;
}

bool
csv_parse(const char *input, size_t len, const CsvMapping *mapping,
		  CsvLineCallback callback, void *arg,
		  CsvSummary *summary, ExtractError *error)
{
	char	   *text;
	size_t		text_len;
	size_t		pos = 0;
	long		line = 1;
	CsvRecord  *record;
	bool		have_header = false;
	bool		ok = true;

	memset(summary, 0, sizeof(*summary));
	if (len > EXTRACT_MAX_INPUT)
	{
		extract_fail(error, 0, "the file is larger than %d MiB", EXTRACT_MAX_INPUT >> 20);
		return false;
	}
	if (memchr(input, '\0', len) != NULL)
	{
		extract_fail(error, 0, "the file has a NUL byte: it is not a text file");
		return false;
	}
	text = extract_to_utf8(input, len, &text_len, &summary->encoding);
	summary->delimiter = mapping && mapping->delimiter ? mapping->delimiter
		: detect_delimiter(text, text_len);

	record = extract_realloc(NULL, sizeof(CsvRecord));
	memset(record, 0, sizeof(*record));
	xbuf_init(&record->bytes);
	while (ok && read_record(text, text_len, &pos, &line, summary->delimiter, record, error))
	{
		CsvLine		out;
		const char *amount;
		const char *date;
		int			f;

		if (blank_record(record))
			continue;
		if (!have_header)
		{
			if (!match_header(record, mapping, summary, error))
				break;
			have_header = true;
			continue;
		}
		summary->records++;
		memset(&out, 0, sizeof(out));
		out.line = record->line;
		out.start = record->start;
		out.end = record->end;
		for (f = 0; f < CSV_FIELD_COUNT; f++)
			out.fields[f] = field_value(record, summary->columns_found[f]);
		amount = out.fields[CSV_AMOUNT];
		date = out.fields[CSV_DATE];
		out.confidence = 1.0;
		if (amount == NULL || amount[0] == '\0')
			out.problem = "no amount";
		else if (!extract_parse_amount(amount, strlen(amount), mapping ? mapping->decimal : 0,
									   out.amount, sizeof(out.amount)))
			out.problem = "the amount is not a number";
		if (date && date[0] && !extract_parse_date(date, strlen(date),
												   mapping ? mapping->date_order : 0, out.date))
		{
			out.confidence = 0.7;
			if (!out.problem)
				out.problem = "the date is not a date";
		}
		if (!out.fields[CSV_REFERENCE] || !out.fields[CSV_REFERENCE][0])
			out.confidence -= 0.2;
		if (!out.problem && out.fields[CSV_PROBLEM] && out.fields[CSV_PROBLEM][0])
			out.problem = out.fields[CSV_PROBLEM];
		if (out.fields[CSV_HOLD] && out.fields[CSV_HOLD][0])
			out.hold = out.fields[CSV_HOLD];
		ok = callback(arg, &out);
	}
	if (!error->failed && !have_header)
		extract_fail(error, 0, "the file has no header row");
	xbuf_free(&record->bytes);
	extract_free(record);
	extract_free(text);
	return !error->failed;
}
