/*
 * fuzz_xls.c
 *		libFuzzer target of recovery-parse's xls reader (parse/xls.c):
 *		any bytes through FreeXL, then the rows of its sheets.
 */
#include <stdint.h>

#include "statement_fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	StatementSink sink;
	ExtractError error;
	const void *workbook;

	memset(&error, 0, sizeof(error));
	if (!xls_open((const char *) data, size, &workbook, &error))
		return 0;
	fuzz_sink_init(&sink, "xls");
	fuzz_sink_done(&sink, xls_parse(workbook, &sink, &error));
	return 0;
}
