/*
 * fuzz_csv.c
 *		libFuzzer target of the CSV statement parser: any bytes, with and
 *		without a mapping, read every field of every record it reports.
 */
#include <stdint.h>
#include <string.h>

#include "extract.h"

static bool
touch_line(void *arg, const CsvLine *line)
{
	size_t	   *total = arg;
	int			f;

	for (f = 0; f < CSV_FIELD_COUNT; f++)
		if (line->fields[f])
			*total += strlen(line->fields[f]);
	*total += strlen(line->amount) + strlen(line->date);
	return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	CsvMapping	mapping;
	CsvSummary	summary;
	ExtractError error;
	size_t		total = 0;

	memset(&error, 0, sizeof(error));
	csv_parse((const char *) data, size, NULL, touch_line, &total, &summary, &error);

	/* the first byte picks a delimiter and decimal mark, the rest is the file */
	if (size > 1)
	{
		memset(&mapping, 0, sizeof(mapping));
		memset(&error, 0, sizeof(error));
		mapping.delimiter = (data[0] & 1) ? ';' : ',';
		mapping.decimal = (data[0] & 2) ? ',' : '.';
		mapping.date_order = (data[0] & 4) ? 'M' : 'D';
		mapping.columns[CSV_AMOUNT] = "amount";
		mapping.columns[CSV_REFERENCE] = "reference";
		csv_parse((const char *) data + 1, size - 1, &mapping, touch_line, &total, &summary, &error);
	}
	return 0;
}
