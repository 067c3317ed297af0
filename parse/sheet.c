/*
 * sheet.c
 *		The rows of a spreadsheet (xlsx, xls) as CSV: the first row that the
 *		CSV import would take for a header (the bank mapping's columns, or
 *		the usual names) starts the output, and every row after it follows.
 *		The extension then imports that CSV as it imports any other.
 */
#include "parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

CsvMapping	parse_mapping;

struct SheetReader
{
	StatementSink *sink;
	ExtractBuf	row;			/* the row as a CSV record */
	int			next_column;	/* of the row */
	bool		header_found;
	long		amount_column;	/* once the header is found */
	long		rows;
};

SheetReader *
sheet_reader_new(StatementSink *sink)
{
	SheetReader *reader = extract_realloc(NULL, sizeof(SheetReader));

	memset(reader, 0, sizeof(*reader));
	reader->sink = sink;
	xbuf_init(&reader->row);
	return reader;
}

void
sheet_cell(SheetReader *reader, int column, const char *text, bool number)
{
	char		amount[64];

	if (column < reader->next_column || column >= EXTRACT_MAX_COLUMNS)
		return;
	while (reader->next_column < column)
	{
		if (reader->next_column++ > 0)
			xbuf_appendc(&reader->row, ',');
	}
	if (reader->next_column++ > 0)
		xbuf_appendc(&reader->row, ',');
	/*
	 * An amount typed as a number loses its trailing zeros ("200.5"); a
	 * bank's CSV shows "200.50", and the two must have one fingerprint.
	 */
	if (number && reader->header_found && column == reader->amount_column &&
		strlen(text) < sizeof(amount) - 4 && !strpbrk(text, "eE"))
	{
		const char *point = strchr(text, '.');
		size_t		decimals = point ? strlen(point + 1) : 0;

		snprintf(amount, sizeof(amount), "%s%s%s", text, point ? "" : ".",
				 decimals >= 2 ? "" : decimals == 1 ? "0" : "00");
		text = amount;
	}
	csv_quote(&reader->row, text);
}

static bool
no_record(void *arg, const CsvLine *line)
{
	return false;
}

bool
sheet_header_row(const char *row, size_t len, long *amount_column)
{
	CsvMapping	mapping = parse_mapping;
	CsvSummary	summary;
	ExtractError error;

	memset(&error, 0, sizeof(error));
	mapping.delimiter = ',';
	if (!csv_parse(row, len, &mapping, no_record, NULL, &summary, &error))
		return false;
	*amount_column = summary.columns_found[CSV_AMOUNT];
	return true;
}

void
sheet_row_end(SheetReader *reader)
{
	if (reader->row.len > 0)
	{
		xbuf_appendc(&reader->row, '\n');
		if (!reader->header_found)
			reader->header_found = sheet_header_row(reader->row.data, reader->row.len,
													&reader->amount_column);
		if (reader->header_found)
		{
			sink_raw(reader->sink, reader->row.data, reader->row.len);
			reader->rows++;
		}
	}
	reader->row.len = 0;
	reader->row.data[0] = '\0';
	reader->next_column = 0;
}

bool
sheet_reader_finish(SheetReader *reader, ExtractError *error)
{
	if (reader->row.len > 0)
		sheet_row_end(reader);
	if (reader->header_found)
		reader->sink->entries += reader->rows - 1;
	return reader->header_found;
}

void
sheet_reader_free(SheetReader *reader)
{
	xbuf_free(&reader->row);
	extract_free(reader);
}

/* days since 1970-01-01 into a date (H. Hinnant's civil_from_days) */
static void
civil_from_days(long z, int *y, unsigned *m, unsigned *d)
{
	long		era;
	unsigned	doe,
				yoe,
				doy,
				mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned) (z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int) (yoe + era * 400 + (*m <= 2));
}

bool
sheet_serial_date(const char *serial, bool epoch_1904, char out[11])
{
	char	   *end;
	long		days = strtol(serial, &end, 10);
	int			y;
	unsigned	m,
				d;

	if (end == serial || (*end != '\0' && *end != '.') || days < 1 || days > 2958465)
		return false;
	if (epoch_1904)
		days += -24107;			/* 1904-01-01 is day -24107 since 1970 */
	else
		/* 1899-12-30 is day -25569; Excel counts a 1900-02-29 (day 60) */
		days += days < 61 ? -25568 : -25569;
	civil_from_days(days, &y, &m, &d);
	snprintf(out, 11, "%04d-%02u-%02u", y % 10000, m % 100, d % 100);
	return true;
}
