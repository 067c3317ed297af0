/*
 * fuzz_csv.c
 *		libFuzzer target of the CSV statement reader: any bytes, with and
 *		without a mapping, through the parser and what makes payments of its
 *		records (amounts, dates, fingerprints, matching tokens:
 *		statement_reader.c, inline below 1 MiB); every string of every line
 *		it hands over is read.
 */
#include <stdint.h>
#include <string.h>

#include "statement_reader.h"

static const PaymentCurrency currencies[] = {{"EUR", 2}, {"USD", 2}, {"JPY", 0}, {"BHD", 3}};

static size_t
touch(const char *text)
{
	return text ? strlen(text) : 0;
}

static void
read_statement(const char *data, size_t size, const CsvMapping *mapping)
{
	CsvSummary	summary;
	ExtractError error;
	StatementReader *reader;
	PaymentBatch *batch;
	StatementReaderStatus status;
	size_t		total = 0;

	reader = statement_reader_start(data, size, mapping, currencies, 4, "EUR");
	if (reader == NULL)
		return;
	while ((status = statement_reader_next(reader, &batch)) != READER_END)
	{
		int			i,
					t;

		if (status != READER_BATCH)
			continue;
		for (i = 0; i < batch->count; i++)
		{
			const PaymentLine *line = &batch->lines[i];

			total += touch(line->reference) + touch(line->payer) + touch(line->iban) +
				touch(line->problem) + line->fingerprint[0];
			for (t = 0; t < TOKEN_COUNT; t++)
				total += touch(line->tokens[t]);
		}
		statement_reader_recycle(reader, batch);
	}
	(void) statement_reader_finish(reader, &summary, &error);
	(void) total;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	CsvMapping	mapping;

	memset(&mapping, 0, sizeof(mapping));
	read_statement((const char *) data, size, &mapping);

	/* the first byte picks a delimiter and decimal mark, the rest is the file */
	if (size > 1)
	{
		mapping.delimiter = (data[0] & 1) ? ';' : ',';
		mapping.decimal = (data[0] & 2) ? ',' : '.';
		mapping.date_order = (data[0] & 4) ? 'M' : 'D';
		mapping.columns[CSV_AMOUNT] = "amount";
		mapping.columns[CSV_REFERENCE] = "reference";
		read_statement((const char *) data + 1, size - 1, &mapping);
	}
	return 0;
}
