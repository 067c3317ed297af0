/*
 * fuzz_camt.c
 *		libFuzzer target of recovery-parse's CAMT reader (parse/camt.c):
 *		any bytes, streamed as the program streams stdin.
 */
#include <stdint.h>

#include "statement_fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ParseInput	in = {-1, (const char *) data, size, 0, 0};
	StatementSink sink;
	ExtractError error;

	memset(&error, 0, sizeof(error));
	fuzz_sink_init(&sink, "camt");
	fuzz_sink_done(&sink, camt_parse(&in, &sink, &error));
	return 0;
}
