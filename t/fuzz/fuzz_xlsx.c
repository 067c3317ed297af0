/*
 * fuzz_xlsx.c
 *		libFuzzer target of recovery-parse's xlsx reader (parse/xlsx.c,
 *		zip.c, sheet.c): any bytes as a workbook.  The seed corpus has real
 *		workbooks, so that mutations reach the zip members and their XML.
 */
#include <stdint.h>

#include "statement_fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	StatementSink sink;
	ExtractError error;

	memset(&error, 0, sizeof(error));
	fuzz_sink_init(&sink, "xlsx");
	fuzz_sink_done(&sink, xlsx_parse((const char *) data, size, &sink, &error));
	return 0;
}
